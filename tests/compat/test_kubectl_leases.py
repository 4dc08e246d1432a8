"""kubectl and Leases: created from a manifest, listed with kubectl's columns
(NAME, HOLDER, AGE), its MicroTimes kept as Kubernetes writes them."""

from __future__ import annotations

import json

from tests.compat.conftest import Kubectl, table

LEASE = """\
apiVersion: coordination.k8s.io/v1
kind: Lease
metadata:
  name: kube-controller-manager
  namespace: kube-system
spec:
  holderIdentity: host-a_6f1c
  leaseDurationSeconds: 15
  acquireTime: "2026-01-01T00:00:00.000000Z"
  renewTime: "2026-01-01T00:00:05.000000Z"
  leaseTransitions: 0
"""


def test_kubectl_creates_and_lists_leases(kubectl: Kubectl) -> None:
    kubectl.out("apply", "-f", "-", stdin=LEASE)
    rows = table(kubectl.out("get", "leases", "-n", "kube-system"))
    assert rows[0] == ["NAME", "HOLDER", "AGE"]
    # beside the API server's own identity Lease (apiserver-…)
    assert [r[:2] for r in rows[1:] if r[0] == "kube-controller-manager"] == [
        ["kube-controller-manager", "host-a_6f1c"]]
    got = json.loads(kubectl.out("get", "lease.coordination.k8s.io", "kube-controller-manager",
                                 "-n", "kube-system", "-o", "json"))
    assert got["spec"]["renewTime"] == "2026-01-01T00:00:05.000000Z"
    explained = kubectl.out("explain", "lease.spec.holderIdentity")  # from the OpenAPI
    assert "holderIdentity" in explained and "identity of the holder" in explained
    bad = kubectl.run("apply", "-f", "-", stdin=LEASE.replace("15", "0"), check=False)
    assert bad.returncode != 0
    assert "spec.leaseDurationSeconds" in bad.stderr
