"""Keeps each pod's ``configMap``/``secret``/``projected``/``downwardAPI`` volumes on disk.

``ObjectWatches`` is the node's cache of the ConfigMaps and Secrets its pods refer
to: one watch per object (``fieldSelector=metadata.name=<name>``, which the Node
authorizer lets a node do for objects its pods refer to, as the kubelet's
watch-based manager does), shared by every pod that uses it and dropped with the
last one. An object seen ``immutable`` is kept and its watch stopped: it is never
read again (as in Kubernetes, where a change needs a new object and new pods).

``PodVolumes`` writes one pod's volumes to ``<pod dir>/volumes/<name>`` with the
atomic writer, and rewrites them whenever an object they use changes, the pod's
metadata changes (downward API) or a projected token nears 80% of its life. So a
change reaches a container within a watch event, not a sync period. Until every
volume has been set up once, ``problem`` says why (a required object missing: the
containers wait in ``ContainerCreating`` and a ``FailedMount`` event names it);
a later failure keeps the last content, as the kubelet does.

The files belong to root, group ``fsGroup`` when the pod has one (then also
group-readable); the volume directory is 0755, readable by the pod's user. The
pod directory above is root's alone (0700), so no host user reaches them.
Secret volumes are ordinary files under the agent's state directory, not a tmpfs
as the kubelet mounts for them.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from apimachinery.kinds import CONFIGMAP, SECRET
from apimachinery.podrefs import CONFIGMAPS, volume_references
from client.backoff import Backoff
from client.errors import ApiError
from client.http import AsyncClient
from client.informer import Informer
from componentbase.tasks import cancel_and_wait
from nodeagent.pods import events
from nodeagent.pods.atomicwriter import PayloadError, write_projection
from nodeagent.pods.serviceaccount import ClusterAccess, Token, refresh_delay
from nodeagent.pods.volumes import (
    Mount,
    TokenSource,
    VolumeError,
    container_mounts,
    projected_volumes,
    token_sources,
    volume_files,
)

log = logging.getLogger(__name__)

Ref = tuple[str, str, str]  # (resource, namespace, name)
RETRY = Backoff(base=1.0, cap=30.0)  # a volume that failed is set up again this often
VOLUME_DIR_MODE = 0o755  # the pod's user reads it; the pod directory keeps others out


class NotSynced(VolumeError):
    """The object's first list has not come back yet (or was refused)."""


@dataclass
class _Watch:
    informer: Informer
    task: asyncio.Task | None = None
    listeners: set[Callable[[], None]] = field(default_factory=set)
    synced: bool = False
    frozen: dict[str, Any] | None = None  # an immutable object, no longer watched


class ObjectWatches:
    """The node's ConfigMaps and Secrets, one watch per referenced object."""

    def __init__(self, client: AsyncClient) -> None:
        self.client = client
        self._watches: dict[Ref, _Watch] = {}

    def acquire(self, ref: Ref, listener: Callable[[], None]) -> None:
        w = self._watches.get(ref)
        if w is None:
            resource, namespace, name = ref
            kind = CONFIGMAP if resource == CONFIGMAPS else SECRET
            w = _Watch(Informer(self.client, kind, namespace=namespace,
                                field_selector=f"metadata.name={name}"))
            w.informer.add_handler(lambda _o: self._changed(ref),
                                   lambda _o, _n: self._changed(ref),
                                   lambda _o: self._changed(ref))
            self._watches[ref] = w
            w.task = asyncio.create_task(self._run(ref, w), name=f"watch-{'/'.join(ref)}")
        w.listeners.add(listener)

    async def release(self, ref: Ref, listener: Callable[[], None]) -> None:
        w = self._watches.get(ref)
        if w is None:
            return
        w.listeners.discard(listener)
        if not w.listeners:
            del self._watches[ref]
            if w.task is not None:
                await cancel_and_wait([w.task])

    def watched(self) -> set[Ref]:
        """The objects being watched now (not those frozen as immutable)."""
        return {ref for ref, w in self._watches.items()
                if w.task is not None and not w.task.done()}

    def get(self, ref: Ref) -> dict[str, Any] | None:
        """The object, None if it does not exist; ``NotSynced`` before the first list."""
        w = self._watches.get(ref)
        if w is None or not w.synced:
            raise NotSynced(f"couldn't get {ref[0][:-1]} {ref[1]}/{ref[2]}: not listed yet")
        if w.frozen is not None:
            return w.frozen
        return w.informer.store.get(f"{ref[1]}/{ref[2]}")

    async def _run(self, ref: Ref, w: _Watch) -> None:
        run = asyncio.create_task(w.informer.run())
        try:
            await w.informer.wait_synced()
            w.synced = True
            self._changed(ref)
            await run
        finally:
            await cancel_and_wait([run])

    def _changed(self, ref: Ref) -> None:
        w = self._watches.get(ref)
        if w is None or not w.synced:
            return
        obj = w.informer.store.get(f"{ref[1]}/{ref[2]}")
        if obj is not None and obj.get("immutable") is True and w.frozen is None:
            w.frozen = obj
            log.info("%s %s/%s is immutable: no longer watched", ref[0], ref[1], ref[2])
            if w.task is not None:
                w.task.cancel()
        for listener in list(w.listeners):
            listener()


class PodVolumes:
    """One pod's projected volumes: written, kept current, and mounted."""

    def __init__(self, pod: dict[str, Any], directory: Path, *,
                 watches: ObjectWatches | None, access: ClusterAccess | None,
                 pod_events: events.PodEvents) -> None:
        self.pod = pod
        self.key = f"{pod['metadata'].get('namespace', 'default')}/{pod['metadata']['name']}"
        self.dir = directory
        self.watches = watches
        self.access = access
        self.events = pod_events
        self.volumes = projected_volumes(pod)
        ns = pod["metadata"].get("namespace", "default")
        self.refs: set[Ref] = {(res, ns, name)
                               for res, name in volume_references(pod.get("spec") or {})}
        self.done: set[str] = set()  # volumes set up at least once
        self.problem: str | None = None if not self.volumes else "volumes not set up yet"
        self.ready = asyncio.Event()  # set once every volume was set up; stays set
        if not self.volumes:
            self.ready.set()
        self.tokens: dict[TokenSource, Token] = {}
        self.wake = asyncio.Event()

    def update(self, pod: dict[str, Any]) -> None:
        """A new version of the pod: its metadata may show in downward API files."""
        self.pod = pod
        self.wake.set()

    def volume_dir(self, name: str) -> Path:
        return self.dir / name

    async def run(self) -> None:
        if not self.volumes:
            return
        for ref in self.refs:
            if self.watches is not None:
                self.watches.acquire(ref, self.wake.set)
        failures = 0
        try:
            while True:
                self.wake.clear()
                failures = 0 if await self.sync() else failures + 1
                delay = next_sync_delay(
                    [refresh_delay(t, now=time.time()) for t in self.tokens.values()],
                    retry=RETRY.next(failures) if failures else None)
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(delay):
                        await self.wake.wait()
        finally:
            for ref in self.refs:
                if self.watches is not None:
                    await self.watches.release(ref, self.wake.set)

    def _lookup(self, resource: str, name: str) -> Mapping[str, Any] | None:
        if self.watches is None:
            raise VolumeError(f"no API access to read {resource} {name}")
        return self.watches.get((resource, self.pod["metadata"].get("namespace", "default"),
                                 name))

    async def _tokens(self, volume: Mapping[str, Any]) -> None:
        for source in token_sources(volume):
            token = self.tokens.get(source)
            if token is not None and refresh_delay(token, now=time.time()) > 0:
                continue
            if self.access is None:
                raise VolumeError("no API access to request a ServiceAccount token")
            try:
                self.tokens[source] = await self.access.token(
                    self.pod, audience=source.audience,
                    expiration_seconds=source.expiration_seconds)
            except ApiError as exc:
                raise VolumeError(f"failed to fetch token: {exc}") from exc

    async def sync(self) -> bool:
        """Write every volume whose content changed. False when one failed for a
        reason worth retrying later (not just an object's first list pending)."""
        problems: list[str] = []
        unlisted = 0  # problems that only wait for a first list: no retry needed
        fs_group = ((self.pod.get("spec") or {}).get("securityContext") or {}).get("fsGroup")
        fs_group = fs_group if isinstance(fs_group, int) else None
        for volume in self.volumes:
            name = str(volume.get("name"))
            try:
                await self._tokens(volume)
                files = volume_files(volume, pod=self.pod, lookup=self._lookup,
                                     tokens={s: t.token for s, t in self.tokens.items()})
                wrote = await asyncio.to_thread(
                    write_projection, self.volume_dir(name), files, uid=0,
                    gid=fs_group or 0, mode=VOLUME_DIR_MODE, now=time.time(),
                    file_group=fs_group)
            except (VolumeError, PayloadError, OSError) as exc:
                message = str(exc)
                if name not in self.done:
                    problems.append(message)
                    unlisted += isinstance(exc, NotSynced)
                    (log.debug if isinstance(exc, NotSynced) else log.warning)(
                        "pod %s: volume %s: %s", self.key, name, message)
                    if not isinstance(exc, NotSynced):
                        self.events.pod_warning(self.pod, events.FAILED_MOUNT,
                                                events.failed_mount(name, message))
                else:
                    log.warning("pod %s: volume %s keeps its content: %s", self.key, name,
                                message)
                continue
            if wrote:
                log.info("pod %s: volume %s %s", self.key, name,
                         "updated" if name in self.done else "set up")
            self.done.add(name)
        self.problem = problems[0] if problems else None
        if self.problem is None:
            self.ready.set()
        return len(problems) == unlisted

    def mounts(self, container: Mapping[str, Any]) -> list[tuple[str, str]]:
        """(source, target) bind mounts for the container; a ``subPath`` is resolved to
        the file or directory it names now, so later updates do not reach it.
        Raises ``VolumeError`` for a subPath outside its volume or missing."""
        dirs = {str(v.get("name")): str(self.volume_dir(str(v.get("name"))))
                for v in self.volumes}
        return [(resolve_sub_path(m), m.target) if m.sub_path else (m.source, m.target)
                for m in container_mounts(container, dirs)]


def next_sync_delay(token_delays: list[float], *, retry: float | None) -> float | None:
    """Seconds until the next sync unless woken: when the first token is due, or the
    retry after a failure (never sooner: a token that can't be had is not asked for
    in a busy loop); None to wait for a change only."""
    due = min(token_delays, default=None)
    if retry is None:
        return due
    return retry if due is None or due <= 0 else min(due, retry)


def resolve_sub_path(m: Mount) -> str:
    root = os.path.realpath(m.source[:len(m.source) - len(m.sub_path) - 1])
    real = os.path.realpath(m.source)
    if not (real == root or real.startswith(root + os.sep)):
        raise VolumeError(f"subPath {m.sub_path!r} of volume {m.volume!r} is outside it")
    if not os.path.exists(real):
        raise VolumeError(f"subPath {m.sub_path!r} of volume {m.volume!r} does not exist")
    return real
