"""The node part of ``mp-nodeagent``: register, heartbeat, network, then pods.

``NodeAgent.run`` registers the Node (or refreshes it after a restart) and then
heartbeats as a kubelet does (KEP-589): it renews its Lease in ``kube-node-lease``
every ``heartbeat_interval`` (``nodeagent.node.lease``; the node lifecycle
controller watches it), and checks its Node status just as often but patches
``nodes/<name>/status`` only when it changed or every ``status_report_interval``
(``nodeagent.node.report``). It keeps routes to the other nodes' pod CIDRs from a
Node informer, and once ``spec.podCIDR`` is set builds ``cni0`` and starts the pod
manager. It never blocks the proxy: both run as tasks of the same loop.
"""

from __future__ import annotations

import asyncio
import logging
import platform
import time
from dataclasses import dataclass
from typing import Any

from apimachinery import names
from apimachinery.kinds import NODE
from apimachinery.nodelease import duration_for
from client.backoff import Backoff
from client.errors import AlreadyExists, ApiError, NotFound
from client.events import Recorder
from client.http import AsyncClient
from client.informer import Informer
from componentbase.tasks import cancel_and_wait
from nodeagent.node import network
from nodeagent.node.capacity import capacity as node_capacity
from nodeagent.node.lease import NodeLease
from nodeagent.node.report import report_due
from nodeagent.pods import events as pod_events
from nodeagent.pods.manager import PodManager
from nodeagent.pods.runtime import RuntimeConfig
from nodeagent.pods.status import format_time

log = logging.getLogger(__name__)

BACKOFF = Backoff(base=0.1, cap=5.0)
VERSION = "v1.30.0-miniplane"
EVENT_FLUSH = 2.0  # seconds a stopping agent gives its last events to reach the API


@dataclass(frozen=True)
class NodeConfig:
    node: str
    netns: str | None
    cluster_cidr: str
    service_cidr: str | None
    heartbeat_interval: float
    runtime: RuntimeConfig
    # kubelet's nodeStatusReportFrequency: an unchanged status is posted this often
    status_report_interval: float = 300.0
    api_port: int | None = None  # the agent API's, for status.daemonEndpoints
    # kubelet's --node-labels: set at registration, and put back if they differ on
    # an existing Node (kubelet does so for its default labels, the zone among them)
    labels: tuple[tuple[str, str], ...] = ()


def node_labels(text: str) -> tuple[tuple[str, str], ...]:
    """``--node-labels``: ``k=v,k2=v2`` → sorted pairs; each key must be a qualified
    name and each value a label value (ValueError, which argparse reports)."""
    pairs: dict[str, str] = {}
    for item in filter(None, text.split(",")):
        key, sep, value = item.partition("=")
        problems = ([] if sep else ["expected KEY=VALUE"]) + names.is_qualified_name(key) \
            + names.is_valid_label_value(value)
        if problems:
            raise ValueError(f"{item!r}: {'; '.join(problems)}")
        pairs[key] = value
    return tuple(sorted(pairs.items()))


def node_status(*, ip: str | None, ready_since: str, now: str,
                api_port: int | None = None, hostname: str | None = None) -> dict[str, Any]:
    """The status the agent posts: addresses, capacity, nodeInfo, the Ready condition.

    ``hostname``: the node's name as its ``Hostname`` address (kubelet's with
    ``--hostname-override``), which the API server dials first by default
    (``--kubelet-preferred-address-types``): in compose the node container's name."""
    capacity = node_capacity()
    uname = platform.uname()
    status: dict[str, Any] = {
        "addresses": ([{"type": "InternalIP", "address": ip}] if ip else [])
        + ([{"type": "Hostname", "address": hostname}] if hostname else []),
        "capacity": capacity,
        "allocatable": capacity,
        "nodeInfo": {"kubeletVersion": VERSION, "kubeProxyVersion": VERSION,
                     "operatingSystem": "linux", "architecture": uname.machine,
                     "kernelVersion": uname.release, "osImage": "miniplane",
                     "containerRuntimeVersion": "miniplane://process",
                     "machineID": "", "systemUUID": "", "bootID": ""},
        "conditions": [{"type": "Ready", "status": "True", "reason": "KubeletReady",
                        "message": "mp-nodeagent is posting ready status",
                        "lastHeartbeatTime": now, "lastTransitionTime": ready_since}],
    }
    if api_port:  # where the API server reaches the agent's API (nodeagent.api)
        status["daemonEndpoints"] = {"kubeletEndpoint": {"Port": api_port}}
    return status


class NodeAgent:
    def __init__(self, api: Any, cfg: NodeConfig) -> None:
        self.cfg = cfg
        self.client = AsyncClient(api, timeout=10.0)
        self.nodes = Informer(self.client, NODE, backoff=BACKOFF)
        self.nodes.add_handler(lambda _n: self._nodes_changed(),
                               lambda _o, _n: self._nodes_changed(),
                               lambda _n: self._nodes_changed())
        # kubelet's events (source kubelet, host <node>): see nodeagent.pods.events
        self.recorder = Recorder(self.client, pod_events.COMPONENT, wall=time.time,
                                 host=cfg.node)
        self.pods = PodManager(self.client, cfg.runtime, node=cfg.node,
                               recorder=self.recorder)
        self.pods.before_writes = self._ensure_ready
        self.lease = NodeLease(self.client, cfg.node,
                               duration=duration_for(cfg.heartbeat_interval))
        self.ip: str | None = None
        self.ready_since = format_time(time.time())
        self.node_uid: str | None = None
        self._registered = asyncio.Event()
        self._posted: dict[str, Any] | None = None  # the status last posted
        self._posted_at = 0.0  # monotonic
        self._lease_renewed_at: float | None = None  # monotonic
        self._routes_dirty = asyncio.Event()
        self._cidr = asyncio.Event()
        self._stop = asyncio.Event()

    def stop(self) -> None:
        self._stop.set()

    def _nodes_changed(self) -> None:
        self._routes_dirty.set()
        me = self.nodes.store.get(self.cfg.node)
        if me and (me.get("spec") or {}).get("podCIDR"):
            self._cidr.set()

    async def run(self) -> None:
        self.ip = await asyncio.to_thread(network.node_ip, self.cfg.netns)
        tasks = [asyncio.create_task(self._status_loop(), name="node-status"),
                 asyncio.create_task(self._lease_loop(), name="node-lease"),
                 asyncio.create_task(self.nodes.run(), name="informer-nodes"),
                 asyncio.create_task(self._routes_loop(), name="node-routes"),
                 asyncio.create_task(self._pods(), name="node-pods")]
        try:
            await self._stop.wait()
        finally:
            await cancel_and_wait(tasks)
            await self.recorder.flush(EVENT_FLUSH)
            await self.recorder.close()
            await self.client.aclose()

    async def _register(self) -> None:
        try:
            node = await self.client.get(NODE, self.cfg.node)
        except NotFound:
            try:
                node = await self.client.create(NODE, {
                    "apiVersion": "v1", "kind": "Node",
                    "metadata": {"name": self.cfg.node,
                                 "labels": {"kubernetes.io/hostname": self.cfg.node,
                                            "kubernetes.io/os": "linux",
                                            **dict(self.cfg.labels)}},
                    "spec": {}})
                log.info("registered node %s (%s)", self.cfg.node, self.ip)
            except AlreadyExists:
                node = await self.client.get(NODE, self.cfg.node)
        have = (node.get("metadata") or {}).get("labels") or {}
        stale = {k: v for k, v in self.cfg.labels if have.get(k) != v}
        if stale:
            node = await self.client.patch(NODE, self.cfg.node, {"metadata": {"labels": stale}})
            log.info("node %s: labels %s set", self.cfg.node, stale)
        self.node_uid = (node.get("metadata") or {}).get("uid") or None

    def _ready_in_cache(self) -> str | None:
        """The cached Node's Ready status ("" without one); None if not cached."""
        me = self.nodes.store.get(self.cfg.node)
        if me is None:
            return None
        return next((str(c.get("status")) for c in (me.get("status") or {}).get("conditions")
                     or [] if c.get("type") == "Ready"), "")

    async def _ensure_ready(self) -> None:
        """Post the status now unless the cache already shows this node Ready."""
        if self._ready_in_cache() != "True":
            await self._post_status()
            log.info("node %s: Ready posted before pod status writes", self.cfg.node)

    def _status(self) -> dict[str, Any]:
        """The status to post now; a NotReady → Ready transition moves ``ready_since``."""
        if self.nodes.has_synced and self._ready_in_cache() != "True":
            self.ready_since = format_time(time.time())
        return node_status(ip=self.ip, ready_since=self.ready_since, api_port=self.cfg.api_port,
                           hostname=self.cfg.node,
                           now=format_time(time.time()))

    async def _post_status(self, status: dict[str, Any] | None = None) -> None:
        status = status if status is not None else self._status()
        await self.client.patch(NODE, self.cfg.node, {"status": status}, subresource="status")
        self._posted, self._posted_at = status, time.monotonic()

    def _lease_current(self) -> bool:
        """Renewed within its duration: the Lease is the heartbeat, status can wait."""
        at = self._lease_renewed_at
        return at is not None and time.monotonic() - at < self.lease.duration

    async def _report_status(self) -> None:
        """Post the status if it changed, the API shows the node not Ready, or the
        report period in force has passed (see ``nodeagent.node.report``)."""
        status = self._status()
        every = (self.cfg.status_report_interval if self._lease_current()
                 else self.cfg.heartbeat_interval)
        reason = report_due(desired=status, posted=self._posted,
                            api_ready=self._ready_in_cache(),
                            since_post=time.monotonic() - self._posted_at, every=every)
        if reason is not None:
            await self._post_status(status)
            log.debug("node %s: status posted (%s)", self.cfg.node, reason)

    async def _status_loop(self) -> None:
        registered = False
        failures = 0
        while True:
            try:
                if not registered:
                    await self._register()
                    registered = True
                    self._registered.set()
                await self._report_status()
                if failures or not self.pods.node_ready.is_set():
                    log.info("node %s: Ready posted", self.cfg.node)
                    self.pods.node_ready.set()
                    self.pods.poke_all()
                failures = 0
                await asyncio.sleep(self.cfg.heartbeat_interval)
            except ApiError as exc:
                failures += 1
                if isinstance(exc, NotFound):
                    registered = False
                if failures == 1:
                    log.warning("node %s: status update failed: %s", self.cfg.node, exc)
                self.pods.node_ready.clear()
                await asyncio.sleep(min(self.cfg.heartbeat_interval, BACKOFF.next(failures)))

    async def _lease_loop(self) -> None:
        """Renew the node's Lease every heartbeat interval, once the Node exists (the
        Lease names it as its owner)."""
        await self._registered.wait()
        failures = 0
        while True:
            try:
                await self.lease.renew(time.time(), self.node_uid)
                self._lease_renewed_at = time.monotonic()
                if failures:
                    log.info("node %s: Lease renewed again", self.cfg.node)
                failures = 0
                await asyncio.sleep(self.cfg.heartbeat_interval)
            except ApiError as exc:
                failures += 1
                if failures == 1:
                    log.warning("node %s: Lease renewal failed (Node status is the heartbeat "
                                "meanwhile): %s", self.cfg.node, exc)
                await asyncio.sleep(min(self.cfg.heartbeat_interval, BACKOFF.next(failures)))

    async def _routes_loop(self) -> None:
        await self.nodes.wait_synced()
        self._nodes_changed()
        while True:
            await self._routes_dirty.wait()
            self._routes_dirty.clear()
            desired = network.desired_routes(self.nodes.store.list(), self_name=self.cfg.node)
            try:
                await asyncio.to_thread(network.sync_routes, self.cfg.netns, desired,
                                        cluster_cidr=self.cfg.cluster_cidr)
            except RuntimeError as exc:
                log.warning("node routes: %s", exc)
                await asyncio.sleep(1.0)
                self._routes_dirty.set()

    async def _pods(self) -> None:
        try:
            await self._run_pods()
        except Exception:
            log.exception("node %s: the pod runtime failed", self.cfg.node)
            raise

    async def _run_pods(self) -> None:
        await self._cidr.wait()
        node = self.nodes.store.get(self.cfg.node)
        assert node is not None  # _cidr is set only once the node is cached with a podCIDR
        cidr = node["spec"]["podCIDR"]
        log.info("node %s: pod CIDR %s", self.cfg.node, cidr)
        while True:
            try:
                await asyncio.to_thread(network.setup_node, self.cfg.netns, cidr,
                                        self.cfg.service_cidr)
                break
            except (RuntimeError, OSError) as exc:
                log.error("node network setup failed (retrying): %s", exc)
                await asyncio.sleep(2.0)
        await self.pods.run(cidr, self.ip)
