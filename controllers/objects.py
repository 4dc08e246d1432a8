"""Read-only helpers over API objects (plain dicts), shared by the pure controller modules.

Controllers work on the informers' cached dicts, which they must never change, so
everything here only reads; builders that produce new objects live with their
controller. Timestamps are RFC 3339: the API server writes whole seconds, the
controllers write microseconds (Go's ``RFC3339Nano`` with trailing zeros trimmed,
which every consumer of ``last-change-trigger-time`` parses).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from apimachinery.timestamps import format_time, parse_time  # noqa: F401 - re-exported

Object = Mapping[str, Any]

TERMINAL_PHASES = frozenset({"Succeeded", "Failed"})

def meta(obj: Object) -> Mapping[str, Any]:
    m = obj.get("metadata")
    return m if isinstance(m, Mapping) else {}


def spec(obj: Object) -> Mapping[str, Any]:
    s = obj.get("spec")
    return s if isinstance(s, Mapping) else {}


def status(obj: Object) -> Mapping[str, Any]:
    s = obj.get("status")
    return s if isinstance(s, Mapping) else {}


def name_of(obj: Object) -> str:
    return str(meta(obj).get("name") or "")


def namespace_of(obj: Object) -> str:
    return str(meta(obj).get("namespace") or "")


def uid_of(obj: Object) -> str:
    return str(meta(obj).get("uid") or "")


def labels_of(obj: Object) -> Mapping[str, str]:
    labels = meta(obj).get("labels")
    return labels if isinstance(labels, Mapping) else {}


def version_of(obj: Object) -> str:
    return str(meta(obj).get("resourceVersion") or "")


def is_deleting(obj: Object) -> bool:
    return meta(obj).get("deletionTimestamp") is not None


def condition(obj: Object, kind: str) -> Mapping[str, Any] | None:
    """The ``status.conditions`` entry of type ``kind``, or None."""
    conditions = status(obj).get("conditions")
    if not isinstance(conditions, list):
        return None
    for c in conditions:
        if isinstance(c, Mapping) and c.get("type") == kind:
            return c
    return None


def condition_status(obj: Object, kind: str) -> str | None:
    """"True", "False", "Unknown", or None when the condition is absent."""
    c = condition(obj, kind)
    value = c.get("status") if c is not None else None
    return value if isinstance(value, str) else None


def is_pod_ready(pod: Object) -> bool:
    """Kubernetes' ``IsPodReady``: the Ready condition is "True"."""
    return condition_status(pod, "Ready") == "True"


def is_pod_terminal(pod: Object) -> bool:
    return status(pod).get("phase") in TERMINAL_PHASES


def node_name_of(pod: Object) -> str:
    return str(spec(pod).get("nodeName") or "")


