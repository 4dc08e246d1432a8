"""Small pure helpers on object dicts: timestamps, names, uids, spec/status split."""

from __future__ import annotations

import os
import random
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson

from apimachinery import status

# Kubernetes' generateName alphabet: no vowels (no words) and no look-alikes.
_NAME_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"
_GENERATED_SUFFIX = 5
_MAX_GENERATE_BASE = 63 - _GENERATED_SUFFIX
_TOP_LEVEL_META = ("apiVersion", "kind", "metadata", "status")


_last_second: tuple[int, str] = (-1, "")


def rfc3339(moment: datetime) -> str:
    """Second precision, UTC, ``Z`` suffix: what Kubernetes writes in timestamps."""
    global _last_second
    second = int(moment.timestamp())
    if second != _last_second[0]:  # many writes share a second; format it once
        _last_second = (second, moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"))
    return _last_second[1]


def now() -> datetime:
    return datetime.now(UTC)


def later(moment: datetime, seconds: int) -> str:
    return rfc3339(moment + timedelta(seconds=seconds))


# uids need to be unique, not unguessable: a PRNG seeded from the OS once is as good
# and avoids a getrandom() system call per object (measurable at a thousand writes/s).
_uid_rng = random.Random(os.urandom(32))


def new_uid() -> str:
    """A random (version 4, RFC 4122 variant) UUID in its usual text form."""
    bits = _uid_rng.getrandbits(128)
    bits = (bits & ~(0xF000 << 64) | (0x4000 << 64)) & ~(0xC000 << 48) | (0x8000 << 48)
    h = f"{bits:032x}"
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def generated_name(base: str, rng: random.Random | None = None) -> str:
    r = rng or random
    suffix = "".join(r.choice(_NAME_ALPHABET) for _ in range(_GENERATED_SUFFIX))
    return base[:_MAX_GENERATE_BASE] + suffix


def meta(obj: dict) -> dict:
    """The object's metadata dict, created if missing or of the wrong type."""
    m = obj.get("metadata")
    if not isinstance(m, dict):
        m = {}
        obj["metadata"] = m
    return m


def spec_part(obj: dict) -> dict[str, Any]:
    """Everything that is neither metadata nor status: what bumps ``generation``."""
    return {k: v for k, v in obj.items() if k not in _TOP_LEVEL_META}


def deep_copy(obj: Any) -> Any:
    """A copy of decoded JSON; a round trip through orjson is several times faster than deepcopy."""
    return orjson.loads(orjson.dumps(obj))


def ordered(obj: dict) -> dict:
    """Kubernetes' field order (apiVersion, kind, metadata, spec..., status) for readable output."""
    head = {k: obj[k] for k in ("apiVersion", "kind", "metadata") if k in obj}
    rest = {k: v for k, v in obj.items() if k not in head and k != "status"}
    tail = {"status": obj["status"]} if "status" in obj else {}
    return {**head, **rest, **tail}


def success(plural: str, name: str, group: str = "", uid: str | None = None) -> dict:
    """The ``Status`` a write answers with when it has no object to return."""
    details = status.object_details(plural, name, group)
    if uid:
        details["uid"] = uid
    return {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success",
            "details": details}
