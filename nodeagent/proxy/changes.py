"""Which Services changed since the last sync, as the proxy model's parsed values.

``Tracker`` is fed by the Service and EndpointSlice informers' handlers (on the
event loop). It parses each object once on arrival (``model.service_ports``,
``model.slice_endpoints``) and keeps, per Service, the inputs its rules are built
from: its ports, each with the merged endpoints of its slices.

A Service is *pending* while its current inputs differ from the ones last handed
to a sync (kube-proxy's change trackers keep "previous" and "current" the same
way). So a change that parses to the same ports and endpoints — a new
resourceVersion for a status or label edit, a slice rewritten in another order,
or a change and its undo between two syncs — costs no sync at all. A Service
never handed out yet is always pending: when unsure, sync.

The node's own zone (its ``topology.kubernetes.io/zone`` label, from an informer
on its Node) is tracked the same way: a new zone is pending until a ``take``, and
the sync then rebuilds every Service, since topology hints are read against it.

Handlers only parse and compare, so they stay fast; ``take`` hands the pending
inputs to the sync loop.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Mapping
from typing import Any

from nodeagent.proxy.metrics import Metrics
from nodeagent.proxy.model import (
    Endpoint,
    InvalidObject,
    ServicePort,
    merge_endpoints,
    service_ports,
    slice_endpoints,
    slice_service,
    trigger_time,
)

log = logging.getLogger(__name__)

Object = Mapping[str, Any]
ZONE_LABEL = "topology.kubernetes.io/zone"
ServiceName = tuple[str, str]  # (namespace, name); also (namespace, slice name)
SliceEndpoints = dict[tuple[str, str], list[Endpoint]]  # (port name, protocol) → endpoints
# What one Service's rules are built from: each port with its endpoints. () means
# no rules (gone, headless, ExternalName, invalid, …).
ServiceInputs = tuple[tuple[ServicePort, tuple[Endpoint, ...]], ...]


def _meta(obj: Object) -> Mapping[str, Any]:
    meta = obj.get("metadata")
    return meta if isinstance(meta, Mapping) else {}


def name_of(obj: Object) -> ServiceName:
    """``(namespace, name)`` of an object, as the informers key it."""
    meta = _meta(obj)
    return str(meta.get("namespace") or "default"), str(meta.get("name") or "")


def same_version(old: Object, new: Object) -> bool:
    """An informer resync: the object has not changed at all."""
    return _meta(old).get("resourceVersion") == _meta(new).get("resourceVersion")


def service_inputs(ports: tuple[ServicePort, ...],
                   slices: list[SliceEndpoints]) -> ServiceInputs:
    """Each Service port with the endpoints its slices (in name order) give it."""
    if not ports:
        return ()
    merged = merge_endpoints(slices)
    return tuple((sp, merged.get((sp.port_name, sp.protocol), ())) for sp in ports)


class Tracker:
    """Informer-fed parsed cache plus the Services whose inputs changed since ``take``."""

    def __init__(self, metrics: Metrics, *, clock: Callable[[], float] = time.time) -> None:
        self.metrics = metrics
        self.clock = clock
        self.ports: dict[ServiceName, tuple[ServicePort, ...]] = {}  # known Services
        self.endpoints: dict[ServiceName, SliceEndpoints] = {}  # (namespace, slice name)
        self.owner: dict[ServiceName, ServiceName] = {}  # slice → Service
        self.by_service: dict[ServiceName, set[ServiceName]] = {}
        self.synced: dict[ServiceName, ServiceInputs] = {}  # as last handed to a sync
        self.changed: dict[ServiceName, ServiceInputs] = {}  # pending: differs from synced
        self.triggers: dict[ServiceName, float] = {}  # slice → earliest unsynced trigger
        self.retried: list[float] = []  # trigger times of changes whose sync failed
        self.first_queued = 0.0  # wall time of the oldest pending change; 0: none
        self.zone = ""  # this node's zone label as the cache holds it
        self.synced_zone = ""  # as last handed to a sync
        self.wake = asyncio.Event()

    @property
    def pending(self) -> bool:
        return bool(self.changed) or self.zone != self.synced_zone

    def current(self, name: ServiceName) -> ServiceInputs:
        """The inputs of Service ``name`` as the cache holds them now."""
        return service_inputs(self.ports.get(name, ()),
                              [self.endpoints[k] for k in sorted(self.by_service.get(name, ()))])

    def _touch(self, name: ServiceName) -> None:
        now = self.current(name)
        if name in self.synced and self.synced[name] == now:
            self.changed.pop(name, None)  # back to what the kernel has: nothing to do
            for key in self.by_service.get(name, ()):
                self.triggers.pop(key, None)
        else:
            self.changed[name] = now
        if self.changed and not self.first_queued:
            self.first_queued = self.clock()
        elif not self.changed:
            self.first_queued = 0.0
        self.metrics.last_queued = self.first_queued
        self.wake.set()

    # Service handlers
    def service_added(self, obj: Object) -> None:
        name = name_of(obj)
        try:
            self.ports[name] = tuple(service_ports(obj))
        except InvalidObject as exc:
            self.metrics.invalid_objects += 1
            log.warning("Service %s/%s gets no rules: %s", *name, exc)
            self.ports[name] = ()
        self.metrics.service_changes += 1
        self._touch(name)

    def service_updated(self, old: Object, new: Object) -> None:
        if same_version(old, new) and name_of(new) in self.ports:
            return  # an informer resync: nothing changed
        self.service_added(new)

    def service_deleted(self, obj: Object) -> None:
        name = name_of(obj)
        self.ports.pop(name, None)
        self.metrics.service_changes += 1
        self._touch(name)

    # Node handlers (the informer watches this node only)
    def node_added(self, obj: Object) -> None:
        labels = _meta(obj).get("labels")
        zone = labels.get(ZONE_LABEL) if isinstance(labels, Mapping) else None
        self._set_zone(zone if isinstance(zone, str) else "")

    def node_updated(self, old: Object, new: Object) -> None:
        self.node_added(new)

    def node_deleted(self, obj: Object) -> None:
        self._set_zone("")

    def _set_zone(self, zone: str) -> None:
        if zone != self.zone:
            log.info("node zone is now %r", zone)
            self.zone = zone
            self.wake.set()

    # EndpointSlice handlers
    def slice_added(self, obj: Object) -> None:
        key = name_of(obj)
        previous = self._unlink(key, touch=False)  # touched below, once, if still its owner
        try:
            self.endpoints[key] = slice_endpoints(obj)
        except InvalidObject as exc:
            self.metrics.invalid_objects += 1
            log.warning("EndpointSlice %s/%s ignored: %s", *key, exc)
            self.endpoints[key] = {}
        owner = slice_service(obj)
        if owner is not None:
            self.owner[key] = owner
            self.by_service.setdefault(owner, set()).add(key)
            stamp = trigger_time(obj)
            if stamp is not None:
                self.triggers[key] = min(stamp, self.triggers.get(key, stamp))
            self._touch(owner)
        if previous is not None and previous != owner:
            self._touch(previous)
        self.metrics.endpoint_changes += 1

    def slice_updated(self, old: Object, new: Object) -> None:
        if same_version(old, new) and name_of(new) in self.endpoints:
            return
        self.slice_added(new)

    def slice_deleted(self, obj: Object) -> None:
        key = name_of(obj)
        self.endpoints.pop(key, None)
        self.triggers.pop(key, None)
        self._unlink(key)
        self.metrics.endpoint_changes += 1

    def _unlink(self, key: ServiceName, *, touch: bool = True) -> ServiceName | None:
        """Detach slice ``key`` from its Service; returns that Service (None if none)."""
        owner = self.owner.pop(key, None)
        if owner is not None:
            members = self.by_service.get(owner, set())
            members.discard(key)
            if not members:
                self.by_service.pop(owner, None)
            if touch:
                self._touch(owner)
        return owner

    def take(self) -> tuple[dict[ServiceName, ServiceInputs], list[float]]:
        """The pending Services' inputs and the pending trigger times; resets both.

        From here on, those inputs (and ``zone``, now ``synced_zone``) count as
        synced: a sync that fails still built its rules from them, and the next
        (full) sync writes those rules."""
        changes, self.changed = self.changed, {}
        self.synced_zone = self.zone
        triggers = [*self.retried, *self.triggers.values()]
        self.triggers = {}
        self.retried = []
        for name, inputs in changes.items():
            if name in self.ports or name in self.by_service:
                self.synced[name] = inputs
            else:
                self.synced.pop(name, None)  # gone: no memory kept for it
        self.first_queued = 0.0
        self.metrics.last_queued = 0.0
        return changes, triggers

    def requeue_triggers(self, triggers: list[float]) -> None:
        """Trigger times of a ``take`` whose sync failed: still to be measured."""
        self.retried.extend(triggers)

    def everything(self) -> dict[ServiceName, ServiceInputs]:
        """Every known Service's inputs as changes (the first sync)."""
        for name in set(self.ports) | set(self.by_service):
            self.changed[name] = self.current(name)
        return self.take()[0]
