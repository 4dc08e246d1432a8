"""Topology of EndpointSlice endpoints (pure): each endpoint's ``zone`` and ``hints``.

Kubernetes' EndpointSlice controller writes an endpoint's ``zone`` from its
Node's ``topology.kubernetes.io/zone`` label, and ``hints`` (which zones, or
nodes, should route to it) by one of two heuristics, chosen per Service:

``trafficDistribution`` (``staging/src/k8s.io/endpointslice/trafficdist``)
    ``PreferClose`` and its newer name ``PreferSameZone``: every ready endpoint
    with a zone is hinted for its own zone (``forZones: [{name: <zone>}]``).
    ``PreferSameNode`` adds ``forNodes: [{name: <nodeName>}]``. Not-ready
    endpoints carry no hints.

``service.kubernetes.io/topology-mode: Auto`` (``topologycache``)
    The older annotation (``service.kubernetes.io/topology-aware-hints`` wins
    when both are set; ``Auto`` or ``auto``), which also overrides
    ``trafficDistribution``. Ready endpoints are allotted to zones in
    proportion to the zones' allocatable CPU (Ready nodes only, control-plane
    nodes excluded): each zone gets at least ``ceil(share / 1.2)`` endpoints
    (the 20% overload threshold), endpoints are hinted for their own zone first
    and the surplus of over-served zones is donated to under-served ones. All or
    nothing: no hints at all when any node lacks a zone or CPU, fewer than two
    zones have Ready nodes, there are fewer ready endpoints than zones, the
    minimums cannot all be met, or any ready endpoint has no zone.

Neither is set: no hints, and stale ones are removed. ``apply_hints`` returns the
endpoints to write; ``controllers.slices`` then writes only slices whose
endpoints changed, so a correct hint costs nothing on later syncs.

Differences from Kubernetes: Auto's donations are chosen over all endpoints in
address order, where Kubernetes prefers endpoints of slices it is writing anyway
(same counts per zone, possibly other endpoints); no Events are recorded
(``TopologyAwareHintsEnabled``/``Disabled``), the reason is logged instead; a
Node's zone change rewrites the zones of its endpoints at once (Kubernetes only
requeues the Auto Services it now overloads; others wait for their next Pod or
Service change).
"""

from __future__ import annotations

import enum
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

from apimachinery.quantities import QuantityError, parse_quantity
from controllers.objects import condition_status, labels_of, meta, name_of, spec, status

Object = Mapping[str, Any]
Endpoint = dict[str, Any]

ZONE_LABEL = "topology.kubernetes.io/zone"
TOPOLOGY_MODE_ANNOTATION = "service.kubernetes.io/topology-mode"
# Deprecated since 1.27 but still read; it takes precedence over topology-mode.
TOPOLOGY_HINTS_ANNOTATION = "service.kubernetes.io/topology-aware-hints"
# Nodes with one of these labels don't count towards a zone's capacity.
EXCLUDED_NODE_LABELS = ("node-role.kubernetes.io/control-plane", "node-role.kubernetes.io/master")
# The most extra load (above its CPU share) Auto lets any zone's endpoints carry.
OVERLOAD_THRESHOLD = 0.2


class Mode(enum.Enum):
    """How a Service's endpoints are hinted."""

    NONE = "none"
    SAME_ZONE = "PreferSameZone"  # trafficDistribution PreferClose / PreferSameZone
    SAME_NODE = "PreferSameNode"  # trafficDistribution PreferSameNode
    AUTO = "Auto"  # the topology annotation


# Every value the API accepts (apimachinery.services.TRAFFIC_DISTRIBUTIONS) → its mode.
MODES = {"PreferClose": Mode.SAME_ZONE, "PreferSameZone": Mode.SAME_ZONE,
         "PreferSameNode": Mode.SAME_NODE}


def auto_enabled(service: Object) -> bool:
    """The topology annotation asks for Auto (Kubernetes' ``hintsEnabled``)."""
    annotations = meta(service).get("annotations") or {}
    value = annotations.get(TOPOLOGY_HINTS_ANNOTATION,
                            annotations.get(TOPOLOGY_MODE_ANNOTATION))
    return value in ("Auto", "auto")


def hint_mode(service: Object) -> Mode:
    """The annotation wins over ``trafficDistribution``, as in the reconciler."""
    if auto_enabled(service):
        return Mode.AUTO
    distribution = spec(service).get("trafficDistribution")
    return MODES.get(distribution, Mode.NONE) \
        if isinstance(distribution, str) else Mode.NONE


def node_zone(node: Object) -> str:
    """The Node's zone label ("" when unset)."""
    zone = labels_of(node).get(ZONE_LABEL)
    return zone if isinstance(zone, str) else ""


def node_zones(nodes: Iterable[Object]) -> dict[str, str]:
    """Node name → zone, for the nodes that have one."""
    return {name_of(n): zone for n in nodes if (zone := node_zone(n))}


# -- Auto: zone capacity ----------------------------------------------------------------


def _cpu(node: Object) -> Fraction:
    allocatable = status(node).get("allocatable")
    try:
        return parse_quantity((allocatable or {}).get("cpu")) \
            if isinstance(allocatable, Mapping) else Fraction(0)
    except QuantityError:
        return Fraction(0)


@dataclass(frozen=True)
class Capacity:
    """Each zone's share of the cluster's allocatable CPU; ``why`` says why there is none."""

    ratios: Mapping[str, float]
    why: str = ""


def zone_capacity(nodes: Iterable[Object]) -> Capacity:
    """The zones' CPU shares over Ready, non-control-plane nodes (``SetNodes``)."""
    by_zone: dict[str, Fraction] = {}
    for node in sorted(nodes, key=name_of):
        labels = labels_of(node)
        if any(label in labels for label in EXCLUDED_NODE_LABELS) or condition_status(node, "Ready") != "True":
            continue
        zone, cpu = node_zone(node), _cpu(node)
        if not zone or cpu <= 0:
            return Capacity({}, f"insufficient node info: node {name_of(node)} has no zone or CPU")
        by_zone[zone] = by_zone.get(zone, Fraction(0)) + cpu
    total = sum(by_zone.values(), Fraction(0))
    if total <= 0 or len(by_zone) < 2:
        return Capacity({}, "ready nodes in fewer than two zones")
    return Capacity({zone: float(cpu / total) for zone, cpu in sorted(by_zone.items())})


@dataclass(frozen=True)
class Allocation:
    minimum: int
    maximum: int
    desired: float


def allocations(capacity: Capacity, ready: int) -> tuple[dict[str, Allocation], str]:
    """Per zone, how many of ``ready`` endpoints it should get (``getAllocations``);
    ``({}, why)`` when none can be made within the overload threshold."""
    ratios = capacity.ratios
    if not ratios:
        return {}, capacity.why or "insufficient node info"
    if len(ratios) > ready:
        return {}, f"insufficient number of endpoints ({ready} endpoints, {len(ratios)} zones)"
    minimums: dict[str, tuple[int, float]] = {}
    for zone, ratio in ratios.items():
        desired = ratio * ready
        minimum = math.ceil(desired * (1 / (1 + OVERLOAD_THRESHOLD)))
        minimums[zone] = (minimum, max(desired, float(minimum)))
    spare = ready - sum(m for m, _ in minimums.values())
    if spare < 0:
        return {}, (f"unable to allocate minimum required endpoints to each zone without "
                    f"exceeding overload threshold ({ready} endpoints, {len(ratios)} zones)")
    return {zone: Allocation(minimum=m, maximum=m + spare, desired=d)
            for zone, (m, d) in minimums.items()}, ""


def _most(amounts: Mapping[str, float]) -> tuple[str, float]:
    """The zone with the largest amount (the first by name on a tie)."""
    zone, most = "", 0.0
    for z in sorted(amounts):
        if amounts[z] > most:
            zone, most = z, amounts[z]
    return zone, most


def _giving_and_receiving(allotted: Mapping[str, Allocation], hinted: Mapping[str, int]
                          ) -> tuple[dict[str, int], dict[str, int]]:
    """How many endpoints each zone gives away / receives (``getGivingAndReceivingZones``)."""
    give_wanted: dict[str, float] = {}
    take_wanted: dict[str, float] = {}
    for zone, allocation in allotted.items():
        have = hinted.get(zone, 0)
        if have > allocation.desired:
            give_wanted[zone] = have - allocation.desired
        elif have < allocation.desired:
            take_wanted[zone] = allocation.desired - have
    giving: dict[str, int] = {}
    receiving: dict[str, int] = {}
    while True:
        giver, to_give = _most(give_wanted)
        taker, to_take = _most(take_wanted)
        if not giver or not taker or (to_give < 1 and to_take < 1) or to_give < 0.5 \
                or to_take < 0.5:
            return giving, receiving
        giving[giver] = giving.get(giver, 0) + 1
        give_wanted[giver] -= 1
        receiving[taker] = receiving.get(taker, 0) + 1
        take_wanted[taker] -= 1


def auto_zones(ready: Mapping[str, str], capacity: Capacity) -> tuple[dict[str, str], str]:
    """Ready endpoint address → the zone it is hinted for, under Auto; ``({}, why)``
    when hints must be removed. ``ready`` maps each ready address to its zone ("" if
    none)."""
    allotted, why = allocations(capacity, len(ready))
    if why:
        return {}, why
    if any(not zone for zone in ready.values()):
        return {}, "one or more endpoints do not have a zone specified"
    hints = dict(ready)  # step 1: every endpoint for its own zone
    hinted: dict[str, int] = {}
    for zone in hints.values():
        hinted[zone] = hinted.get(zone, 0) + 1
    giving, receiving = _giving_and_receiving(allotted, hinted)
    for address in ready:  # step 2: the surplus of over-served zones moves
        if not giving or not receiving:
            break
        own = ready[address]
        if giving.get(own, 0) <= 0:
            continue
        to = next(z for z in sorted(receiving) if receiving[z] > 0)
        hints[address] = to
        for counts, zone in ((giving, own), (receiving, to)):
            counts[zone] -= 1
            if not counts[zone]:
                del counts[zone]
    return hints, ""


# -- the endpoints as written -----------------------------------------------------------


def _ready(endpoint: Mapping[str, Any]) -> bool:
    return (endpoint.get("conditions") or {}).get("ready") is True


def apply_hints(mode: Mode, endpoints: Mapping[str, Endpoint], capacity: Capacity
                ) -> tuple[dict[str, Endpoint], str]:
    """``endpoints`` (by address, ``zone`` already set) with the hints ``mode`` gives
    them, and why Auto gave none ("" otherwise). Not-ready endpoints get no hints."""
    out = {address: {k: v for k, v in e.items() if k != "hints"}
           for address, e in endpoints.items()}
    why = ""
    if mode is Mode.AUTO:
        ready = {a: str(e.get("zone") or "") for a, e in out.items() if _ready(e)}
        zones, why = auto_zones(ready, capacity)
        for address, zone in zones.items():
            out[address]["hints"] = {"forZones": [{"name": zone}]}
    elif mode is not Mode.NONE:
        for endpoint in out.values():
            if not _ready(endpoint):
                continue
            hints: dict[str, Any] = {}
            if endpoint.get("zone"):
                hints["forZones"] = [{"name": endpoint["zone"]}]
            if mode is Mode.SAME_NODE and endpoint.get("nodeName"):
                hints["forNodes"] = [{"name": endpoint["nodeName"]}]
            if hints:
                endpoint["hints"] = hints
    return out, why
