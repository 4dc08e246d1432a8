"""Read-only helpers over API objects (plain dicts), shared by the pure controller modules.

Controllers work on the informers' cached dicts, which they must never change, so
everything here only reads; builders that produce new objects live with their
controller. Timestamps are RFC 3339: the API server writes whole seconds, the
controllers write microseconds (Go's ``RFC3339Nano`` with trailing zeros trimmed,
which every consumer of ``last-change-trigger-time`` parses).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

Object = Mapping[str, Any]

TERMINAL_PHASES = frozenset({"Succeeded", "Failed"})

_RFC3339 = re.compile(
    r"^(\d{4}-\d{2}-\d{2})[Tt](\d{2}:\d{2}:\d{2})(?:\.(\d+))?([Zz]|[+-]\d{2}:\d{2})$")


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


def format_time(unix: float) -> str:
    """Unix time → RFC 3339 UTC with microseconds, trailing zeros trimmed (as Go)."""
    moment = datetime.fromtimestamp(unix, UTC)
    text = moment.strftime("%Y-%m-%dT%H:%M:%S")
    micros = f"{moment.microsecond:06d}".rstrip("0")
    return f"{text}.{micros}Z" if micros else f"{text}Z"


def parse_time(value: Any) -> float | None:
    """RFC 3339 (any fraction length) → Unix time; None for anything else."""
    if not isinstance(value, str):
        return None
    m = _RFC3339.match(value.strip())
    if m is None:
        return None
    day, clock, fraction, offset = m.groups()
    zone = "+00:00" if offset in ("Z", "z") else offset
    try:
        moment = datetime.fromisoformat(f"{day}T{clock}{zone}")
    except ValueError:
        return None
    return moment.timestamp() + (int(fraction) / 10 ** len(fraction) if fraction else 0.0)
