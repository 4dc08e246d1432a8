"""Two mp-controllers processes on one API server: one leads and acts, the other
waits; ``kill -9`` of the leader and the standby takes over within the lease
duration and acts; a leader that cannot renew stops acting and competes again as a
standby in the same process."""

from __future__ import annotations

import subprocess
import time
from dataclasses import replace
from pathlib import Path

import httpx

from apimachinery.kinds import EVENT, LEASE, POD
from apimachinery.timestamps import format_micro_time
from client.http import Client
from controllers.main import NODE_LIFECYCLE_COMPONENT, SCHEDULER_COMPONENT, WATCH_BACKOFF
from mpctl.cluster.leader import leader_line
from mpctl.cluster.state import ProcessRecord
from tests.conftest import BIN, ApiServer, wait_until
from tests.integration.test_controllers_harness import (
    NS,
    READY,
    Cluster,
    ControllerProcess,
    clusters,
)

LEASE_DURATION, RENEW_DEADLINE, RETRY_PERIOD = 4.0, 3.0, 0.5
FAST = ["--leader-elect-lease-duration", f"{LEASE_DURATION:g}s",
        "--leader-elect-renew-deadline", f"{RENEW_DEADLINE:g}s",
        "--leader-elect-retry-period", f"{RETRY_PERIOD:g}s"]
MASTER = "miniplane_leader_election_master_status"
WRITES = "miniplane_api_writes_total{"
LOCK = "kube-controller-manager"
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


def writes(ctl: ControllerProcess) -> float:
    """Every write the process's controllers made (all terms: counters live on)."""
    return sum(v for k, v in ctl.metrics().items() if k.startswith(WRITES))


def readyz(ctl: ControllerProcess) -> tuple[int, str]:
    answer = httpx.get(ctl.readyz_url(), timeout=5)
    return answer.status_code, answer.text.strip()


def set_holder(client: Client, holder: str, seconds: int) -> None:
    """Write the controllers' Lease as another candidate would (``holder`` "" and 1 s:
    released)."""
    lease = client.get(LEASE, LOCK, "kube-system")
    now = format_micro_time(time.time())
    transitions = lease["spec"]["leaseTransitions"] + (1 if holder else 0)
    client.replace(LEASE, {**lease, "spec": {
        "holderIdentity": holder, "leaseDurationSeconds": seconds, "acquireTime": now,
        "renewTime": now, "leaseTransitions": transitions}}, "kube-system")


def acted(cluster: Cluster, events_before: set[str]) -> list[str]:
    """What the controllers would do for the objects made while the leader was away,
    found done: a slice for Service "late", pod "floating" bound, a new Event of theirs."""
    done = []
    if cluster.slices("late"):
        done.append("EndpointSlice for late")
    if cluster.client.get(POD, "floating", NS)["spec"].get("nodeName"):
        done.append("floating scheduled")
    done.extend(f"event {name}" for name in sorted(their_events(cluster) - events_before))
    return done


CONTROLLER_COMPONENTS = ("mp-controllers", SCHEDULER_COMPONENT, NODE_LIFECYCLE_COMPONENT)


def their_events(cluster: Cluster) -> set[str]:
    return {e["metadata"]["name"] for e in cluster.client.list(EVENT, NS)["items"]
            if e.get("reportingComponent") in CONTROLLER_COMPONENTS}


def test_a_leader_that_lost_its_api_server_stands_by_then_leads_again(tmp_path: Path) -> None:
    """The API server away past the renew deadline: the leader stops everything (the
    gauge drops, /readyz says it knows no leader) but the process stays; when the
    server is back and a rival holds the Lease it stands by without acting at all, not
    even on what the old term's caches or queues would have handled; when the rival
    releases, the same process leads again with fresh controllers that do their job."""
    with clusters(tmp_path) as make:
        cluster = make(*FAST)
        ctl = cluster.controllers
        assert leading(ctl) and ctl.proc is not None
        pid = ctl.proc.pid
        cluster.node("n1")
        cluster.service("web")
        cluster.pod("web-1", labels={"app": "web"}, ip="10.244.1.5")
        cluster.wait_endpoints("web", {"10.244.1.5": READY})
        holder = cluster.client.get(LEASE, LOCK, "kube-system")["spec"]["holderIdentity"]

        cluster.api.stop()
        away = time.monotonic()
        wait_until(lambda: not leading(ctl), timeout=RENEW_DEADLINE + 10,
                   what="the leader to give up")
        assert time.monotonic() - away <= RENEW_DEADLINE + RETRY_PERIOD + 1.5
        assert readyz(ctl) == (503, "no leader seen yet")
        wait_until(lambda: "rejoining the election as a standby" in ctl.log(), timeout=5,
                   what="the old term to end")
        written = writes(ctl)

        # While it cannot reach the API server, a rival takes the Lease (on the same
        # database through a second server) and work appears for the controllers.
        side = ApiServer(db_path=cluster.api.db_path, log_path=tmp_path / "side.log")
        with side.client(timeout=10) as client:
            side.start()
            try:
                set_holder(client, "rival", 3600)
                rival = replace(cluster, api=side, client=client)
                rival.service("late")
                rival.pod("late-1", labels={"app": "late"}, ip="10.244.1.7")
                rival.pod("floating", labels={"app": "floating"}, node=None)
                events_before = their_events(rival)  # all from before the loss
            finally:
                side.stop()
        cluster.api.start()

        # back: a standby that knows the leader, ready, not acting
        wait_until(lambda: readyz(ctl) == (200, "ok"), timeout=WATCH_BACKOFF.cap + 5,
                   what="the standby to see the rival lead")
        assert "holder is rival" in ctl.log()
        # A term left running would relist within a watch backoff (at most 5 s) and
        # act at once; the standby must stay idle for longer than that.
        quiet_until = time.monotonic() + WATCH_BACKOFF.cap + 2 * RETRY_PERIOD
        while time.monotonic() < quiet_until:
            assert acted(cluster, events_before) == []
            assert not leading(ctl) and writes(ctl) == written
            assert readyz(ctl) == (200, "ok")
            time.sleep(0.1)

        set_holder(cluster.client, "", 1)  # the rival steps down
        wait_until(lambda: leading(ctl), timeout=RETRY_PERIOD * 1.2 + 3,
                   what="the same process to lead again")
        cluster.wait_endpoints("late", {"10.244.1.7": READY})
        wait_until(lambda: cluster.client.get(POD, "floating", NS)["spec"].get("nodeName")
                   == "n1", timeout=15, what="floating to be scheduled")
        cluster.wait_endpoints("web", {"10.244.1.5": READY})
        wait_until(lambda: readyz(ctl) == (200, "ok"), timeout=10, what="the new term synced")
        assert writes(ctl) > written  # counters carried on across terms
        assert ctl.proc is not None and ctl.proc.pid == pid and ctl.proc.poll() is None
        spec = cluster.client.get(LEASE, LOCK, "kube-system")["spec"]
        assert spec["holderIdentity"] == holder  # its identity for the process's life
        assert spec["leaseTransitions"] == 2  # to the rival, and back
        assert ctl.log().count("leader election lost") == 1
        assert ctl.stop() == 0


def test_unsafe_election_timing_is_one_line_and_exit_2() -> None:
    out = subprocess.run([str(BIN / "mp-controllers"), "--leader-elect-renew-deadline", "20s"],
                         capture_output=True, text=True, timeout=30)
    assert out.returncode == 2
    assert out.stderr == ("mp-controllers: error: --leader-elect-lease-duration (15s) must be "
                          "greater than --leader-elect-renew-deadline (20s)\n")
