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
    reconciled".

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
import ipaddress
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from apimachinery import services
from apimachinery.labels import matches_map
from controllers.objects import (
    is_deleting,
    is_pod_ready,
    is_pod_terminal,
    labels_of,
    meta,
    name_of,
    namespace_of,
    node_name_of,
    spec,
    status,
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
# One slice port as a sortable value: (name, protocol, port, appProtocol or "").
PortTuple = tuple[str, str, int, str]
PortKey = tuple[PortTuple, ...]


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

    @property
    def empty(self) -> bool:
        return not (self.creates or self.updates or self.deletes)

    def summary(self) -> str:
        return (f"{len(self.creates)} created, {len(self.updates)} updated, "
                f"{len(self.deletes)} deleted")


# -- which services and pods -------------------------------------------------------------


def selector_of(service: Object) -> Mapping[str, str]:
    """The Service's selector; empty means "none" (as Kubernetes stores it)."""
    selector = spec(service).get("selector")
    return selector if isinstance(selector, Mapping) else {}


def manages(service: Object) -> bool:
    """Does this controller keep slices for ``service``? (selector set, not ExternalName)"""
    return bool(selector_of(service)) and not services.is_external_name(spec(service))


def selects(service: Object, pod: Object) -> bool:
    """The Service's selector matches the Pod, in the same namespace."""
    selector = selector_of(service)
    return (bool(selector) and namespace_of(pod) == namespace_of(service)
            and matches_map(selector, labels_of(pod)))


def pod_ipv4(pod: Object) -> str | None:
    """The Pod's IPv4 address (``podIP``, else the first IPv4 of ``podIPs``), or None."""
    st = status(pod)
    candidates: list[Any] = [st.get("podIP")]
    for entry in st.get("podIPs") or []:
        if isinstance(entry, Mapping):
            candidates.append(entry.get("ip"))
    for ip in candidates:
        if isinstance(ip, str) and ip:
            try:
                if isinstance(ipaddress.ip_address(ip), ipaddress.IPv4Address):
                    return ip
            except ValueError:
                continue
    return None


def endpoint_for(service: Object, pod: Object) -> Endpoint | None:
    """The endpoint ``pod`` contributes to ``service``'s slices; None if it has none
    (no IPv4 address yet, or finished)."""
    ip = pod_ipv4(pod)
    if ip is None or is_pod_terminal(pod):
        return None
    serving = is_pod_ready(pod)
    terminating = is_deleting(pod)
    publish = spec(service).get("publishNotReadyAddresses") is True
    endpoint: Endpoint = {
        "addresses": [ip],
        "conditions": {"ready": publish or (serving and not terminating),
                       "serving": serving, "terminating": terminating},
    }
    pod_spec = spec(pod)
    hostname = pod_spec.get("hostname")
    if hostname and pod_spec.get("subdomain") == name_of(service):
        endpoint["hostname"] = hostname
    node = node_name_of(pod)
    if node:
        endpoint["nodeName"] = node
    endpoint["targetRef"] = {"kind": "Pod", "namespace": namespace_of(pod),
                             "name": name_of(pod), "uid": uid_of(pod)}
    return endpoint


def pod_ports(service: Object, pod: Object) -> PortKey:
    """The Service's ports resolved for ``pod``, sorted by name.

    A numeric ``targetPort`` is used as is (absent: the Service port). A named one
    is looked up in the Pod's container ports with the same protocol; a Pod that
    doesn't expose it gets no entry for that port, as in Kubernetes' ``FindPort``.
    """
    resolved: list[PortTuple] = []
    for port in spec(service).get("ports") or []:
        if not isinstance(port, Mapping):
            continue
        protocol = str(port.get("protocol") or "TCP")
        target = port.get("targetPort", port.get("port"))
        number = (target if isinstance(target, int) and not isinstance(target, bool)
                  else _container_port(pod, str(target), protocol))
        if number is None:
            continue
        resolved.append((str(port.get("name") or ""), protocol, number,
                         str(port.get("appProtocol") or "")))
    return tuple(sorted(resolved))


def _container_port(pod: Object, name: str, protocol: str) -> int | None:
    for container in spec(pod).get("containers") or []:
        if not isinstance(container, Mapping):
            continue
        for port in container.get("ports") or []:
            if (isinstance(port, Mapping) and port.get("name") == name
                    and str(port.get("protocol") or "TCP") == protocol
                    and isinstance(port.get("containerPort"), int)):
                return int(port["containerPort"])
    return None


def desired_endpoints(service: Object, pods: Iterable[Object]) -> dict[PortKey, dict[str, Endpoint]]:
    """Endpoints by port list, each keyed by address. Pods the selector doesn't match
    are skipped, so callers may pass a superset. Two pods claiming one address (a
    stale pod and its successor): the one not terminating wins, then the newer name."""
    out: dict[PortKey, dict[str, Endpoint]] = {}
    owner: dict[str, tuple[bool, str, PortKey]] = {}
    for pod in pods:
        if not selects(service, pod):
            continue
        endpoint = endpoint_for(service, pod)
        if endpoint is None:
            continue
        address = endpoint["addresses"][0]
        rank = (not is_deleting(pod), name_of(pod))
        previous = owner.get(address)
        if previous is not None:
            if previous[:2] >= rank:
                continue
            del out[previous[2]][address]
        key = pod_ports(service, pod)
        owner[address] = (*rank, key)
        out.setdefault(key, {})[address] = endpoint
    return {k: v for k, v in out.items() if v}


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
                   trigger_time: str | None = None) -> SlicePlan:
    """The writes that make ``service``'s slices list exactly its endpoints.

    ``pods`` may be any superset of the Service's Pods (non-matching ones are
    ignored); ``existing`` any set of slices (only managed slices labelled with this
    Service's name, in its namespace, are considered). Written slices carry
    ``trigger_time`` in the last-change-trigger-time annotation when given.
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
    wanted = desired_endpoints(service, pods)
    any_endpoints = bool(wanted)  # before the steps below claim from it
    draft = _Draft(max_endpoints)
    _keep_wanted(draft, owned, wanted, labels, owner)
    for key in sorted(wanted):
        _place(draft, key, dict(sorted(wanted[key].items(), key=_address_order)))
    _reuse_deleted(draft)
    if not any_endpoints:
        _keep_placeholder(draft)
    return _finish(draft, service, labels, owner, trigger_time, foreign)


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
    try:
        return int(ipaddress.IPv4Address(item[0])), item[0]
    except ValueError:
        return -1, item[0]


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
