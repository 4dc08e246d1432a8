"""JSON value helpers shared by the patch flavours.

Patches must never alias their inputs (the server keeps the stored object), and JSON
equality differs from Python's (``True == 1`` in Python, not in JSON), hence these.
"""

from collections.abc import Hashable
from typing import Any


def deep_copy(value: Any) -> Any:
    """Copy a decoded JSON value; much cheaper than ``copy.deepcopy`` for plain data."""
    if isinstance(value, dict):
        return {k: deep_copy(v) for k, v in value.items()}
    if isinstance(value, list):
        return [deep_copy(v) for v in value]
    return value


def ident(value: Any) -> Hashable:
    """A hashable identity with JSON equality: 1 == 1.0, True != 1, objects unordered."""
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, bool):
        return ("bool", value)
    if isinstance(value, int):
        return ("num", value)
    if isinstance(value, float):
        return ("num", int(value)) if value.is_integer() else ("num", value)
    if isinstance(value, list):
        return ("list", tuple(ident(v) for v in value))
    if isinstance(value, dict):
        return ("obj", frozenset((k, ident(v)) for k, v in value.items()))
    return ("other", type(value).__name__, repr(value))


def json_equal(a: Any, b: Any) -> bool:
    """Equality as JSON defines it (RFC 6902 section 4.6)."""
    return ident(a) == ident(b)
