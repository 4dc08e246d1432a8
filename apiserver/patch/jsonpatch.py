"""JSON Patch (RFC 6902), content type ``application/json-patch+json``.

All operations are validated before any is applied, so a malformed patch is reported
as malformed (400) even when an earlier operation would also fail to apply (422).
Operations run against a private copy; the caller's document is never touched.

Why not the maintained ``jsonpatch`` library (checked against jsonpatch 1.48 with
jsonpointer 3.12, which ``tests/unit/test_patch_fuzz.py`` uses as an oracle: on
every fuzzed patch we apply, it produces the same document)? It would replace only
the ~90 lines below "applying"; the API needs three things it does not give, and a
wrapper adding them is as large as this module:

- **400 vs 422.** The library checks each operation only when it reaches it, and
  raises the same classes (``JsonPointerException``, ``InvalidJsonPatch``) for a
  malformed pointer or a missing ``value`` as for a path that does not resolve.
  The API must answer 400 for any malformed operation, even after one that fails
  to apply, so the whole validation pass (``_parse_ops``) would stay ours anyway.
- **Messages.** Its errors quote the stored document or the tested value
  (``member 'x' not found in {...the whole object...}``, ``<stored value> (<class
  'str'>) is not equal to tested value ...``), which a ``Status`` must not echo
  back; ours name the operation (index, op, path) and the failing member or index.
  Rewriting its errors per class would lose which member or index failed.
- **Versions.** The semantics the tests pin (``test`` compares as JSON: ``true`` is
  not ``1``; patch values are copied, never aliased into the result) are only in
  recent releases; 1.33 (still widely installed) compares with Python's ``!=``
  (``True == 1``) and inserts the patch's own value objects.

The document must also stay a JSON object (a root ``replace`` with a list is 422
here; the library returns the list).
"""

import re
from dataclasses import dataclass
from typing import Any

from ._json import deep_copy, json_equal
from .errors import PatchError

_OPS = ("add", "remove", "replace", "move", "copy", "test")
_NEEDS_VALUE = {"add", "replace", "test"}
_NEEDS_FROM = {"move", "copy"}
_ARRAY_INDEX = re.compile(r"0|[1-9][0-9]*")
_BAD_ESCAPE = re.compile(r"~(?![01])")


@dataclass(frozen=True)
class _Op:
    """One validated operation; ``where`` names it in error messages."""

    op: str
    path: tuple[str, ...]
    where: str
    value: Any = None
    source: tuple[str, ...] = ()


def json_patch(doc: dict, ops: list) -> dict:
    """Apply RFC 6902 ``ops`` to ``doc``; returns a new document."""
    if not isinstance(doc, dict):
        raise PatchError("the object to patch is not a JSON object")
    try:
        parsed = _parse_ops(ops)
        result: Any = deep_copy(doc)
        for op in parsed:
            result = _apply(result, op)
    except RecursionError:
        raise PatchError("document or patch is nested too deeply", malformed=True) from None
    if not isinstance(result, dict):
        raise PatchError("the patched document is not a JSON object")
    return result


# --- parsing -------------------------------------------------------------------------


def _parse_ops(ops: Any) -> list[_Op]:
    """Validate the whole patch document up front (malformed => 400)."""
    if not isinstance(ops, list):
        raise PatchError("a JSON patch must be a JSON array of operations", malformed=True)
    return [_parse_op(i, raw) for i, raw in enumerate(ops)]


def _parse_op(index: int, raw: Any) -> _Op:
    if not isinstance(raw, dict):
        raise PatchError(f"JSON patch operation {index} is not an object", malformed=True)
    op = raw.get("op")
    if op not in _OPS:
        raise PatchError(
            f"JSON patch operation {index}: unknown op {op!r}, expected one of {', '.join(_OPS)}",
            malformed=True,
        )
    where = f"JSON patch operation {index} ({op})"
    path = _parse_pointer(_member(raw, "path", where), where)
    if op in _NEEDS_VALUE and "value" not in raw:
        raise PatchError(f'{where}: missing member "value"', malformed=True)
    source = _parse_pointer(_member(raw, "from", where), where) if op in _NEEDS_FROM else ()
    return _Op(op, path, f"{where} at {raw['path']!r}", raw.get("value"), source)


def _member(raw: dict, name: str, where: str) -> str:
    if name not in raw:
        raise PatchError(f'{where}: missing member "{name}"', malformed=True)
    value = raw[name]
    if not isinstance(value, str):
        raise PatchError(f'{where}: member "{name}" must be a string', malformed=True)
    return value


def _parse_pointer(pointer: str, where: str) -> tuple[str, ...]:
    """RFC 6901: "" is the whole document, otherwise "/"-separated, ~1 = "/", ~0 = "~"."""
    if pointer == "":
        return ()
    if not pointer.startswith("/"):
        raise PatchError(f"{where}: JSON pointer {pointer!r} must start with '/'", malformed=True)
    if _BAD_ESCAPE.search(pointer):
        raise PatchError(f"{where}: JSON pointer {pointer!r} has an invalid '~' escape",
                         malformed=True)
    return tuple(t.replace("~1", "/").replace("~0", "~") for t in pointer[1:].split("/"))


# --- applying ------------------------------------------------------------------------


def _apply(doc: Any, op: _Op) -> Any:
    """Apply one operation to ``doc`` (our private copy) and return the new root."""
    if op.op == "add":
        return _add(doc, op.path, deep_copy(op.value), op.where)
    if op.op == "remove":
        return _remove(doc, op.path, op.where)[0]
    if op.op == "replace":
        return _replace(doc, op.path, deep_copy(op.value), op.where)
    if op.op == "move":
        return _move(doc, op)
    if op.op == "copy":
        value = deep_copy(_get(doc, op.source, op.where))
        return _add(doc, op.path, value, op.where)
    _test(doc, op)
    return doc


def _move(doc: Any, op: _Op) -> Any:
    if op.source == op.path[: len(op.source)] and len(op.source) < len(op.path):
        raise PatchError(f"{op.where}: cannot move a value into one of its own children")
    _get(doc, op.source, op.where)
    if op.source == op.path:
        return doc
    doc, value = _remove(doc, op.source, op.where)
    return _add(doc, op.path, value, op.where)


def _test(doc: Any, op: _Op) -> None:
    if not json_equal(_get(doc, op.path, op.where), op.value):
        raise PatchError(f"{op.where}: test failed, value differs")


def _get(doc: Any, path: tuple[str, ...], where: str) -> Any:
    for token in path:
        doc = _child(doc, token, where)
    return doc


def _child(container: Any, token: str, where: str) -> Any:
    if isinstance(container, dict):
        if token not in container:
            raise PatchError(f"{where}: path member {token!r} does not exist")
        return container[token]
    if isinstance(container, list):
        return container[_index(token, len(container), where, allow_end=False)]
    raise PatchError(f"{where}: cannot look up {token!r} inside a non-container value")


def _add(doc: Any, path: tuple[str, ...], value: Any, where: str) -> Any:
    if not path:
        return value
    parent, last = _get(doc, path[:-1], where), path[-1]
    if isinstance(parent, dict):
        parent[last] = value
    elif isinstance(parent, list):
        parent.insert(_index(last, len(parent), where, allow_end=True), value)
    else:
        raise PatchError(f"{where}: parent of the target is not an object or array")
    return doc


def _remove(doc: Any, path: tuple[str, ...], where: str) -> tuple[Any, Any]:
    if not path:
        raise PatchError(f"{where}: cannot remove the whole document")
    parent, last = _get(doc, path[:-1], where), path[-1]
    if isinstance(parent, dict):
        if last not in parent:
            raise PatchError(f"{where}: path member {last!r} does not exist")
        return doc, parent.pop(last)
    if isinstance(parent, list):
        return doc, parent.pop(_index(last, len(parent), where, allow_end=False))
    raise PatchError(f"{where}: parent of the target is not an object or array")


def _replace(doc: Any, path: tuple[str, ...], value: Any, where: str) -> Any:
    if not path:
        return value
    parent, last = _get(doc, path[:-1], where), path[-1]
    if isinstance(parent, dict):
        if last not in parent:
            raise PatchError(f"{where}: path member {last!r} does not exist")
        parent[last] = value
    elif isinstance(parent, list):
        parent[_index(last, len(parent), where, allow_end=False)] = value
    else:
        raise PatchError(f"{where}: parent of the target is not an object or array")
    return doc


def _index(token: str, length: int, where: str, *, allow_end: bool) -> int:
    """Array index per RFC 6901/6902: decimal without leading zeros, "-" only for add."""
    if token == "-" and allow_end:
        return length
    if not _ARRAY_INDEX.fullmatch(token):
        raise PatchError(f"{where}: {token!r} is not a valid array index")
    index = int(token)
    if index > length or (index == length and not allow_end):
        raise PatchError(f"{where}: array index {index} is out of bounds (length {length})")
    return index
