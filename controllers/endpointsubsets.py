"""Pure v1 Endpoints computation: (Service, Pods, stored Endpoints) → the body to write.

As Kubernetes' endpoints controller (``pkg/controller/endpoint``), from the same
``controllers.backends`` the EndpointSlices are made of:

- A Backend becomes an address (``ip``, ``nodeName``, ``targetRef`` to the Pod,
  ``hostname`` when the Pod's subdomain names the Service) in ``addresses`` when
  its Pod is Ready or the Service has ``publishNotReadyAddresses``, else in
  ``notReadyAddresses``. A terminating Pod is left out (kept, as an address, only
  with ``publishNotReadyAddresses``): Endpoints have no "terminating" to say it.
  A Pod exposing none of the Service's ports is left out; a headless Service
  without ports lists its Pods with no ports.
- Subsets are packed canonically (``apimachinery.endpoints.repack_subsets``).
- Over ``MAX_CAPACITY`` addresses the list is cut to that many, ready ones first,
  each subset keeping its share (Kubernetes' ``truncateEndpoints``), and the
  annotation ``endpoints.kubernetes.io/over-capacity: truncated`` says so; it is
  removed once the Service is back under.
- Labels are the Service's, plus ``service.kubernetes.io/headless`` when headless.
  ``endpoints.kubernetes.io/last-change-trigger-time`` is set from
  ``TriggerTimes`` when a write happens (and removed when it has no time to give).
- Nothing is written when the stored object already says all that (its subsets,
  labels and over-capacity annotation), so resyncs don't move resourceVersions.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from apimachinery import services
from apimachinery.endpoints import port_body, repack_subsets
from controllers.backends import Backend, backends, manages, publishes_not_ready, selects
from controllers.objects import (
    condition,
    labels_of,
    meta,
    name_of,
    namespace_of,
    parse_time,
    spec,
)
from controllers.slices import HEADLESS_LABEL, TRIGGER_TIME_ANNOTATION

OVER_CAPACITY_ANNOTATION = "endpoints.kubernetes.io/over-capacity"
TRUNCATED = "truncated"
MAX_CAPACITY = 1000  # Kubernetes' maxCapacity: addresses in one Endpoints object

Object = Mapping[str, Any]


def address_of(backend: Backend) -> dict[str, Any]:
    address: dict[str, Any] = {"ip": backend.ip}
    if backend.hostname:
        address["hostname"] = backend.hostname
    if backend.node:
        address["nodeName"] = backend.node
    address["targetRef"] = backend.target_ref()
    return address


def desired_subsets(service: Object, pods: Iterable[Object]) -> list[dict[str, Any]]:
    """The Service's subsets from ``pods`` (any superset of its Pods), packed, not cut."""
    publish = publishes_not_ready(service)
    has_ports = bool(spec(service).get("ports"))
    headless = services.is_headless(spec(service))
    entries = []
    for backend in backends(service, pods):
        if backend.terminating and not publish:
            continue
        if not has_ports and not headless:
            continue
        if has_ports and not backend.ports:
            continue  # none of the Service's ports found on this Pod
        ports = [port_body((name, number, protocol, app))
                 for name, protocol, number, app in backend.ports]
        entries.append((address_of(backend), publish or backend.ready, ports))
    return repack_subsets(entries)


def truncate(subsets: list[dict[str, Any]], limit: int = MAX_CAPACITY
             ) -> tuple[list[dict[str, Any]], bool]:
    """At most ``limit`` addresses, ready ones kept first, each subset keeping its
    proportional share (rounded up, the last subsets taking what is left); True when
    something was cut. Subsets left without any address are dropped."""
    total_ready = sum(len(s.get("addresses") or []) for s in subsets)
    total_not_ready = sum(len(s.get("notReadyAddresses") or []) for s in subsets)
    if total_ready + total_not_ready <= limit:
        return subsets, False
    cut_ready = total_ready > limit
    budget = limit if cut_ready else limit - total_ready
    pool = total_ready if cut_ready else total_not_ready
    left = budget
    out = []
    for subset in subsets:
        s = dict(subset)
        which = "addresses" if cut_ready else "notReadyAddresses"
        members = list(s.get(which) or [])
        share = min(-(-len(members) * budget // pool), left)  # ceil, within what is left
        s[which] = members[:share]
        left -= len(s[which])
        if cut_ready:
            s["notReadyAddresses"] = []
        for key in ("addresses", "notReadyAddresses"):
            if not s.get(key):
                s.pop(key, None)
        if s.get("addresses") or s.get("notReadyAddresses"):
            out.append(s)
    return out, True


def desired_labels(service: Object) -> dict[str, str]:
    labels = {k: v for k, v in labels_of(service).items() if k != HEADLESS_LABEL}
    if services.is_headless(spec(service)):
        labels[HEADLESS_LABEL] = ""
    return labels


def desired_endpoints(service: Object, pods: Iterable[Object], current: Object | None, *,
                      trigger_time: str | None = None) -> dict[str, Any] | None:
    """The Endpoints body to write for ``service`` (a create when ``current`` is None,
    else an update of it, resourceVersion kept), or None when nothing is to be written:
    ``current`` already says it, or the Service is not one the controller keeps
    (no selector: its Endpoints are its users')."""
    if not manages(service):
        return None
    subsets, truncated = truncate(desired_subsets(service, pods))
    labels = desired_labels(service)
    if current is not None and _says(current, subsets, labels, truncated):
        return None
    body: dict[str, Any] = (copy.deepcopy(dict(current)) if current is not None else
                            {"apiVersion": "v1", "kind": "Endpoints",
                             "metadata": {"name": name_of(service),
                                          "namespace": namespace_of(service)}})
    m = body.setdefault("metadata", {})
    m["labels"] = labels
    annotations = dict(m.get("annotations") or {})
    annotations.pop(TRIGGER_TIME_ANNOTATION, None)
    annotations.pop(OVER_CAPACITY_ANNOTATION, None)
    if trigger_time:
        annotations[TRIGGER_TIME_ANNOTATION] = trigger_time
    if truncated:
        annotations[OVER_CAPACITY_ANNOTATION] = TRUNCATED
    if annotations:
        m["annotations"] = annotations
    else:
        m.pop("annotations", None)
    body["subsets"] = subsets
    return body


def _says(current: Object, subsets: list[dict[str, Any]], labels: Mapping[str, str],
          truncated: bool) -> bool:
    """Does the stored object already carry these subsets, labels and capacity mark?"""
    annotations = meta(current).get("annotations") or {}
    marked = isinstance(annotations, Mapping) and OVER_CAPACITY_ANNOTATION in annotations
    stored = current.get("subsets") or []
    return (stored == subsets and dict(labels_of(current)) == dict(labels)
            and marked == truncated)


# -- last-change-trigger-time --------------------------------------------------------------


@dataclass
class _Seen:
    pods: dict[str, float] = field(default_factory=dict)  # Pod name → Ready transition
    service: float | None = None  # the Service's creationTimestamp


class TriggerTimes:
    """Kubernetes' ``TriggerTimeTracker``: the time of the change an Endpoints write
    reflects. A Pod's change time is its Ready condition's ``lastTransitionTime``, the
    Service's is its ``creationTimestamp``. The first sync of a Service gives the
    Service's creation; later ones the earliest time that moved since the previous
    sync, or None (no time to give: the annotation is removed). One instance per
    controller; ``compute`` is called once per sync of a key, never concurrently for
    one key."""

    def __init__(self) -> None:
        self._seen: dict[str, _Seen] = {}

    def compute(self, key: str, service: Object, pods: Iterable[Object]) -> float | None:
        seen = self._seen.get(key)
        known = seen is not None
        seen = seen or _Seen()
        changed: list[float] = []
        now_pods: dict[str, float] = {}
        for pod in pods:
            if not selects(service, pod):
                continue
            ready = condition(pod, "Ready")
            at = parse_time(ready.get("lastTransitionTime")) if ready is not None else None
            if at is None:
                continue
            now_pods[name_of(pod)] = at
            if at > seen.pods.get(name_of(pod), float("-inf")):
                changed.append(at)
        created = parse_time(meta(service).get("creationTimestamp"))
        if created is not None and (seen.service is None or created > seen.service):
            changed.append(created)
        self._seen[key] = _Seen(now_pods, created)
        if not known:
            return created
        return min(changed) if changed else None

    def forget(self, key: str) -> None:
        self._seen.pop(key, None)
