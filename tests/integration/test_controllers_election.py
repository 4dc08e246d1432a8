"""Two mp-controllers processes on one API server: one leads and acts, the other
waits; ``kill -9`` of the leader and the standby takes over within the lease
duration and acts; a leader that cannot renew exits 1 (a supervisor restarts it)."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

from apimachinery.kinds import LEASE
from mpctl.cluster.leader import leader_line
from mpctl.cluster.state import ProcessRecord
from tests.conftest import BIN, wait_until
from tests.integration.test_controllers_harness import READY, ControllerProcess, clusters

LEASE_DURATION, RENEW_DEADLINE, RETRY_PERIOD = 4.0, 3.0, 0.5
FAST = ["--leader-elect-lease-duration", f"{LEASE_DURATION:g}s",
        "--leader-elect-renew-deadline", f"{RENEW_DEADLINE:g}s",
        "--leader-elect-retry-period", f"{RETRY_PERIOD:g}s"]
MASTER = "miniplane_leader_election_master_status"
SLICE_CREATES = ('miniplane_api_writes_total{controller="endpointslice",'
                 'resource="endpointslices",verb="create"}')


def leading(ctl: ControllerProcess) -> bool:
    return ctl.metrics().get(MASTER) == 1.0


def record(name: str, ctl: ControllerProcess) -> ProcessRecord:
    """How ``mpctl cluster up`` records a controllers process (for ``cluster status``)."""
    return ProcessRecord(name, ctl.proc.pid if ctl.proc else 0, None, str(ctl.log_path),
                         f"127.0.0.1:{ctl.metrics_port}")


def test_one_process_acts_and_the_standby_takes_over_a_killed_leader(tmp_path: Path) -> None:
    with clusters(tmp_path) as make:
        started = time.monotonic()
        cluster = make(*FAST)  # a fresh cluster: the first process leads at once
        first = cluster.controllers
        assert leading(first)
        assert time.monotonic() - started < 20  # the harness's own readiness budget
        second = ControllerProcess(cluster.api.url, tmp_path / "standby.log", list(FAST))
        try:
            second.start()  # ready as a standby once it has seen the leader
            lease = cluster.client.get(LEASE, "kube-controller-manager", "kube-system")
            holder = lease["spec"]["holderIdentity"]
            assert lease["spec"]["leaseDurationSeconds"] == LEASE_DURATION

            cluster.service("web")
            cluster.pod("web-1", labels={"app": "web"}, ip="10.244.1.5")
            cluster.wait_endpoints("web", {"10.244.1.5": READY})
            assert first.metrics()[SLICE_CREATES] >= 1
            assert not leading(second) and second.metrics().get(SLICE_CREATES, 0) == 0
            processes = [record("controllers-1", first), record("controllers-2", second)]
            assert leader_line(cluster.client, processes) == (
                "controller leader: controllers-1 (Lease kube-system/kube-controller-manager "
                f"held by {holder}, 0 transitions)")

            first.kill()  # SIGKILL: no release, the lease must run out
            killed = time.monotonic()
            cluster.service("api")
            cluster.pod("api-1", labels={"app": "api"}, ip="10.244.1.6")
            wait_until(lambda: leading(second), timeout=LEASE_DURATION + 10,
                       what="the standby to lead")
            takeover = time.monotonic() - killed
            print(f"standby led {takeover:.2f}s after the leader was killed")
            # the standby saw the last renewal up to a (jittered) retry period after it
            assert takeover <= LEASE_DURATION + RETRY_PERIOD * 1.2 + 1.5
            cluster.wait_endpoints("api", {"10.244.1.6": READY})
            assert second.metrics()[SLICE_CREATES] >= 1
            spec = cluster.client.get(LEASE, "kube-controller-manager", "kube-system")["spec"]
            assert spec["holderIdentity"] not in ("", holder)
            assert spec["leaseTransitions"] == 1
            assert leader_line(cluster.client, processes).startswith(
                "controller leader: controllers-2 (")

            # SIGTERM: the controllers stop, then the Lease is released
            assert second.stop() == 0
            spec = cluster.client.get(LEASE, "kube-controller-manager", "kube-system")["spec"]
            assert (spec["holderIdentity"], spec["leaseDurationSeconds"]) == ("", 1)
        finally:
            second.stop()


def test_a_leader_that_cannot_renew_exits_1(tmp_path: Path) -> None:
    with clusters(tmp_path) as make:
        cluster = make(*FAST)
        ctl = cluster.controllers
        assert leading(ctl)
        cluster.api.stop()
        stopped = time.monotonic()
        proc = ctl.proc
        assert proc is not None
        wait_until(lambda: proc.poll() is not None, timeout=RENEW_DEADLINE + 10,
                   what="the leader to give up")
        assert time.monotonic() - stopped <= RENEW_DEADLINE + RETRY_PERIOD + 1.5
        assert proc.returncode == 1
        assert "leader election lost" in ctl.log()


def test_unsafe_election_timing_is_one_line_and_exit_2() -> None:
    out = subprocess.run([str(BIN / "mp-controllers"), "--leader-elect-renew-deadline", "20s"],
                         capture_output=True, text=True, timeout=30)
    assert out.returncode == 2
    assert out.stderr == ("mp-controllers: error: --leader-elect-lease-duration (15s) must be "
                          "greater than --leader-elect-renew-deadline (20s)\n")
