"""Pure EndpointSlice computation: (Service, Pods, existing slices) → the fewest writes.

``desired_slices`` is the whole algorithm of Kubernetes' EndpointSlice reconciler
(``pkg/controller/endpointslice/reconciler.go``) as a function: dicts in, a
``SlicePlan`` of creates, updates and deletes out, sorted so equal inputs give
equal plans. No clock, no I/O: the trigger time is passed in.

What a Service gets
    Every Pod in its namespace that its selector matches and that has an IPv4
    address (and is not Succeeded/Failed) becomes one endpoint: the address,
    ``conditions`` (serving = Pod Ready, terminating = Pod has a
    deletionTimestamp, ready = ``publishNotReadyAddresses`` or serving and not
    terminating), ``nodeName``, a ``targetRef`` to the Pod and, when the Pod sets
    ``hostname`` and its ``subdomain`` names this Service, ``hostname``.
    A named ``targetPort`` is looked up in each Pod's container ports, so Pods
    exposing different numbers (or none) get different port lists; endpoints are
    grouped into slices per port list. A Service with no endpoints keeps a single
    empty placeholder slice, so consumers can tell "no endpoints" from "not yet
    reconciled". (Which Pods, and their ports: ``controllers.backends``, shared
    with the v1 Endpoints controller.)

Minimal churn (why the steps below are ordered as they are)
    Every slice write is sent to every proxy and DNS server, so the plan touches
    as few slices as it can and never rebalances for its own sake:

    1. Existing slices keep the endpoints still wanted, with fresh conditions;
       unwanted ones are dropped. A slice whose content is unchanged is not
       written at all; one left empty is deleted.
    2. New endpoints first top up slices that are being written anyway.
    3. What is left goes into new full slices, and a final remainder into the
       one unchanged slice closest to full that can take all of it (one write),
       else into a new slice.
    4. A create paired with a delete becomes one update of the deleted slice.

Ownership
    Slices carry ``kubernetes.io/service-name`` and
    ``endpointslice.kubernetes.io/managed-by: endpointslice-controller.k8s.io``
    and a controller ownerReference to the Service. Slices with another
    ``managed-by`` are never touched (users write those by hand). Managed slices
    of the Service's name not owned by its uid (left by an earlier Service of the
    same name) are deleted. A Service without a selector, or of type
    ExternalName, gets no managed slices: only slices its own uid owns (left from
    when it had a selector) are deleted, so hand-made ones stay.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from apimachinery import services
from controllers import hints
from controllers.backends import (  # noqa: F401 - selector_of, selects, pod_ports re-exported
    Backend,
    PortKey,
    PortTuple,
    address_order,
    backend_for,
    backends,
    manages,
    pod_ipv4,
    pod_ports,
    publishes_not_ready,
    selector_of,
    selects,
)
from controllers.objects import (
    labels_of,
    meta,
    name_of,
    namespace_of,
    spec,
    uid_of,
)

SERVICE_NAME_LABEL = "kubernetes.io/service-name"
MANAGED_BY_LABEL = "endpointslice.kubernetes.io/managed-by"
CONTROLLER_NAME = "endpointslice-controller.k8s.io"
HEADLESS_LABEL = "service.kubernetes.io/headless"
TRIGGER_TIME_ANNOTATION = "endpoints.kubernetes.io/last-change-trigger-time"
ADDRESS_TYPE = "IPv4"
API_VERSION = "discovery.k8s.io/v1"

# Kubernetes' default for --max-endpoints-per-slice; the API allows up to 1000.
DEFAULT_MAX_ENDPOINTS = 100
MAX_ENDPOINTS_LIMIT = 1000

Object = Mapping[str, Any]
Endpoint = dict[str, Any]


@dataclass(frozen=True)
class SlicePlan:
    """The writes that take a Service's slices from what exists to what is desired.

    ``creates`` are full bodies (``generateName``), ``updates`` full bodies of
    existing slices (name and resourceVersion kept, for an optimistic PUT),
    ``deletes`` slice names. Each sorted: creates by content, the others by name.
    """

    creates: tuple[dict[str, Any], ...] = ()
    updates: tuple[dict[str, Any], ...] = ()
    deletes: tuple[str, ...] = ()
    no_hints: str = ""  # why topology-mode Auto gave no hints ("" when it did, or not Auto)

    @property
    def empty(self) -> bool:
        return not (self.creates or self.updates or self.deletes)

    def summary(self) -> str:
        return (f"{len(self.creates)} created, {len(self.updates)} updated, "
                f"{len(self.deletes)} deleted")


# -- endpoints from backends (which pods: controllers.backends) ---------------------------


def endpoint_of(backend: Backend, *, publish_not_ready: bool, zone: str = "") -> Endpoint:
    """The slice endpoint of one Backend (``zone``: its node's, "" if unknown)."""
    endpoint: Endpoint = {
        "addresses": [backend.ip],
        "conditions": {"ready": publish_not_ready or (backend.ready and not backend.terminating),
                       "serving": backend.ready, "terminating": backend.terminating},
    }
    if backend.hostname:
        endpoint["hostname"] = backend.hostname
    if backend.node:
        endpoint["nodeName"] = backend.node
    if zone:
        endpoint["zone"] = zone
    endpoint["targetRef"] = backend.target_ref()
    return endpoint


def endpoint_for(service: Object, pod: Object) -> Endpoint | None:
    """The endpoint ``pod`` contributes to ``service``'s slices; None if it has none
    (no IPv4 address yet, or finished)."""
    backend = backend_for(service, pod)
    if backend is None:
        return None
    return endpoint_of(backend, publish_not_ready=publishes_not_ready(service))


def desired_endpoints(service: Object, pods: Iterable[Object],
                      nodes: Mapping[str, Object] | None = None
                      ) -> dict[PortKey, dict[str, Endpoint]]:
    """Endpoints by port list, each keyed by address. Pods the selector doesn't match
    are skipped, so callers may pass a superset (``controllers.backends.backends``).
    ``nodes`` (by name) give each endpoint its ``zone``; no hints here."""
    publish = publishes_not_ready(service)
    nodes = nodes or {}
    out: dict[PortKey, dict[str, Endpoint]] = {}
    for backend in backends(service, pods):
        node = nodes.get(backend.node) if backend.node else None
        out.setdefault(backend.ports, {})[backend.ip] = endpoint_of(
            backend, publish_not_ready=publish, zone=hints.node_zone(node) if node else "")
    return out


def hinted_endpoints(service: Object, pods: Iterable[Object], nodes: Mapping[str, Object]
                     ) -> tuple[dict[PortKey, dict[str, Endpoint]], str]:
    """``desired_endpoints`` with the hints the Service asks for (``controllers.hints``:
    over all its endpoints at once, as Kubernetes hints per address type); the second
    value says why Auto gave no hints ("" otherwise)."""
    wanted = desired_endpoints(service, pods, nodes)
    mode = hints.hint_mode(service)
    capacity = hints.zone_capacity(nodes.values()) if mode is hints.Mode.AUTO \
        else hints.Capacity({})
    flat = {address: e for endpoints in wanted.values() for address, e in endpoints.items()}
    hinted, why = hints.apply_hints(mode, flat, capacity)
    return {key: {address: hinted[address] for address in endpoints}
            for key, endpoints in wanted.items()}, why


# -- the slices ------------------------------------------------------------------------


def desired_labels(service: Object) -> dict[str, str]:
    """The Service's labels plus the two that mark a managed slice (and headless)."""
    labels = {k: v for k, v in labels_of(service).items()
              if k not in (SERVICE_NAME_LABEL, MANAGED_BY_LABEL, HEADLESS_LABEL)}
    labels[SERVICE_NAME_LABEL] = name_of(service)
    labels[MANAGED_BY_LABEL] = CONTROLLER_NAME
    if services.is_headless(spec(service)):
        labels[HEADLESS_LABEL] = ""
    return labels


def owner_reference(service: Object) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Service", "name": name_of(service),
            "uid": uid_of(service), "controller": True, "blockOwnerDeletion": True}


def is_managed(slice_: Object) -> bool:
    return labels_of(slice_).get(MANAGED_BY_LABEL) == CONTROLLER_NAME


def service_owner_uid(slice_: Object) -> str | None:
    """The uid of the Service that owns ``slice_`` through an ownerReference, if any."""
    for ref in meta(slice_).get("ownerReferences") or []:
        if isinstance(ref, Mapping) and ref.get("kind") == "Service" and \
                ref.get("apiVersion", "v1") == "v1":
            return str(ref.get("uid") or "")
    return None


def slice_port_key(slice_: Object) -> PortKey:
    ports: list[PortTuple] = []
    for p in slice_.get("ports") or []:
        if isinstance(p, Mapping) and isinstance(p.get("port"), int):
            ports.append((str(p.get("name") or ""), str(p.get("protocol") or "TCP"),
                          int(p["port"]), str(p.get("appProtocol") or "")))
    return tuple(sorted(ports))


def ports_body(key: PortKey) -> list[dict[str, Any]]:
    out = []
    for name, protocol, number, app_protocol in key:
        port: dict[str, Any] = {"name": name, "protocol": protocol, "port": number}
        if app_protocol:
            port["appProtocol"] = app_protocol
        out.append(port)
    return out


@dataclass
class _Slot:
    """One existing slice while the plan is made."""

    slice: Object
    key: PortKey
    endpoints: dict[str, Endpoint]
    changed: bool
    reused: bool = False  # turned into another port list's slice (step 4)

    @property
    def name(self) -> str:
        return name_of(self.slice)


@dataclass
class _Draft:
    """Working state of one plan."""

    max_endpoints: int
    slots: list[_Slot] = field(default_factory=list)
    new: list[tuple[PortKey, dict[str, Endpoint]]] = field(default_factory=list)


def desired_slices(service: Object, pods: Iterable[Object], existing: Iterable[Object], *,
                   max_endpoints: int = DEFAULT_MAX_ENDPOINTS,
                   trigger_time: str | None = None,
                   nodes: Mapping[str, Object] | None = None) -> SlicePlan:
    """The writes that make ``service``'s slices list exactly its endpoints.

    ``pods`` may be any superset of the Service's Pods (non-matching ones are
    ignored); ``existing`` any set of slices (only managed slices labelled with this
    Service's name, in its namespace, are considered). Written slices carry
    ``trigger_time`` in the last-change-trigger-time annotation when given.
    ``nodes`` (by name) give endpoints their ``zone`` and the Service's topology
    hints (``controllers.hints``).
    """
    if max_endpoints < 1:
        raise ValueError(f"max_endpoints must be at least 1, got {max_endpoints}")
    ours = [s for s in existing if _is_for(s, service)]
    uid = uid_of(service)
    if not manages(service):
        return SlicePlan(deletes=tuple(sorted(name_of(s) for s in ours
                                              if service_owner_uid(s) == uid)))
    owned = sorted((s for s in ours if service_owner_uid(s) == uid
                    and s.get("addressType") == ADDRESS_TYPE), key=name_of)
    owned_names = {name_of(s) for s in owned}
    foreign = sorted(name_of(s) for s in ours if name_of(s) not in owned_names)
    labels, owner = desired_labels(service), owner_reference(service)
    wanted, no_hints = hinted_endpoints(service, pods, nodes or {})
    any_endpoints = bool(wanted)  # before the steps below claim from it
    draft = _Draft(max_endpoints)
    _keep_wanted(draft, owned, wanted, labels, owner)
    for key in sorted(wanted):
        _place(draft, key, dict(sorted(wanted[key].items(), key=_address_order)))
    _reuse_deleted(draft)
    if not any_endpoints:
        _keep_placeholder(draft)
    plan = _finish(draft, service, labels, owner, trigger_time, foreign)
    return replace(plan, no_hints=no_hints) if no_hints else plan


def slices_to_delete_for_missing_service(namespace: str, service_name: str,
                                         existing: Iterable[Object]) -> SlicePlan:
    """The Service is gone: delete the managed slices a Service of that name owned
    (Kubernetes' garbage collector would; this API server has none)."""
    return SlicePlan(deletes=tuple(sorted(
        name_of(s) for s in existing
        if namespace_of(s) == namespace and is_managed(s)
        and labels_of(s).get(SERVICE_NAME_LABEL) == service_name
        and service_owner_uid(s) is not None)))


def _is_for(slice_: Object, service: Object) -> bool:
    return (is_managed(slice_) and namespace_of(slice_) == namespace_of(service)
            and labels_of(slice_).get(SERVICE_NAME_LABEL) == name_of(service))


def _address_order(item: tuple[str, Endpoint]) -> tuple[int, str]:
    return address_order(item[0])


def _keep_wanted(draft: _Draft, owned: Sequence[Object], wanted: dict[PortKey, dict[str, Endpoint]],
                 labels: Mapping[str, str], owner: Mapping[str, Any]) -> None:
    """Step 1: each existing slice keeps the wanted endpoints it has (claimed from
    ``wanted``, so a duplicate in a second slice is dropped there)."""
    for s in owned:
        key = slice_port_key(s)
        pool = wanted.get(key, {})
        have: dict[str, Endpoint] = {}
        duplicates = False
        for endpoint in s.get("endpoints") or []:
            address = _address(endpoint)
            if address is None or address in have:
                duplicates = True
                continue
            have[address] = endpoint
        keep = {a: pool.pop(a) for a in list(have) if a in pool}
        if len(keep) > draft.max_endpoints:  # the limit was lowered: hand back the excess
            excess = sorted(keep.items(), key=_address_order)[draft.max_endpoints:]
            for address, _ in excess:
                pool[address] = keep.pop(address)
        changed = (duplicates or keep != have or _meta_differs(s, labels, owner)
                   or list(s.get("ports") or []) != ports_body(key))
        draft.slots.append(_Slot(s, key, keep, changed))


def _place(draft: _Draft, key: PortKey, remaining: dict[str, Endpoint]) -> None:
    """Steps 2 and 3 for one port list: top up changed slices, then new full slices,
    then the remainder into the fullest unchanged slice that fits it, else a new one."""
    limit = draft.max_endpoints
    same_key = [slot for slot in draft.slots if slot.key == key and slot.endpoints]
    for slot in sorted((s for s in same_key if s.changed), key=lambda s: (-len(s.endpoints),
                                                                        s.name)):
        _fill(slot.endpoints, remaining, limit)
    while remaining:
        if len(remaining) < limit:
            fits = [s for s in same_key
                    if not s.changed and len(s.endpoints) + len(remaining) <= limit]
            if fits:
                target = max(fits, key=lambda s: (len(s.endpoints), _reverse(s.name)))
                _fill(target.endpoints, remaining, limit)
                target.changed = True
                continue
        chunk: dict[str, Endpoint] = {}
        _fill(chunk, remaining, limit)
        draft.new.append((key, chunk))


def _reverse(name: str) -> tuple[int, ...]:
    """Sort key that orders names descending (``max`` then picks the first name)."""
    return tuple(-ord(c) for c in name)


def _fill(into: dict[str, Endpoint], source: dict[str, Endpoint], limit: int) -> None:
    while source and len(into) < limit:
        address = next(iter(source))
        into[address] = source.pop(address)


def _reuse_deleted(draft: _Draft) -> None:
    """Step 4: a new slice and a slice about to be deleted become one update."""
    emptied = [slot for slot in sorted(draft.slots, key=lambda s: s.name) if not slot.endpoints]
    while draft.new and emptied:
        slot = emptied.pop(0)
        slot.key, slot.endpoints = draft.new.pop(0)
        slot.changed = slot.reused = True


def _keep_placeholder(draft: _Draft) -> None:
    """No endpoints: keep one empty slice (preferring one that already is a
    placeholder), so consumers see "reconciled, nothing there"."""
    if draft.new:
        return
    if not draft.slots:
        draft.new.append(((), {}))
        return
    keeper = min(draft.slots, key=lambda s: (bool(s.key) or bool(s.slice.get("endpoints")),
                                             s.name))
    keeper.reused = True
    keeper.key = ()
    keeper.changed = keeper.changed or bool(keeper.slice.get("ports"))


def _finish(draft: _Draft, service: Object, labels: Mapping[str, str],
            owner: Mapping[str, Any], trigger_time: str | None,
            foreign: list[str]) -> SlicePlan:
    updates: list[dict[str, Any]] = []
    deletes = list(foreign)
    for slot in draft.slots:
        if not slot.endpoints and not slot.reused:
            deletes.append(slot.name)
        elif slot.changed:
            updates.append(_updated(slot, labels, owner, trigger_time))
    creates = [_created(service, key, endpoints, labels, owner, trigger_time)
               for key, endpoints in draft.new]
    creates.sort(key=lambda body: (slice_port_key(body), [_address(e) for e in body["endpoints"]]))
    updates.sort(key=name_of)
    return SlicePlan(tuple(creates), tuple(updates), tuple(sorted(deletes)))


def _endpoint_list(endpoints: Mapping[str, Endpoint]) -> list[Endpoint]:
    return [copy.deepcopy(e) for _, e in sorted(endpoints.items(), key=_address_order)]


def _updated(slot: _Slot, labels: Mapping[str, str], owner: Mapping[str, Any],
             trigger_time: str | None) -> dict[str, Any]:
    body = copy.deepcopy(dict(slot.slice))
    m = body.setdefault("metadata", {})
    m["labels"] = dict(labels)
    m["ownerReferences"] = [dict(owner)]
    if trigger_time:
        m["annotations"] = {**(m.get("annotations") or {}), TRIGGER_TIME_ANNOTATION: trigger_time}
    body["addressType"] = ADDRESS_TYPE
    body["endpoints"] = _endpoint_list(slot.endpoints)
    body["ports"] = ports_body(slot.key)
    return body


def _created(service: Object, key: PortKey, endpoints: Mapping[str, Endpoint],
             labels: Mapping[str, str], owner: Mapping[str, Any],
             trigger_time: str | None) -> dict[str, Any]:
    m: dict[str, Any] = {"generateName": f"{name_of(service)}-",
                         "namespace": namespace_of(service), "labels": dict(labels),
                         "ownerReferences": [dict(owner)]}
    if trigger_time:
        m["annotations"] = {TRIGGER_TIME_ANNOTATION: trigger_time}
    return {"apiVersion": API_VERSION, "kind": "EndpointSlice", "metadata": m,
            "addressType": ADDRESS_TYPE, "endpoints": _endpoint_list(endpoints),
            "ports": ports_body(key)}


def _address(endpoint: Any) -> str | None:
    if not isinstance(endpoint, Mapping):
        return None
    addresses = endpoint.get("addresses")
    if isinstance(addresses, list) and addresses and isinstance(addresses[0], str):
        return addresses[0]
    return None


def _meta_differs(slice_: Object, labels: Mapping[str, str], owner: Mapping[str, Any]) -> bool:
    refs = meta(slice_).get("ownerReferences") or []
    return dict(labels_of(slice_)) != dict(labels) or [dict(r) for r in refs] != [dict(owner)]
