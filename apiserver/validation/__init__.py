"""Validation of API objects: pure functions from JSON to a list of FieldErrors.

    validate(rules, obj, old=None, namespaced=…)  main-resource create (old None) and update
    validate_status(rules, obj, old)             writes through the /status subresource

``rules`` is the kind's ``Rules`` (name rule, spec and status checks), held by its
strategy in ``apiserver/registry/<kind>.py``.

Both expect ``obj`` after its kind's defaults (the strategy's ``default``) and after the
server filled name, namespace, uid and creationTimestamp (and, on update, copied
the system fields from ``old``). They never raise on any JSON input: a field of
the wrong type is one more FieldError. An empty list means valid.

Layout: ``names`` (string predicates), ``fields`` (typed reading of JSON),
``meta`` (ObjectMeta), then one module of checks per kind (``container`` holds
the parts of a pod that are containers).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from apimachinery import names
from apiserver.errors import FieldError, invalid
from apiserver.validation.fields import FieldErrors
from apiserver.validation.meta import NameRule, validate_meta, validate_meta_update

__all__ = ["Rules", "validate", "validate_status"]

Check = Callable[[FieldErrors, dict, "dict | None"], None]


def _nothing(errs: FieldErrors, obj: dict, old: dict | None) -> None:
    """No rules beyond the metadata ones (a kind without a spec or a /status subresource)."""


@dataclass(frozen=True)
class Rules:
    """What one kind adds to the metadata rules; its strategy holds it.

    ``name`` checks ``metadata.name`` (most kinds: a DNS-1123 subdomain), ``spec``
    everything but metadata and status, ``status`` a /status write.
    """

    name: NameRule = names.is_dns1123_subdomain
    spec: Check = _nothing
    status: Check = _nothing


def _not_an_object(obj: Any) -> list[FieldError] | None:
    """The error that stops validation before any rule runs, or None to go on."""
    if not isinstance(obj, dict):
        return [invalid("", obj, "must be an object")]
    return None


def validate(rules: Rules, obj: dict, old: dict | None = None, *,
             namespaced: bool) -> list[FieldError]:
    """All errors of a create (``old`` None) or main-resource update of ``obj``."""
    stop = _not_an_object(obj)
    if stop is not None:
        return stop
    old = old if isinstance(old, dict) else None
    errs = FieldErrors()
    meta = validate_meta(errs, obj, name_rule=rules.name, namespaced=namespaced)
    if old is not None:
        validate_meta_update(errs, meta, _meta_of(old))
    rules.spec(errs, obj, old)
    return list(errs)


def validate_status(rules: Rules, obj: dict, old: dict) -> list[FieldError]:
    """All errors of a /status write: status shape, and metadata that must not change."""
    stop = _not_an_object(obj)
    if stop is not None:
        return stop
    old = old if isinstance(old, dict) else None
    errs = FieldErrors()
    if old is not None:
        validate_meta_update(errs, _meta_of(obj), _meta_of(old))
    rules.status(errs, obj, old)
    return list(errs)


def _meta_of(obj: dict) -> dict:
    meta = obj.get("metadata")
    return meta if isinstance(meta, dict) else {}
