"""Facts about a Pod that follow from its spec alone, as Kubernetes derives them.

Pure code: the API server stamps them on create, and anything that reads a
pod (describe, a future eviction order) can ask the same function.
"""

from __future__ import annotations

from collections.abc import Iterator
from fractions import Fraction
from typing import Any

from apimachinery.quantities import QuantityError, parse_quantity

# The resources that decide the QoS class (qos.GetPodQOS's supportedQoSComputeResources).
QOS_RESOURCES = ("cpu", "memory")


def qos_class(spec: Any) -> str:
    """``Guaranteed``, ``Burstable`` or ``BestEffort`` (``pkg/apis/core/helper/qos``).

    Guaranteed: every container limits cpu and memory, and the pod's summed
    requests equal its summed limits (requests default to limits, so limits
    alone qualify). BestEffort: no container requests or limits either.
    Burstable: anything between. Zero quantities count as unset, and a value
    that is not a quantity is ignored (validation reports it).
    """
    requests: dict[str, Fraction] = {}
    limits: dict[str, Fraction] = {}
    guaranteed = True
    for container in _containers(spec):
        resources = container.get("resources")
        resources = resources if isinstance(resources, dict) else {}
        _add(requests, resources.get("requests"))
        found = _add(limits, resources.get("limits"))
        if not set(QOS_RESOURCES) <= found:
            guaranteed = False
    if not requests and not limits:
        return "BestEffort"
    if guaranteed and requests == limits:
        return "Guaranteed"
    return "Burstable"


def _containers(spec: Any) -> Iterator[dict[str, Any]]:
    if not isinstance(spec, dict):
        return
    for key in ("initContainers", "containers"):
        items = spec.get(key)
        if isinstance(items, list):
            yield from (c for c in items if isinstance(c, dict))


def _add(total: dict[str, Fraction], amounts: Any) -> set[str]:
    """Add the non-zero QoS quantities of ``amounts`` into ``total``; the names added."""
    names: set[str] = set()
    if not isinstance(amounts, dict):
        return names
    for name in QOS_RESOURCES:
        try:
            value = parse_quantity(amounts[name]) if name in amounts else Fraction(0)
        except QuantityError:
            continue
        if value > 0:
            total[name] = total.get(name, Fraction(0)) + value
            names.add(name)
    return names
