"""Each kind's strategy hooks called by the kind's name, as the unit tables are keyed.

The server looks strategies up by path or key; these tests name kinds ("Service"),
so they resolve the name through ``apimachinery.kinds`` and the registry.
"""

from __future__ import annotations

from apimachinery import kinds
from apiserver.errors import FieldError
from apiserver.patch.schemas import DEFAULT, FieldSchema
from apiserver.registry.strategy import Strategy
from apiserver.resources import by_kind


def strategy(kind: str) -> Strategy:
    return by_kind(kinds.lookup(kind))


def apply_defaults(kind: str, obj: object) -> None:
    strategy(kind).default(obj)  # type: ignore[arg-type]  # any JSON, on purpose


def validate(kind: str, obj: dict, old: dict | None = None) -> list[FieldError]:
    """A create (``old`` None) or a main-resource update."""
    s = strategy(kind)
    return s.validate(obj) if old is None else s.validate_update(obj, old)


def validate_status(kind: str, obj: dict, old: dict) -> list[FieldError]:
    return strategy(kind).validate_status_update(obj, old)


def patch_schema(kind: str) -> FieldSchema:
    """The kind's list strategies; a kind not served has only ObjectMeta's."""
    try:
        return strategy(kind).patch_schema
    except kinds.UnknownKind:
        return DEFAULT
