"""Validation of API objects: pure functions from JSON to a list of FieldErrors.

    validate(kind, obj, old=None)   main-resource create (old None) and update
    validate_status(kind, obj, old) writes through the /status subresource

Both expect ``obj`` after ``apiserver.defaults.apply_defaults`` and after the
server filled name, namespace, uid and creationTimestamp (and, on update, copied
the system fields from ``old``). They never raise on any JSON input: a field of
the wrong type is one more FieldError. An empty list means valid.

Layout: ``names`` (string predicates), ``fields`` (typed reading of JSON),
``meta`` (ObjectMeta), then one module per kind (``container`` holds the parts of
a pod that are containers).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from apimachinery import names
from apimachinery.kinds import KINDS
from apiserver.errors import FieldError, invalid
from apiserver.validation import (
    endpointslice,
    event,
    namespace,
    node,
    pod,
    service,
)
from apiserver.validation.fields import FieldErrors
from apiserver.validation.meta import NameRule, validate_meta, validate_meta_update

__all__ = ["validate", "validate_status"]

Check = Callable[[FieldErrors, dict, "dict | None"], None]


def _no_status(errs: FieldErrors, obj: dict, old: dict | None) -> None:
    """Kinds without a /status subresource: only the metadata rules apply."""


@dataclass(frozen=True)
class _Rules:
    name: NameRule
    spec: Check
    status: Check = _no_status


_RULES: dict[str, _Rules] = {
    "Namespace": _Rules(names.is_dns1123_label, namespace.validate_spec, namespace.validate_status),
    "Node": _Rules(names.is_dns1123_subdomain, node.validate_spec, node.validate_status),
    "Pod": _Rules(names.is_dns1123_subdomain, pod.validate_spec, pod.validate_status),
    "Service": _Rules(names.is_dns1035_label, service.validate_spec, service.validate_status),
    "EndpointSlice": _Rules(names.is_dns1123_subdomain, endpointslice.validate_spec),
    "Event": _Rules(names.is_dns1123_subdomain, event.validate_spec),
}
_NAMESPACED = {k.kind: k.namespaced for k in KINDS}


def _start(kind: str, obj: Any) -> list[FieldError] | None:
    """The errors that stop validation before any rule runs, or None to go on."""
    if _RULES.get(kind) is None:
        return [invalid("kind", kind, "no validation rules for this kind")]
    if not isinstance(obj, dict):
        return [invalid("", obj, "must be an object")]
    return None


def validate(kind: str, obj: dict, old: dict | None = None) -> list[FieldError]:
    """All errors of a create (``old`` None) or main-resource update of ``obj``."""
    stop = _start(kind, obj)
    if stop is not None:
        return stop
    rules = _RULES[kind]
    old = old if isinstance(old, dict) else None
    errs = FieldErrors()
    meta = validate_meta(errs, obj, name_rule=rules.name, namespaced=_NAMESPACED.get(kind, True))
    if old is not None:
        validate_meta_update(errs, meta, _meta_of(old))
    rules.spec(errs, obj, old)
    return list(errs)


def validate_status(kind: str, obj: dict, old: dict) -> list[FieldError]:
    """All errors of a /status write: status shape, and metadata that must not change."""
    stop = _start(kind, obj)
    if stop is not None:
        return stop
    rules = _RULES[kind]
    old = old if isinstance(old, dict) else None
    errs = FieldErrors()
    if old is not None:
        validate_meta_update(errs, _meta_of(obj), _meta_of(old))
    rules.status(errs, obj, old)
    return list(errs)


def _meta_of(obj: dict) -> dict:
    meta = obj.get("metadata")
    return meta if isinstance(meta, dict) else {}
