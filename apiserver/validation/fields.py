"""Typed reading of untrusted JSON, with every problem recorded as a FieldError.

Bodies reach validation as plain ``json.loads`` output, so any field may hold any
JSON type. Kubernetes would fail those at decoding; here each reader checks the
type, records ``must be a string`` (etc.) at the field's path, and hands back the
value only when it has the expected type. Validators therefore never index into a
value they have not checked, which is what keeps ``validate`` from raising.

The shared rules live here once: port numbers, enums, non-negative integers,
immutability, list limits and the shape of ``conditions``.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterator
from typing import Any, TypeGuard

from apimachinery import names
from apiserver.errors import FieldError, forbidden, invalid, not_supported
from apiserver.errors import required as required_value

CONDITION_STATUSES = ("True", "False", "Unknown")
PROTOCOLS = ("SCTP", "TCP", "UDP")
IMMUTABLE = "field is immutable"


def is_int(value: Any) -> TypeGuard[int]:
    """JSON integers only: ``true`` is not 1 and ``80.0`` is not a port."""
    return isinstance(value, int) and not isinstance(value, bool)


def too_many(path: str, count: int, limit: int) -> FieldError:
    return FieldError(path, "FieldValueTooMany", f"must have at most {limit} items", count)


def too_long(path: str, limit: int) -> FieldError:
    return FieldError(path, "FieldValueTooLong", f"must have at most {limit} bytes")


class FieldErrors(list[FieldError]):
    """The errors of one validation pass, and readers that add to them."""

    # ------------------------------------------------------------- JSON types

    def obj(self, value: Any, path: str) -> dict | None:
        """A JSON object, or None (absent or wrong type; the latter is recorded)."""
        if value is None or isinstance(value, dict):
            return value
        self.append(invalid(path, value, "must be an object"))
        return None

    def seq(self, value: Any, path: str) -> list | None:
        if value is None or isinstance(value, list):
            return value
        self.append(invalid(path, value, "must be a list"))
        return None

    def text(self, value: Any, path: str) -> str | None:
        if value is None or isinstance(value, str):
            return value
        self.append(invalid(path, value, names.NOT_A_STRING))
        return None

    def required_text(self, value: Any, path: str, message: str = "") -> str | None:
        """A non-empty string; missing or "" is Required (with ``message``)."""
        text = self.text(value, path)
        if not text:
            if value in (None, ""):
                self.append(required_value(path, message))
            return None
        return text

    def integer(self, value: Any, path: str) -> int | None:
        if value is None or is_int(value):
            return value
        self.append(invalid(path, value, "must be an integer"))
        return None

    def boolean(self, value: Any, path: str) -> bool | None:
        if value is None or isinstance(value, bool):
            return value
        self.append(invalid(path, value, "must be a boolean"))
        return None

    def items(self, value: Any, path: str) -> Iterator[tuple[str, dict]]:
        """``(path[i], element)`` for each object in a list; other elements are recorded."""
        for i, item in enumerate(self.seq(value, path) or ()):
            if isinstance(item, dict):
                yield f"{path}[{i}]", item
            else:
                self.append(invalid(f"{path}[{i}]", item, "must be an object"))

    def strings(self, value: Any, path: str) -> Iterator[tuple[str, str]]:
        """``(path[i], element)`` for each string in a list; other elements are recorded."""
        for i, item in enumerate(self.seq(value, path) or ()):
            if isinstance(item, str):
                yield f"{path}[{i}]", item
            else:
                self.append(invalid(f"{path}[{i}]", item, names.NOT_A_STRING))

    def string_map(self, value: Any, path: str) -> dict[str, str]:
        """A map of string to string (labels, annotations, selectors); bad entries dropped."""
        good: dict[str, str] = {}
        for key, item in (self.obj(value, path) or {}).items():
            if isinstance(key, str) and isinstance(item, str):
                good[key] = item
            else:
                self.append(invalid(path, item, f"value of {key!r} must be a string"))
        return good

    # ------------------------------------------------------------- rules

    def check(self, value: Any, path: str, predicate: Callable[[Any], list[str]]) -> bool:
        """Record each message of a ``names`` predicate as Invalid; True when valid."""
        messages = _verdict(predicate, value)
        if messages:  # the common case is valid: build nothing for it
            self.extend(invalid(path, value, m) for m in messages)
        return not messages

    def enum(self, value: Any, path: str, allowed: Collection[str], *,
             required: bool = False) -> str | None:
        """One of ``allowed``; missing or "" is Required when ``required``."""
        text = self.text(value, path)
        if not text:
            if required and value in (None, ""):
                self.append(required_value(path, ""))
            return None
        if text not in allowed:
            self.append(not_supported(path, text, sorted(allowed)))
            return None
        return text

    def port(self, value: Any, path: str, *, required: bool = False) -> int | None:
        """A port number, 1–65535: the one rule every port field shares."""
        if value is None:
            if required:
                self.append(required_value(path, ""))
            return None
        number = self.integer(value, path)
        if number is None:
            return None
        if not self.check(number, path, names.is_valid_port_num):
            return None
        return number

    def port_or_name(self, value: Any, path: str, *, required: bool = False) -> int | str | None:
        """An int-or-string port: a number, or an IANA service name naming a container port."""
        if isinstance(value, str):
            return value if self.check(value, path, names.is_iana_svc_name) else None
        if value is None or is_int(value):
            return self.port(value, path, required=required)
        self.append(invalid(path, value, "must be an integer or a string"))
        return None

    def at_least(self, value: Any, path: str, minimum: int) -> int | None:
        number = self.integer(value, path)
        if number is not None and number < minimum:
            self.append(invalid(path, number, f"must be greater than or equal to {minimum}"))
            return None
        return number

    def immutable(self, new: Any, old: Any, path: str) -> None:
        if new != old:
            self.append(invalid(path, new, IMMUTABLE))

    def limit(self, items: list | None, path: str, maximum: int) -> bool:
        """True when within ``maximum`` items; else records TooMany."""
        if items is not None and len(items) > maximum:
            self.append(too_many(path, len(items), maximum))
            return False
        return True

    def only_when(self, present: bool, allowed: bool, path: str, message: str) -> None:
        """Forbid a field that the rest of the object makes meaningless."""
        if present and not allowed:
            self.append(forbidden(path, message))

    def conditions(self, value: Any, path: str,
                   type_rule: Callable[[str], list[str]] | None = None) -> None:
        """``status.conditions``: objects with a ``type`` and a True/False/Unknown ``status``."""
        for p, cond in self.items(value, path):
            kind = self.text(cond.get("type"), f"{p}.type")
            if not kind:
                if cond.get("type") in (None, ""):
                    self.append(required_value(f"{p}.type", ""))
            elif type_rule is not None:
                self.check(kind, f"{p}.type", type_rule)
            self.enum(cond.get("status"), f"{p}.status", CONDITION_STATUSES, required=True)
            for key in ("reason", "message", "lastTransitionTime", "lastProbeTime",
                        "lastHeartbeatTime"):
                self.text(cond.get(key), f"{p}.{key}")


# The same names, label keys and values come back on every write (``app``,
# ``kubernetes.io/service-name``, namespace names): remember the verdicts. The
# predicates are pure, so a cached answer is the answer.
_VERDICTS: dict[tuple[Callable[[str], list[str]], str], tuple[str, ...]] = {}
_MAX_VERDICTS = 100_000


def _verdict(predicate: Callable[[str], list[str]], value: Any) -> tuple[str, ...]:
    if not isinstance(value, str):
        return tuple(predicate(value))
    key = (predicate, value)
    found = _VERDICTS.get(key)
    if found is None:
        if len(_VERDICTS) >= _MAX_VERDICTS:
            _VERDICTS.clear()
        found = _VERDICTS[key] = tuple(predicate(value))
    return found
