"""Harness for the mp-controllers integration tests (helpers only; no tests here).

Every test runs a real ``mp-apiserver`` and a real ``mp-controllers`` process.
Pods are API objects only (no node agent exists): a test sets a pod's IP and
Ready condition through ``/status`` itself, and plays a node agent by posting
heartbeats (``Heartbeats``) and by finishing graceful deletions with grace 0.
Every process and thread a test starts is stopped at teardown, even on failure.
"""

from __future__ import annotations

import contextlib
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from apimachinery.kinds import ENDPOINTSLICE, NAMESPACE, NODE, POD, SERVICE
from client.errors import NotFound
from client.http import Client
from controllers.objects import format_time
from controllers.slices import MANAGED_BY_LABEL, SERVICE_NAME_LABEL
from tests.conftest import (
    BIN,
    ApiServer,
    ManagedProcess,
    admin_config,
    admin_kubeconfig,
    free_port,
    wait_until,
)

NS = "default"


@dataclass
class ControllerProcess(ManagedProcess):
    """One real mp-controllers process against ``server``; restartable."""

    server: str
    log_path: Path
    args: list[str] = field(default_factory=list)
    metrics_port: int = field(default_factory=free_port)
    proc: subprocess.Popen | None = None
    kubeconfig: str = field(default_factory=admin_kubeconfig)  # whose credentials
    label = "mp-controllers"

    @property
    def metrics_url(self) -> str:
        return f"http://127.0.0.1:{self.metrics_port}"

    def command(self) -> list[str]:
        return [str(BIN / "mp-controllers"), "--server", self.server, "--kubeconfig",
                self.kubeconfig,
                "--metrics-listen", f"127.0.0.1:{self.metrics_port}", *self.args]

    def readyz_url(self) -> str:
        return self.metrics_url + "/readyz"

    def metrics(self) -> dict[str, float]:
        """Every sample of /metrics as ``name{labels}`` → value."""
        text = httpx.get(self.metrics_url + "/metrics", timeout=5).text
        out: dict[str, float] = {}
        for line in text.splitlines():
            if line and not line.startswith("#"):
                name, _, value = line.rpartition(" ")
                out[name] = float(value)
        return out

    def log(self) -> str:
        return self.log_path.read_text()


class Heartbeats:
    """Plays the node agents' heartbeat loop: every ``interval``, each beating node's
    Ready condition gets ``status: True`` and a fresh ``lastHeartbeatTime``."""

    def __init__(self, url: str, interval: float = 0.3) -> None:
        self.client = Client(admin_config(url), timeout=5)
        self.interval = interval
        self.beating: set[str] = set()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def start_beating(self, *names: str) -> None:
        with self._lock:
            self.beating.update(names)
        for name in names:
            self.beat(name)

    def stop_beating(self, *names: str) -> None:
        with self._lock:
            self.beating.difference_update(names)

    def beat(self, name: str) -> None:
        now = format_time(time.time())
        self.client.patch(NODE, name, {"status": {"conditions": [{
            "type": "Ready", "status": "True", "reason": "AgentReady",
            "message": "test agent", "lastHeartbeatTime": now, "lastTransitionTime": now}]}},
            patch_type="strategic", subresource="status")

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            with self._lock:
                names = sorted(self.beating)
            for name in names:
                with contextlib.suppress(Exception):  # the server may be restarting
                    self.beat(name)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)
        self.client.close()


@dataclass
class Cluster:
    """An API server, a controllers process, and a client to drive them."""

    api: ApiServer
    controllers: ControllerProcess
    client: Client
    heartbeats: Heartbeats

    # -- objects ---------------------------------------------------------------------

    def namespace(self, name: str) -> None:
        self.client.create(NAMESPACE, {"metadata": {"name": name}})

    def node(self, name: str, *, labels: dict | None = None, beating: bool = True) -> dict:
        now = format_time(time.time())
        node = self.client.create(NODE, {
            "metadata": {"name": name, "labels": labels or {}},
            "status": {"conditions": [{"type": "Ready", "status": "True",
                                       "lastHeartbeatTime": now,
                                       "lastTransitionTime": now}]}})
        if beating:
            self.heartbeats.start_beating(name)
        return node

    def service(self, name: str, *, selector: dict | None = None, ns: str = NS,
                ports: list | None = None, **spec) -> dict:
        return self.client.create(SERVICE, {
            "metadata": {"name": name, "namespace": ns},
            "spec": {"selector": {"app": name} if selector is None else selector,
                     "ports": ports or [{"name": "http", "port": 80, "targetPort": 8080}],
                     **spec}}, ns)

    def pod(self, name: str, *, labels: dict, ns: str = NS, node: str | None = "n1",
            ip: str | None = None, ready: bool = True, ports: list | None = None,
            grace: int | None = None) -> dict:
        spec: dict = {"containers": [{"name": "main", "image": "busybox",
                                      "ports": ports or []}]}
        if node:
            spec["nodeName"] = node
        if grace is not None:
            spec["terminationGracePeriodSeconds"] = grace
        obj = self.client.create(POD, {"metadata": {"name": name, "namespace": ns,
                                                    "labels": labels}, "spec": spec}, ns)
        if ip:
            obj = self.set_status(name, ip=ip, ready=ready, ns=ns)
        return obj

    def set_status(self, name: str, *, ip: str | None = None, ready: bool = True,
                   ns: str = NS) -> dict:
        status: dict = {"phase": "Running", "conditions": [
            {"type": "Ready", "status": "True" if ready else "False",
             "lastTransitionTime": format_time(time.time())}]}
        if ip:
            status["podIP"] = ip
            status["podIPs"] = [{"ip": ip}]
        return self.client.patch(POD, name, {"status": status}, namespace=ns,
                                 patch_type="strategic", subresource="status")

    def relabel(self, name: str, labels: dict, *, ns: str = NS) -> dict:
        return self.client.patch(POD, name, {"metadata": {"labels": labels}}, namespace=ns)

    # -- what the controllers made -----------------------------------------------------

    def slices(self, service: str, *, ns: str = NS) -> list[dict]:
        items = self.client.list(ENDPOINTSLICE, ns,
                                 label_selector=f"{SERVICE_NAME_LABEL}={service}")["items"]
        return [s for s in items
                if s["metadata"]["labels"].get(MANAGED_BY_LABEL) ==
                "endpointslice-controller.k8s.io"]

    def endpoints(self, service: str, *, ns: str = NS) -> dict[str, tuple[bool, bool, bool]]:
        """address → (ready, serving, terminating) over all of the Service's slices."""
        out: dict[str, tuple[bool, bool, bool]] = {}
        for s in self.slices(service, ns=ns):
            for e in s.get("endpoints") or []:
                address = e["addresses"][0]
                assert address not in out, f"{address} is in two slices of {service}"
                c = e["conditions"]
                out[address] = (c["ready"], c["serving"], c["terminating"])
        return out

    def wait_endpoints(self, service: str, expected: dict, *, ns: str = NS,
                       timeout: float = 15.0) -> None:
        last: dict = {}

        def check() -> bool:
            nonlocal last
            last = self.endpoints(service, ns=ns)
            return last == expected

        try:
            wait_until(check, timeout=timeout, what=f"endpoints of {ns}/{service}")
        except AssertionError as exc:
            raise AssertionError(f"{exc}: have {last}, want {expected}") from None

    def pod_ready(self, name: str, *, ns: str = NS) -> str | None:
        pod = self.client.get(POD, name, ns)
        return next((c["status"] for c in pod["status"].get("conditions") or []
                     if c["type"] == "Ready"), None)

    def exists(self, kind, name: str, ns: str | None = None) -> bool:
        try:
            self.client.get(kind, name, ns)
        except NotFound:
            return False
        return True


READY = (True, True, False)
NOT_READY = (False, False, False)
TERMINATING = (False, True, True)


@contextmanager
def clusters(directory: Path) -> Iterator[Callable[..., Cluster]]:
    """``make(*controller_args)`` → a started ``Cluster`` with its own API server and
    database under ``directory``. Everything made is stopped on exit, even on failure.
    (A context manager rather than a fixture, so test modules choose the scope.)"""
    made: list[Cluster] = []

    def make(*args: str) -> Cluster:
        n = len(made)
        api = ApiServer(db_path=directory / f"state{n}.db",
                        log_path=directory / f"apiserver{n}.log")
        controllers = ControllerProcess(api.url, directory / f"controllers{n}.log", list(args))
        client = Client(admin_config(api.url), timeout=10)
        cluster = Cluster(api, controllers, client, Heartbeats(api.url))
        made.append(cluster)
        api.start()
        controllers.start()
        return cluster

    try:
        yield make
    finally:
        for cluster in made:
            cluster.heartbeats.close()
            cluster.controllers.stop()
            cluster.api.stop()
            cluster.client.close()
