"""Events written by the shared recorder, read with the real kubectl: ``get events``
(its columns, ``-o wide``'s COUNT and FIRST SEEN, ``--field-selector``), ``get events
-w`` (a line when an event repeats), ``describe pod`` and ``kubectl events``.

Each test runs with the kubectl of the test extras (1.37) and, when installed, the
system's /usr/bin/kubectl (1.32). Both read core/v1 Events for all of these (``get events`` resolves to the
core group first; ``kubectl events`` lists ``/api/v1/.../events``), so the server
serves no events.k8s.io group and kubectl never asks for one.
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
import queue
import re
import subprocess
import threading
import time
from typing import Any

import pytest

from apimachinery.kinds import EVENT
from tests.compat.conftest import Kubectl, table
from tests.conftest import USER_KUBECTL, ApiServer
from tests.integration.test_events import make_pod, record_all


def unhealthy(pod: dict[str, Any], message: str = "Readiness probe failed: db down"
              ) -> dict[str, Any]:
    return {"obj": pod, "kind": "Pod", "type_": "Warning", "reason": "Unhealthy",
            "message": message, "field_path": "spec.containers{web}"}


SYSTEM_KUBECTL = str(USER_KUBECTL)


@dataclasses.dataclass
class OtherKubectl(Kubectl):
    binary: str = SYSTEM_KUBECTL

    def args(self, *args: str, server: bool = True) -> list[str]:
        return [self.binary, *super().args(*args, server=server)[1:]]


@pytest.fixture(params=["extras", "system"])
def any_kubectl(request: pytest.FixtureRequest, kubectl: Kubectl) -> Kubectl:
    if request.param == "extras":
        return kubectl
    if not os.access(SYSTEM_KUBECTL, os.X_OK):
        pytest.skip(f"no {SYSTEM_KUBECTL}")
    return OtherKubectl(kubectl.server, kubectl.home, kubectl.kubeconfig)


def seconds(age: str) -> int:
    """kubectl's age of under two minutes ("42s", "101s") in seconds."""
    assert re.fullmatch(r"\d+s", age), age
    return int(age[:-1])


def started(pod: dict[str, Any]) -> dict[str, Any]:
    return {"obj": pod, "kind": "Pod", "type_": "Normal", "reason": "Started",
            "message": "Started container web", "field_path": "spec.containers{web}"}


def test_get_describe_and_events_show_counts(any_kubectl: Kubectl,
                                             apiserver: ApiServer) -> None:
    kubectl = any_kubectl
    client = apiserver.client()
    pod = make_pod(client, "web")
    now = time.time()
    asyncio.run(record_all(apiserver.url, [
        (now - 100, started(pod)), (now - 100, unhealthy(pod)), (now - 40, unhealthy(pod)),
        (now - 10, unhealthy(pod))], component="kubelet", host="node-a"))

    rows = table(kubectl.out("get", "events"))
    assert rows[0] == ["LAST SEEN", "TYPE", "REASON", "OBJECT", "MESSAGE"]
    by_reason = {r[2]: r for r in rows[1:]}
    assert sorted(by_reason) == ["Started", "Unhealthy"]
    assert by_reason["Started"][1:] == ["Normal", "Started", "pod/web", "Started container web"]
    assert by_reason["Unhealthy"][1:] == ["Warning", "Unhealthy", "pod/web",
                                          "Readiness probe failed: db down"]
    assert seconds(by_reason["Unhealthy"][0]) in range(10, 20)
    assert seconds(by_reason["Started"][0]) in range(100, 110)

    # --sort-by asks for the whole objects in the rows (includeObject=Object)
    ordered = table(kubectl.out("get", "events", "--sort-by", ".lastTimestamp"))
    assert [r[2] for r in ordered[1:]] == ["Started", "Unhealthy"]
    newest_first = table(kubectl.out("get", "events", "--sort-by", ".firstTimestamp",
                                     "-o", "wide"))
    assert [r[-2] for r in newest_first[1:]] == ["1", "3"]

    wide = table(kubectl.out("get", "events", "-o", "wide", "--field-selector",
                             "reason=Unhealthy"))
    assert wide[0] == ["LAST SEEN", "TYPE", "REASON", "OBJECT", "SUBOBJECT", "SOURCE",
                       "MESSAGE", "FIRST SEEN", "COUNT", "NAME"]
    [row] = wide[1:]
    assert row[1:7] == ["Warning", "Unhealthy", "pod/web", "spec.containers{web}",
                        "kubelet, node-a", "Readiness probe failed: db down"]
    assert seconds(row[7]) in range(100, 110) and row[8] == "3"

    assert table(kubectl.out("get", "events", "--field-selector", "source=kubelet"))[1:]
    assert "No resources found" in kubectl.run(
        "get", "events", "--field-selector", "reason=BackOff").stderr

    described = kubectl.out("describe", "pod", "web")
    assert re.search(r"Warning\s+Unhealthy\s+1\d?s \(x3 over 10\ds\)\s+kubelet\s+"
                     # newer kubectl (1.37) names the container first; 1.32 does not
                     r"(?:spec\.containers\{web\}: )?Readiness probe failed: db down",
                     described), \
        described
    events = kubectl.out("events", "--for", "pod/web")
    assert re.search(r"\(x3 over 10\ds\)\s+Warning\s+Unhealthy\s+Pod/web\s+"
                     "Readiness probe failed: db down", events), events
    client.close()


def _lines(proc: subprocess.Popen[str]) -> queue.Queue[str]:
    out: queue.Queue[str] = queue.Queue()

    def pump() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            out.put(line)

    threading.Thread(target=pump, daemon=True).start()
    return out


def _next(lines: queue.Queue[str], what: str) -> str:
    try:
        return lines.get(timeout=20)
    except queue.Empty:
        raise AssertionError(f"kubectl get events -w printed no line for {what}") from None


def test_get_events_watch_prints_new_and_repeated_events(any_kubectl: Kubectl,
                                                         apiserver: ApiServer) -> None:
    kubectl = any_kubectl
    client = apiserver.client()
    pod = make_pod(client, "api")
    proc = subprocess.Popen(kubectl.args("get", "events", "-w", "--field-selector",
                                         "involvedObject.name=api"),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=kubectl.env())
    try:
        lines = _lines(proc)
        seen: list[list[str]] = []

        def read_first(i: int) -> None:
            if i == 0:  # kubectl prints its header with the first event
                assert _next(lines, "the header").split()[:3] == ["LAST", "SEEN", "TYPE"]
                seen.append(_next(lines, "a new event").split())

        now = time.time()
        probe = unhealthy(pod, "Liveness probe failed: timeout")
        asyncio.run(record_all(apiserver.url, [(now - 30, probe), (now - 5, probe)],
                               component="kubelet", host="node-b", between=read_first))
        assert seen[0][1:4] == ["Warning", "Unhealthy", "pod/api"]
        assert seconds(seen[0][0]) in range(30, 40)
        # the repeat patched the same Event: kubectl prints its row again, seen anew
        again = _next(lines, "the repeated event").split()
        assert again[1:4] == ["Warning", "Unhealthy", "pod/api"]
        assert seconds(again[0]) in range(5, 15)
        [event] = client.list(EVENT, "default", field_selector="involvedObject.name=api")[
            "items"]
        assert event["count"] == 2
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    client.close()
