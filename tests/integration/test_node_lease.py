"""Node heartbeats through Leases, on a real mp-apiserver and a real mp-controllers.

The node agent here is mp-nodeagent's own Lease code (``nodeagent.node.lease``),
renewing with the node's client certificate from a thread of the test, as the
agent does every ``--heartbeat-interval``; the whole agent needs root and runs in
``test_nodeagent.py``. mp-controllers runs with the controller-manager's own
certificate, so its Lease informer works only if the bootstrap RBAC policy lets
``system:kube-controller-manager`` list and watch Leases.
"""

from __future__ import annotations

import asyncio
import threading
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from apimachinery.kinds import LEASE, NODE
from apimachinery.kubeconfig import kubeconfig
from apimachinery.nodelease import NODE_LEASE_NAMESPACE, duration_for, new_lease, renewed
from client.config import ClientConfig
from client.errors import Forbidden
from client.http import AsyncClient, Client
from controllers.objects import condition
from nodeagent.node.lease import NodeLease
from tests.conftest import ApiServer, session_pki, wait_until
from tests.integration.callers import client_cert
from tests.integration.test_controllers_harness import ControllerProcess

GRACE = 2.0  # the controllers' --node-monitor-grace-period
RENEW = 0.3  # the stand-in agent's --heartbeat-interval
NODE_GROUPS = ("system:nodes",)


def node_config(api: ApiServer, node: str) -> ClientConfig:
    """``system:node:<node>``'s credentials, as its agent's kubeconfig carries them."""
    cert, key = client_cert(f"system:node:{node}", NODE_GROUPS)
    return ClientConfig(server=api.url, ca_file=api.ca_file, client_cert=cert, client_key=key)


def component_kubeconfig(path: Path, api: ApiServer, user: str) -> str:
    """A kubeconfig for ``user`` (a certificate of the test run's CA), as ``mpctl
    cluster up`` writes one per component."""
    cert, key = client_cert(user)
    doc = kubeconfig("test", api.url, Path(session_pki().ca_file).read_bytes(),
                     cert_pem=Path(cert).read_bytes(), key_pem=Path(key).read_bytes())
    path.write_text(yaml.safe_dump(doc))
    return str(path)


class Renewer:
    """A node agent's Lease loop in a thread: renew, wait ``RENEW``, until stopped."""

    def __init__(self, config: ClientConfig, node: str, node_uid: str) -> None:
        self.config, self.node, self.node_uid = config, node, node_uid
        self.renewals = 0
        self.error: BaseException | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=lambda: asyncio.run(self._run()), daemon=True)

    def start(self) -> Renewer:
        self._thread.start()
        return self

    async def _run(self) -> None:
        async with AsyncClient(self.config, timeout=5) as client:
            lease = NodeLease(client, self.node, duration=duration_for(RENEW))
            while not self._stop.is_set():
                try:
                    await lease.renew(time.time(), self.node_uid)
                except BaseException as exc:  # reported by the test, not lost in a thread
                    self.error = exc
                    return
                self.renewals += 1
                await asyncio.sleep(RENEW)  # the renew period, as the agent's

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=10)


def ready_of(node: dict[str, Any]) -> str | None:
    c = condition(node, "Ready")
    return c["status"] if c else None


def post_ready(config: ClientConfig, node: str) -> None:
    """The agent's first status report; it posts again only on a change or minutes later."""
    now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    with Client(config) as client:
        client.patch(NODE, node, {"status": {"conditions": [{
            "type": "Ready", "status": "True", "reason": "KubeletReady",
            "lastHeartbeatTime": now, "lastTransitionTime": now}]}},
            patch_type="strategic", subresource="status")


def test_lease_renewals_keep_a_node_ready_and_their_end_makes_it_unknown(make_apiserver,
                                                                         tmp_path) -> None:
    api = make_apiserver()
    admin = api.client(timeout=10)
    uid = admin.create(NODE, {"metadata": {"name": "n1"}})["metadata"]["uid"]
    post_ready(node_config(api, "n1"), "n1")
    renewer = Renewer(node_config(api, "n1"), "n1", uid).start()
    ctl = ControllerProcess(
        api.url, tmp_path / "controllers.log",
        ["--node-monitor-grace-period", f"{GRACE:g}", "--controllers", "nodelifecycle"],
        kubeconfig=component_kubeconfig(tmp_path / "cm.kubeconfig", api,
                                        "system:kube-controller-manager"))
    try:
        wait_until(lambda: renewer.renewals >= 1 or renewer.error, timeout=10,
                   what="the first renewal")
        assert renewer.error is None, repr(renewer.error)
        lease = admin.get(LEASE, "n1", NODE_LEASE_NAMESPACE)
        assert lease["spec"]["holderIdentity"] == "n1"
        assert lease["spec"]["leaseDurationSeconds"] == 2
        assert lease["metadata"]["ownerReferences"] == [
            {"apiVersion": "v1", "kind": "Node", "name": "n1", "uid": uid}]
        ctl.start()  # ready once its informers (Leases in kube-node-lease too) have listed
        written = admin.get(NODE, "n1")["metadata"]["resourceVersion"]

        # Two and a half grace periods with the Lease as the only heartbeat: the node
        # stays Ready and nobody writes it.
        renewals = renewer.renewals
        deadline = time.monotonic() + 2.5 * GRACE
        while time.monotonic() < deadline:
            node = admin.get(NODE, "n1")
            assert ready_of(node) == "True", node["status"]
            assert node["metadata"]["resourceVersion"] == written
            assert renewer.error is None, repr(renewer.error)
            time.sleep(0.1)  # the pace of looking; the window is the deadline
        assert renewer.renewals - renewals >= 5
        assert "no heartbeat" not in ctl.log()

        stopped = time.monotonic()
        renewer.stop()
        wait_until(lambda: ready_of(admin.get(NODE, "n1")) == "Unknown", timeout=GRACE + 10,
                   what="n1 Ready=Unknown once its Lease is no longer renewed")
        took = time.monotonic() - stopped
        assert GRACE - RENEW <= took < GRACE + 3, took
        assert condition(admin.get(NODE, "n1"), "Ready")["reason"] == "NodeStatusUnknown"
        # logged once the write is done, so it may land just after the test sees it
        wait_until(lambda: "node n1: no heartbeat for" in ctl.log(), timeout=5,
                   what="the controller to log why")
    finally:
        renewer.stop()
        ctl.stop()
        admin.close()


def test_a_node_renews_only_its_own_lease(make_apiserver) -> None:
    api = make_apiserver()
    admin = api.client(timeout=10)
    uids = {name: admin.create(NODE, {"metadata": {"name": name}})["metadata"]["uid"]
            for name in ("n1", "n2")}

    async def scenario() -> dict[str, Any]:
        async with AsyncClient(node_config(api, "n1")) as n1, \
                AsyncClient(node_config(api, "n2")) as n2:
            await NodeLease(n1, "n1", duration=40).renew(time.time(), uids["n1"])
            theirs = await NodeLease(n2, "n2", duration=40).renew(time.time(), uids["n2"])
            # n1's agent, as if it held n2's Lease: read, renewal, creation, deletion
            with pytest.raises(Forbidden):
                await NodeLease(n1, "n2", duration=40).renew(time.time(), uids["n1"])
            with pytest.raises(Forbidden):
                await n1.replace(LEASE, renewed(theirs, "n1", duration=40, now=time.time(),
                                                node_uid=uids["n1"]), NODE_LEASE_NAMESPACE)
            with pytest.raises(Forbidden):
                await n1.create(LEASE, new_lease("n3", duration=40, now=time.time(),
                                                 node_uid=None), NODE_LEASE_NAMESPACE)
            with pytest.raises(Forbidden):
                await n1.delete(LEASE, "n2", NODE_LEASE_NAMESPACE)
            # its own Lease, but not outside kube-node-lease
            elsewhere = new_lease("n1", duration=40, now=time.time(), node_uid=None)
            with pytest.raises(Forbidden):
                await n1.create(LEASE, {**elsewhere, "metadata": {"name": "n1"}}, "default")
            # and renewing its own still works
            await NodeLease(n1, "n1", duration=40).renew(time.time(), uids["n1"])
            return theirs

    try:
        theirs = asyncio.run(scenario())
        assert admin.get(LEASE, "n2", NODE_LEASE_NAMESPACE) == theirs  # untouched
        assert [lease["metadata"]["name"] for lease in admin.list(
            LEASE, NODE_LEASE_NAMESPACE)["items"]] == ["n1", "n2"]
        assert admin.list(LEASE, "default")["items"] == []
    finally:
        admin.close()
