"""``mpctl cluster status``'s controller leader line, from the Lease and /metrics."""

from __future__ import annotations

from mpctl.cluster.leader import describe, says_it_leads

METRICS = """# HELP miniplane_leader_election_master_status 1 while this process holds it.
# TYPE miniplane_leader_election_master_status gauge
miniplane_leader_election_master_status {value}
miniplane_informers_synced 1.0
"""


def test_master_status_is_read_from_metrics() -> None:
    assert says_it_leads(METRICS.format(value="1.0"))
    assert not says_it_leads(METRICS.format(value="0.0"))
    assert not says_it_leads("miniplane_informers_synced 1.0\n")  # --leader-elect=false
    assert not says_it_leads(METRICS.format(value="NaNx"))


def test_leader_line() -> None:
    lease = {"spec": {"holderIdentity": "host_5b1e", "leaseTransitions": 1}}
    assert describe(lease, ["controllers-2"]) == (
        "controller leader: controllers-2 (Lease kube-system/kube-controller-manager held by "
        "host_5b1e, 1 transition)")
    assert describe({"spec": {"holderIdentity": "x"}}, []) == (
        "controller leader: no process of this cluster (Lease "
        "kube-system/kube-controller-manager held by x, 0 transitions)")
    assert describe({"spec": {"holderIdentity": ""}}, []) == (
        "controller leader: none (Lease kube-system/kube-controller-manager released)")
    assert describe(None, []) == (
        "controller leader: none yet (no Lease kube-system/kube-controller-manager)")
