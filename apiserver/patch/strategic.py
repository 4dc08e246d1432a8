"""Strategic merge patch, content type ``application/strategic-merge-patch+json``.

JSON merge patch plus per-list strategies (see ``schemas``) and the directives that
kubectl and client libraries send:

* ``$patch: replace|delete|merge`` in an object; ``{"$patch": "delete", <key>: v}`` and
  ``{"$patch": "replace"}`` as elements of a merge-keyed list;
* ``$setElementOrder/<list>``, ``$deleteFromPrimitiveList/<list>``, ``$retainKeys``.

Directives are consumed, never stored. Element ordering follows apimachinery's
``strategicpatch`` (mergeSlice / normalizeElementOrder), so results match a real API
server: without ``$setElementOrder`` patch elements keep the patch's order and are
interleaved with server-only elements by their live positions, and elements new to the
list come before the server-only elements that follow them (Kubernetes prepends).
Nothing here mutates its inputs: objects are rebuilt and the result is deep-copied.
"""

from collections.abc import Callable, Hashable
from typing import Any

from ._json import deep_copy, ident
from .errors import PatchError
from .schemas import FieldSchema

_PATCH = "$patch"
_RETAIN_KEYS = "$retainKeys"
_SET_ORDER = "$setElementOrder"
_DELETE_PRIMITIVES = "$deleteFromPrimitiveList"

KeyFn = Callable[[Any], Hashable]


class _Delete:
    """Marker returned by a map merge meaning "remove this field" (``$patch: delete``)."""


_DELETE = _Delete()
_MISSING: Any = object()


def strategic_merge_patch(schema: FieldSchema, doc: dict, patch: dict) -> dict:
    """Apply a strategic merge ``patch`` to ``doc`` whose kind's list strategies are
    ``schema`` (its strategy's ``patch_schema``); returns a new document."""
    if not isinstance(doc, dict):
        raise PatchError("the object to patch is not a JSON object")
    if not isinstance(patch, dict):
        raise PatchError("a strategic merge patch must be a JSON object", malformed=True)
    try:
        merged = _merge_map(doc, patch, schema)
        return {} if isinstance(merged, _Delete) else deep_copy(merged)
    except RecursionError:
        raise PatchError("document or patch is nested too deeply", malformed=True) from None


# --- objects -------------------------------------------------------------------------


def _merge_map(original: dict, patch: dict, schema: FieldSchema) -> dict | _Delete:
    """Merge ``patch`` into a copy of ``original``, honouring object-level directives."""
    if _PATCH in patch:
        directive = patch[_PATCH]
        rest = {k: v for k, v in patch.items() if k != _PATCH}
        if directive == "delete":
            return _DELETE
        if directive == "replace":
            return _merge_map({}, rest, schema)
        if directive != "merge":
            raise PatchError(f"unknown $patch directive {directive!r} in an object; "
                             'expected "replace", "delete" or "merge"', malformed=True)
        patch = rest
    result = _retain_keys(dict(original), patch)
    orders, deletions, fields = _split_directives(patch)
    for name, value in fields.items():
        if name not in orders:
            _assign(result, name, _merge_field(result.get(name, _MISSING), value,
                                               schema.child(name)))
    for name, order in orders.items():
        _apply_order(result, name, order, fields.get(name, _MISSING), schema.child(name))
    for name, values in deletions.items():
        _delete_primitives(result, name, values)
    return result


def _assign(result: dict, name: str, value: Any) -> None:
    """Store a merged field; null or a ``$patch: delete`` removes it."""
    if value is None or isinstance(value, _Delete):
        result.pop(name, None)
    else:
        result[name] = value


def _merge_field(current: Any, value: Any, schema: FieldSchema) -> Any:
    """Merge one patch value into the live value (``_MISSING`` when absent)."""
    if isinstance(value, dict):
        return _merge_map(current if isinstance(current, dict) else {}, value, schema)
    if isinstance(value, list):
        if schema.merge:
            return _merge_list(current if isinstance(current, list) else [], value, schema)
        return _literal(value)
    return value


def _literal(value: Any) -> Any:
    """An atomic value taken whole from the patch, minus any stray directive keys."""
    if isinstance(value, dict):
        return {k: _literal(v) for k, v in value.items() if not _is_directive(k)}
    if isinstance(value, list):
        return [_literal(v) for v in value]
    return value


def _is_directive(name: Any) -> bool:
    return isinstance(name, str) and (
        name in (_PATCH, _RETAIN_KEYS)
        or name.startswith(_SET_ORDER + "/")
        or name.startswith(_DELETE_PRIMITIVES + "/"))


def _split_directives(patch: dict) -> tuple[dict, dict, dict]:
    """Split a patch object into (set-order lists, delete-from lists, plain fields)."""
    orders: dict[str, Any] = {}
    deletions: dict[str, Any] = {}
    fields: dict[str, Any] = {}
    for name, value in patch.items():
        if name == _RETAIN_KEYS:
            continue
        if isinstance(name, str) and name.startswith(_SET_ORDER):
            orders[_directive_target(name, _SET_ORDER)] = value
        elif isinstance(name, str) and name.startswith(_DELETE_PRIMITIVES):
            deletions[_directive_target(name, _DELETE_PRIMITIVES)] = value
        else:
            fields[name] = value
    return orders, deletions, fields


def _directive_target(name: str, prefix: str) -> str:
    target = name[len(prefix) + 1:]
    if not name.startswith(prefix + "/") or not target:
        raise PatchError(f"invalid directive {name!r}: expected {prefix}/<field name>",
                         malformed=True)
    return target


def _retain_keys(result: dict, patch: dict) -> dict:
    """``$retainKeys``: drop live fields not listed (for union types like volume sources)."""
    if _RETAIN_KEYS not in patch:
        return result
    keep = patch[_RETAIN_KEYS]
    if not isinstance(keep, list) or not all(isinstance(k, str) for k in keep):
        raise PatchError("$retainKeys must be a list of field names", malformed=True)
    for name, value in patch.items():
        if value is not None and not _is_directive(name) and name not in keep:
            raise PatchError(f"field {name!r} is set in the patch but missing from $retainKeys")
    return {k: v for k, v in result.items() if k in keep}


def _delete_primitives(result: dict, name: str, values: Any) -> None:
    """``$deleteFromPrimitiveList/<name>``: remove every occurrence of those values."""
    if not isinstance(values, list):
        raise PatchError(f"$deleteFromPrimitiveList/{name} must be a list", malformed=True)
    current = result.get(name)
    if isinstance(current, list):
        drop = {ident(v) for v in values}
        result[name] = [v for v in current if ident(v) not in drop]


# --- lists ---------------------------------------------------------------------------


def _merge_list(original: list, patch: list, schema: FieldSchema) -> list:
    if schema.key is None:
        return _merge_primitive_set(original, patch)
    return _merge_keyed_list(original, patch, schema)


def _merge_primitive_set(original: list, patch: list) -> list:
    """Union of primitives without duplicates (finalizers, podCIDRs)."""
    if any(isinstance(v, (dict, list)) for v in patch):
        raise PatchError("this list is a set of primitive values; it cannot hold "
                         "objects or lists")
    merged = _dedupe(original + patch)
    return _restore_order(merged, patch, original, ident)


def _dedupe(values: list) -> list:
    seen: set[Hashable] = set()
    out = []
    for v in values:
        key = ident(v)
        if key not in seen:
            seen.add(key)
            out.append(v)
    return out


def _merge_keyed_list(original: list, patch: list, schema: FieldSchema) -> list:
    """Merge lists of objects by ``schema.key``, honouring element directives."""
    key = schema.key
    assert key is not None
    regular, deleted, replace = _split_list_directives(patch, key)
    if replace:
        return [_merge_map({}, e, schema) for e in regular]
    key_of = _element_key(key)
    base = [e for e in original if key_of(e) not in deleted]
    merged = list(base)
    positions = _positions(merged, key_of)
    for element in regular:
        at = positions.get(key_of(element))
        if at is None:
            positions[key_of(element)] = len(merged)
            merged.append(_merge_map({}, element, schema))
        else:
            merged[at] = _merge_map(merged[at], element, schema)
    return _restore_order(merged, regular, base, key_of)


def _split_list_directives(patch: list, key: str) -> tuple[list[dict], set, bool]:
    """Return (elements to merge, keys to delete, whether ``$patch: replace`` was given)."""
    regular: list[dict] = []
    deleted: set[Hashable] = set()
    replace = False
    for element in patch:
        if not isinstance(element, dict):
            raise PatchError(f"elements of a list merged by {key!r} must be objects",
                             malformed=True)
        directive = element.get(_PATCH, _MISSING)
        if directive is not _MISSING and directive not in ("delete", "replace"):
            raise PatchError(f"unknown $patch directive {directive!r} in a list element; "
                             'expected "delete" or "replace"', malformed=True)
        if directive != "replace" and key not in element:
            raise PatchError(f"list element does not contain declared merge key {key!r}",
                             malformed=True)
        if directive == "replace":
            replace = True
        elif directive == "delete":
            deleted.add(_element_key(key)(element))
        else:
            regular.append(element)
    return regular, deleted, replace


def _element_key(key: str) -> KeyFn:
    """Identity of a list element by merge key; keyless elements never match anything."""
    def key_of(element: Any) -> Hashable:
        if isinstance(element, dict) and key in element:
            return ("key", ident(element[key]))
        return ("unmatched", id(element))
    return key_of


def _positions(items: list, key_of: KeyFn) -> dict[Hashable, int]:
    """First position of each key in ``items``."""
    positions: dict[Hashable, int] = {}
    for i, item in enumerate(items):
        positions.setdefault(key_of(item), i)
    return positions


# --- ordering ------------------------------------------------------------------------


def _restore_order(merged: list, patch_order: list, server_order: list,
                   key_of: KeyFn) -> list:
    """Order ``merged``: patch items in ``patch_order``, others by ``server_order``.

    Mirrors apimachinery's normalizeElementOrder so list order matches a real server.
    """
    wanted = _positions(patch_order, key_of)
    patch_items = [x for x in merged if key_of(x) in wanted]
    server_only = [x for x in merged if key_of(x) not in wanted]
    return _merge_sorted(_sort_by(server_only, server_order, key_of),
                         _sort_by(patch_items, patch_order, key_of), server_order, key_of)


def _sort_by(items: list, order: list, key_of: KeyFn) -> list:
    """Stable sort by position in ``order``; unknown items keep their order, last."""
    positions = _positions(order, key_of)

    def rank(item: Any) -> tuple[int, int]:
        at = positions.get(key_of(item))
        return (0, at) if at is not None else (1, 0)
    return sorted(items, key=rank)


def _merge_sorted(left: list, right: list, server_order: list, key_of: KeyFn) -> list:
    """Interleave server-only items (``left``) with patch items (``right``).

    A left item goes first only if both are in the live list and it came earlier there;
    that is why items new to the list land before the server-only items after them.
    """
    positions = _positions(server_order, key_of)
    out: list = []
    i = j = 0
    while i < len(left) and j < len(right):
        li, ri = positions.get(key_of(left[i])), positions.get(key_of(right[j]))
        if li is not None and ri is not None and li < ri:
            out.append(left[i])
            i += 1
        else:
            out.append(right[j])
            j += 1
    return out + left[i:] + right[j:]


def _apply_order(result: dict, name: str, order: Any, value: Any,
                 schema: FieldSchema) -> None:
    """Merge list ``name`` (if patched) and order it by ``$setElementOrder/<name>``."""
    if not isinstance(order, list):
        raise PatchError(f"$setElementOrder/{name} must be a list", malformed=True)
    if value is None:
        result.pop(name, None)
        return
    current = result.get(name, _MISSING)
    if value is _MISSING:
        if not isinstance(current, list):
            return
        merged = current
    elif not isinstance(value, list):
        raise PatchError(f"$setElementOrder/{name} is given but {name!r} in the patch "
                         "is not a list", malformed=True)
    else:
        merged = _merge_field(current, value, schema)
    key_of = _order_key_fn(name, order, schema)
    if value is not _MISSING:
        _check_order(name, value, order, key_of, schema)
    live = current if isinstance(current, list) else []
    result[name] = _restore_order(merged, order, live, key_of)


def _order_key_fn(name: str, order: list, schema: FieldSchema) -> KeyFn:
    """Element identity for ordering; order entries of keyed lists must carry the key."""
    if not (schema.merge and schema.key):
        return ident
    key = schema.key
    if not all(isinstance(o, dict) and key in o for o in order):
        raise PatchError(f"every $setElementOrder/{name} entry must be an object with "
                         f"merge key {key!r}", malformed=True)
    return _element_key(key)


def _check_order(name: str, value: list, order: list, key_of: KeyFn,
                 schema: FieldSchema) -> None:
    """Patch elements must appear in ``$setElementOrder`` in the same relative order."""
    if schema.merge and schema.key:
        value = [e for e in value if not (isinstance(e, dict) and _PATCH in e)]
    remaining = iter([key_of(o) for o in order])
    if not all(key_of(e) in remaining for e in value):
        raise PatchError(f"the order of {name!r} in the patch does not match "
                         f"$setElementOrder/{name}", malformed=True)
