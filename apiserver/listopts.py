"""List and watch query parameters: parsed and checked once, as Kubernetes does.

The rules for resourceVersion / resourceVersionMatch / sendInitialEvents follow
apimachinery's ListOptions validation; a violation is a 422 on kind ListOptions,
so client-go's watch-list falls back to list+watch instead of waiting forever.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import orjson

from apimachinery.labels import (
    FieldRequirement,
    FieldSelector,
    LabelSelector,
    SelectorError,
    parse_field_selector,
    parse_label_selector,
)
from apiserver.errors import (
    BadRequest,
    FieldError,
    Gone,
    Invalid,
    forbidden,
    invalid,
    not_supported,
)
from apiserver.registry.strategy import Strategy

_CONTINUE_VERSION = "meta.k8s.io/v1"


@dataclass(frozen=True)
class ListOptions:
    labels: LabelSelector
    fields: FieldSelector
    limit: int | None = None
    continue_from: tuple[int, tuple[str, str]] | None = None  # (revision, last key)
    resource_version: str | None = None
    resource_version_match: str | None = None
    watch: bool = False
    allow_bookmarks: bool = False
    timeout_seconds: int | None = None
    send_initial_events: bool | None = None

    def matcher(self) -> Callable[[dict], bool] | None:
        """A predicate for objects, or None when nothing is filtered (the fast path)."""
        if not self.labels and not self.fields:
            return None
        labels, fields = self.labels, self.fields

        def keep(obj: dict) -> bool:
            m = obj.get("metadata") or {}
            return labels.matches(m.get("labels") or {}) and fields.matches_object(obj)

        return keep


def _resolve_aliases(fields: FieldSelector, aliases: Mapping[str, str]) -> FieldSelector:
    """A selectable field whose name is not its path (an Event's ``source`` is
    ``source.component``) → its path, which is what objects are matched on."""
    if not aliases or not any(r.field in aliases for r in fields.requirements):
        return fields
    return FieldSelector(tuple(FieldRequirement(aliases.get(r.field, r.field), r.op, r.value)
                               for r in fields.requirements))


def _flag(params: Mapping[str, str], name: str) -> bool | None:
    value = params.get(name)
    if value is None:
        return None
    if value.lower() in ("true", "1", ""):
        return True
    if value.lower() in ("false", "0"):
        return False
    raise BadRequest(f'invalid value for {name}: "{value}" (expected true or false)')


def watch_requested(params: Mapping[str, str]) -> bool:
    """``?watch``, read one way for the handler and the in-flight limits (last value
    wins, percent-decoded, as Starlette's ``QueryParams``), so a request is limited
    and timed as what it is served as; ``BadRequest`` for a value that is no flag."""
    return bool(_flag(params, "watch"))


def _int(params: Mapping[str, str], name: str) -> int | None:
    value = params.get(name)
    if value is None or value == "":
        return None
    try:
        number = int(value)
    except ValueError:
        raise BadRequest(f'invalid value for {name}: "{value}" (expected an integer)') from None
    if number < 0:
        raise BadRequest(f"{name} must not be negative")
    return number


def parse_list_options(params: Mapping[str, str], rt: Strategy) -> ListOptions:
    try:
        labels = parse_label_selector(params.get("labelSelector"))
        fields = _resolve_aliases(
            parse_field_selector(params.get("fieldSelector"), rt.field_selectors),
            rt.field_aliases)
    except SelectorError as exc:
        raise BadRequest(str(exc)) from None
    watch = watch_requested(params)
    rv = params.get("resourceVersion") or None
    match = params.get("resourceVersionMatch") or None
    send_initial = _flag(params, "sendInitialEvents")
    token = params.get("continue") or None
    errors: list[FieldError] = []
    if rv is not None and not rv.isdigit():
        errors.append(invalid("resourceVersion", rv, "must be a non-negative integer"))
    errors += _watch_errors(match, send_initial, token) if watch else \
        _list_errors(match, send_initial, token, rv)
    if errors:
        raise Invalid("ListOptions", "", errors, "meta.k8s.io")
    return ListOptions(
        labels=labels,
        fields=fields,
        limit=_int(params, "limit") or None,
        continue_from=decode_continue(token) if token else None,
        resource_version=rv,
        resource_version_match=match,
        watch=watch,
        allow_bookmarks=bool(_flag(params, "allowWatchBookmarks")),
        timeout_seconds=_int(params, "timeoutSeconds"),
        send_initial_events=send_initial,
    )


def _list_errors(match: str | None, send_initial: bool | None, token: str | None,
                 rv: str | None) -> list[FieldError]:
    errors: list[FieldError] = []
    if send_initial is not None:
        errors.append(forbidden("sendInitialEvents", "sendInitialEvents is forbidden for list"))
    if match is None:
        return errors
    if match not in ("Exact", "NotOlderThan"):
        errors.append(not_supported("resourceVersionMatch", match, ["Exact", "NotOlderThan"]))
    if rv is None:
        errors.append(forbidden("resourceVersionMatch",
                                "resourceVersionMatch is forbidden unless resourceVersion is "
                                "provided"))
    if token is not None:
        errors.append(forbidden("resourceVersionMatch",
                                "resourceVersionMatch is forbidden when continue is provided"))
    if match == "Exact" and rv == "0":
        errors.append(forbidden("resourceVersionMatch",
                                'resourceVersionMatch "exact" is forbidden for resourceVersion "0"'))
    return errors


def _watch_errors(match: str | None, send_initial: bool | None,
                  token: str | None) -> list[FieldError]:
    """Watch-list (sendInitialEvents) rules, as apimachinery's validateWatchOptions."""
    errors: list[FieldError] = []
    if send_initial is not None and match != "NotOlderThan":
        errors.append(forbidden("resourceVersionMatch",
                                "sendInitialEvents requires setting resourceVersionMatch to "
                                "NotOlderThan"))
    if match is not None:
        if send_initial is None:
            errors.append(forbidden("resourceVersionMatch",
                                    "resourceVersionMatch is forbidden for watch unless "
                                    "sendInitialEvents is provided"))
        if match != "NotOlderThan":
            errors.append(not_supported("resourceVersionMatch", match, ["NotOlderThan"]))
        if token is not None:
            errors.append(forbidden("resourceVersionMatch",
                                    "resourceVersionMatch is forbidden when continue is provided"))
    return errors


def encode_continue(revision: int, key: tuple[str, str]) -> str:
    raw = orjson.dumps({"v": _CONTINUE_VERSION, "rv": revision, "start": f"{key[0]}/{key[1]}"})
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_continue(token: str) -> tuple[int, tuple[str, str]]:
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        data = orjson.loads(raw)
        namespace, _, name = data["start"].partition("/")
        revision = int(data["rv"])
        if data.get("v") != _CONTINUE_VERSION or revision <= 0:
            raise ValueError
    except (binascii.Error, ValueError, KeyError, TypeError, AttributeError, orjson.JSONDecodeError):
        raise BadRequest("invalid continue token: not a continue token issued by this server") \
            from None
    return revision, (namespace, name)


def expired_continue(revision: int, compacted: int) -> Gone:
    return Gone(f"The provided continue parameter is too old to display a consistent list result. "
                f"You can start a new list without the continue parameter, or use the continue "
                f"token in this response to retrieve the remainder of the results. "
                f"(resource version {revision} is older than {compacted + 1})")
