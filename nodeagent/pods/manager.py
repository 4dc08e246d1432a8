"""Pods bound to this node → ``PodWorker``s, status writes, orphan cleanup.

The pod informer (``fieldSelector=spec.nodeName=<node>``) only enqueues: handlers
create, update or stop workers. Status is written by one loop that, for every
worker marked dirty, builds the status (``status.pod_status``) and patches
``pods/<name>/status`` when it differs from what the API server has. Writes wait
while the node is not Ready in the API (``node_ready``), so on recovery the node is
Ready before its pods are.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import shutil
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from apimachinery.kinds import POD, SERVICE
from client.backoff import Backoff
from client.errors import ApiError, Conflict, NotFound
from client.http import AsyncClient
from client.informer import Informer
from componentbase.procs import kill_group, proc_start_time
from componentbase.tasks import cancel_and_wait
from nodeagent.pods import identity, netns
from nodeagent.pods.envsource import EnvSource
from nodeagent.pods.events import EventRecorder
from nodeagent.pods.ipam import Ipam
from nodeagent.pods.runtime import PodWorker, RuntimeConfig
from nodeagent.pods.serviceaccount import ClusterAccess
from nodeagent.pods.status import format_time, pod_status
from nodeagent.pods.volumemanager import ObjectWatches

log = logging.getLogger(__name__)

WORKER_RETRY = Backoff(base=0.5, cap=30.0)  # a failed pod setup is retried, not dropped
STATUS_RETRY = 1.0  # seconds before retrying a failed status write


def _comparable(status: dict[str, Any]) -> str:
    return json.dumps(status, sort_keys=True)


class PodManager:
    def __init__(self, client: AsyncClient, cfg: RuntimeConfig, *, node: str,
                 recorder: EventRecorder | None = None) -> None:
        self.client = client
        self.recorder = recorder
        self.cfg = cfg
        self.node = node
        self.informer = Informer(client, POD, field_selector=f"spec.nodeName={node}")
        self.informer.add_handler(self._on_add, self._on_update, self._on_delete)
        self.access = ClusterAccess(client)
        # every Service, as kubelet's informer: containers get the variables of those
        # that exist when they start (envvars)
        self.services = Informer(client, SERVICE)
        self.env_source = EnvSource(client, self.services.store.list)
        self.watches = ObjectWatches(client)  # the ConfigMaps and Secrets of its volumes
        self.workers: dict[str, PodWorker] = {}
        self.dirty: set[str] = set()
        self.wake = asyncio.Event()
        self.node_ready = asyncio.Event()
        # Awaited before each batch of status writes: makes sure the API has this node
        # Ready first, so a recovering node's pods never turn Ready before it does.
        self.before_writes: Callable[[], Awaitable[None]] | None = None
        self.pod_cidr: str | None = None
        self.host_ip: str | None = None
        self.ipam: Ipam | None = None
        self._started = False

    # -- informer handlers (only bookkeeping) -----------------------------------------------

    def _on_add(self, pod: dict[str, Any]) -> None:
        self._sync(pod)

    def _on_update(self, _old: dict[str, Any], pod: dict[str, Any]) -> None:
        self._sync(pod)

    def _on_delete(self, pod: dict[str, Any]) -> None:
        w = self.workers.get(pod["metadata"]["uid"])
        if w is not None:
            w.delete_now()

    def _sync(self, pod: dict[str, Any]) -> None:
        if not self._started:
            return
        uid = pod["metadata"]["uid"]
        w = self.workers.get(uid)
        if w is not None:
            w.update(pod)
            return
        w = PodWorker(self.cfg, pod, pod_cidr=self.pod_cidr or "", ipam=self.ipam,
                      host_ip=self.host_ip, changed=self._mark, deleted=self._finished,
                      access=self.access, recorder=self.recorder,
                      env_source=self.env_source, watches=self.watches)
        self.workers[uid] = w
        if pod["metadata"].get("deletionTimestamp"):
            w.terminating.set()
        w.task = asyncio.create_task(self._run_worker(w), name=f"pod-{w.key}")

    async def _run_worker(self, w: PodWorker) -> None:
        failures = 0
        while self.workers.get(w.uid) is w:
            try:
                await w.run()
                return
            except Exception:  # noqa: BLE001 - one pod's failure must not stop the agent
                failures += 1
                log.exception("pod %s: worker failed (attempt %d); retrying", w.key, failures)
                await asyncio.sleep(WORKER_RETRY.next(failures))

    def _mark(self, w: PodWorker) -> None:
        self.dirty.add(w.uid)
        self.wake.set()

    async def _finished(self, w: PodWorker) -> None:
        self.workers.pop(w.uid, None)
        self.dirty.discard(w.uid)
        if w.gone:
            return
        meta = w.pod["metadata"]
        with contextlib.suppress(NotFound, Conflict):
            await self.client.delete(POD, meta["name"], meta.get("namespace"),
                                     grace_period_seconds=0,
                                     preconditions={"uid": w.uid})
            log.info("pod %s: deleted", w.key)

    def poke_all(self) -> None:
        """Rewrite every pod's status if it differs (after the node came back)."""
        for uid in self.workers:
            self.dirty.add(uid)
        self.wake.set()

    # -- running -----------------------------------------------------------------------------

    async def run(self, pod_cidr: str, host_ip: str | None) -> None:
        self.pod_cidr, self.host_ip = pod_cidr, host_ip
        self.cfg.state_dir.mkdir(parents=True, exist_ok=True)
        self.ipam = Ipam(self.cfg.state_dir / "ipam.json", pod_cidr)
        informer = asyncio.create_task(self.informer.run(), name="informer-pods")
        writer = asyncio.create_task(self._status_loop(), name="pod-status")
        services = asyncio.create_task(self.services.run(), name="informer-services")
        try:
            await self.informer.wait_synced()
            await self.services.wait_synced()  # kubelet too starts none before
            await self._clean_orphans()
            self._started = True
            for pod in self.informer.store.list():
                self._sync(pod)
            await asyncio.Event().wait()
        finally:
            await cancel_and_wait((informer, writer, services))

    async def _clean_orphans(self) -> None:
        """Kill processes and remove namespaces of pods this node no longer has.

        Only pods recorded in this agent's state dir count as this node's: in a local
        cluster every node's pod namespaces share the host's ``/run/netns`` and one
        prefix, so a namespace without a record may well be another node's pod. Each
        worker records its pod before it creates the namespace, so nothing this
        agent made goes unrecorded.
        """
        live = {p["metadata"]["uid"] for p in self.informer.store.list()}
        pods_dir = self.cfg.state_dir / "pods"
        for d in sorted(pods_dir.iterdir()) if pods_dir.is_dir() else []:
            try:
                data = json.loads((d / "pod.json").read_text())
            except (OSError, ValueError):
                data = {"uid": d.name}
            uid = data.get("uid", d.name)
            if uid in live:
                continue
            for c in (data.get("containers") or {}).values():
                if c.get("pid") and proc_start_time(c["pid"]) == c.get("pidStart"):
                    kill_group(c["pid"], 9)
            await asyncio.to_thread(identity.remove, d)
            await asyncio.to_thread(netns.delete_pod_network, node_ns=self.cfg.node_ns,
                                    pod_ns=netns.pod_ns_name(self.cfg.cluster, uid), uid=uid)
            self.ipam.release(uid)  # type: ignore[union-attr]
            shutil.rmtree(d, ignore_errors=True)
            log.info("removed the leftovers of pod %s (%s)", data.get("key", uid), uid)

    async def _status_loop(self) -> None:
        while True:
            await self.wake.wait()
            self.wake.clear()
            await self.node_ready.wait()
            batch, self.dirty = self.dirty, set()
            failed: set[str] = set()
            if self.before_writes is not None:
                try:
                    await self.before_writes()
                except ApiError as exc:
                    log.warning("node not confirmed Ready; pod status writes wait: %s", exc)
                    self.dirty |= batch
                    await asyncio.sleep(STATUS_RETRY)
                    self.wake.set()
                    continue
            for uid in sorted(batch):
                w = self.workers.get(uid)
                if w is None or w.ip is None:
                    continue
                try:
                    await self._write_status(w)
                except ApiError as exc:
                    log.warning("pod %s: status write failed: %s", w.key, exc)
                    failed.add(uid)
            if failed:
                self.dirty |= failed
                await asyncio.sleep(STATUS_RETRY)
                self.wake.set()

    async def _write_status(self, w: PodWorker) -> None:
        current = self.informer.store.get(w.key) or w.pod
        if current["metadata"].get("uid") != w.uid:
            return  # a new pod of the same name: not ours to write
        old = current.get("status") or {}
        new = pod_status(old_status=old, containers=[c.record for c in w.containers],
                         pod_ip=w.ip, host_ip=w.host_ip, start_time=w.start_time,
                         now=format_time(time.time()))
        merged = {**old, **new}
        if _comparable(merged) == _comparable(old):
            return
        meta = current["metadata"]
        await self.client.patch(POD, meta["name"], {"status": new},
                                namespace=meta.get("namespace"), subresource="status")
        log.info("pod %s: status %s ready=%s ip=%s", w.key, new["phase"],
                 new["conditions"][3]["status"], w.ip)


def default_state_dir(node: str) -> Path:
    return Path(".miniplane") / "nodeagent" / node
