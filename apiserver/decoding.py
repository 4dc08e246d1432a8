"""Request bodies decoded with limits: depth, YAML aliases, duplicate keys, encoded size.

A body under the 3 MiB request limit can still cost far more once decoded: YAML
aliases repeat one node any number of times (a 100 KB Pod became a 100 MB object,
the class of CVE-2019-11253), deep nesting exhausts the recursion of the YAML
composer (and orjson encodes at most 254 levels), and an object over etcd's
1.5 MiB would be stored and then copied into every list and watch. Every limit
here is checked while decoding, before anything is stored, and answers with a
Kubernetes ``Status``: 400 for a body that cannot be decoded within the limits,
413 for an object too large to store.

Duplicate keys are legal to the decoders (the last one wins) but Kubernetes
reports them under ``fieldValidation``; ``Decoded.duplicates`` names them, by the
same field paths as unknown fields (``spec.ports[0].name``).

Pure functions, no I/O: the handlers decide when to run them off the event loop
(``OFFLOAD_BYTES``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import orjson
import yaml
from yaml.composer import Composer
from yaml.constructor import SafeConstructor
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode
from yaml.resolver import Resolver

from apiserver.errors import BadRequest, RequestTooLarge

# etcd's default --max-request-bytes, which bounds a Kubernetes object: nothing
# whose JSON encoding is larger is stored (apiserver/storage/store.py checks it).
MAX_OBJECT_BYTES = 1_572_864
# What a write may add to an object already over the limit (stored before it existed).
LEGACY_SLACK_BYTES = 1024
# Nesting levels a body may have. Kubernetes objects use about 15; orjson cannot
# encode more than 254, and a stored object nests a few levels deeper than its
# body (metadata.managedFields mirrors it).
MAX_DEPTH = 100
# What YAML aliases may add to a document, counted as the JSON size of the nodes
# they repeat: more could not be stored anyway. go-yaml's "excessive aliasing".
MAX_YAML_ALIAS_BYTES = MAX_OBJECT_BYTES
# Bodies larger than this are decoded on a worker thread, so that reading them cannot
# stall the event loop: orjson takes about a millisecond per megabyte, YAML (nodes
# built in Python, even over libyaml) about a second.
OFFLOAD_BYTES = 64 * 1024
OFFLOAD_YAML_BYTES = 4 * 1024


class Decoded(NamedTuple):
    """A decoded body, the paths of keys it repeats, and its compact JSON size.

    (A tuple: built on every write, and a frozen dataclass costs a microsecond.)"""

    document: Any
    duplicates: tuple[str, ...] = ()
    size: int = 0


# ------------------------------------------------------------------------ limits


def too_deep() -> BadRequest:
    return BadRequest(f"the request body is nested more than {MAX_DEPTH} levels deep")


def check_object_size(size: int, stored: int = 0) -> None:
    """Refuse an object whose JSON encoding is over ``MAX_OBJECT_BYTES`` (413).

    ``stored`` is the size of the version it replaces. One stored over the limit
    before there was a limit may still be written if it grows by no more than
    ``LEGACY_SLACK_BYTES`` (deletion marked, finalizers or labels removed), so that
    it can be shrunk or deleted like any other.
    """
    if size > MAX_OBJECT_BYTES and not (stored > MAX_OBJECT_BYTES
                                        and size <= stored + LEGACY_SLACK_BYTES):
        raise RequestTooLarge(f"the object is {size} bytes when encoded, over the limit of "
                              f"{MAX_OBJECT_BYTES} bytes")


def nests_deeper(document: Any, limit: int = MAX_DEPTH) -> bool:
    """Whether ``document`` nests more than ``limit`` containers deep.

    orjson's indented output puts every element of a container at depth ``d`` on its
    own line, indented by ``2 * d`` spaces, and never a raw newline inside a string:
    a line indented ``2 * limit`` spaces exists exactly when something is nested
    deeper. One encoding and one substring search, both in C.
    """
    try:
        pretty = orjson.dumps(document, option=orjson.OPT_INDENT_2)
    except orjson.JSONEncodeError:  # orjson encodes at most 254 levels
        return True
    return b"\n" + b" " * (2 * limit) in pretty


# -------------------------------------------------------------------------- JSON


def decode_json(raw: bytes) -> Decoded:
    """orjson, then the limits; a pure-Python pass only when duplicates may be present.

    Cheap proof of no duplicate keys: every ``:`` in JSON is either after a key or
    inside a string. Re-encoding keeps every key and string of a body without
    duplicates, so the counts of ``:`` match; a dropped duplicate key takes its
    ``:`` (and its value's) with it. A ``\\u`` escape could spell a colon, so a body
    with one takes the slow path.
    """
    try:
        document = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        if not raw.strip():
            raise BadRequest("the request body is empty") from None
        if "depth" in str(exc):
            raise too_deep() from None
        raise BadRequest(f"the request body is not valid JSON: {exc}") from None
    return _json_limits(raw, document)


def _json_limits(raw: bytes, document: Any) -> Decoded:
    if raw.count(b"[") + raw.count(b"{") > MAX_DEPTH and nests_deeper(document):
        raise too_deep()  # (fewer brackets than the limit cannot nest deeper than it)
    encoded = orjson.dumps(document)
    duplicates: tuple[str, ...] = ()
    if b"\\u" in raw or raw.count(b":") != encoded.count(b":"):
        duplicates = json_duplicates(raw)
    return Decoded(document, duplicates, len(encoded))


class _Repeats(dict):
    """An object whose body repeated ``repeated`` keys (the last value won)."""

    repeated: list[str]


def _pairs(pairs: list[tuple[str, Any]]) -> dict:
    obj = dict(pairs)
    if len(obj) == len(pairs):
        return obj
    marked = _Repeats(obj)
    marked.repeated = []
    seen: set[str] = set()
    for key, _ in pairs:
        if key in seen:
            marked.repeated.append(key)
        seen.add(key)
    return marked


def json_duplicates(raw: bytes) -> tuple[str, ...]:
    """Paths of repeated keys in a JSON body (already known to decode within the limits)."""
    import json  # the stdlib decoder is the one that shows every pair; only needed here

    found: list[str] = []
    _collect(json.loads(raw, object_pairs_hook=_pairs), "", found)
    return tuple(dict.fromkeys(found))


def _collect(value: Any, path: str, found: list[str]) -> None:
    if isinstance(value, dict):
        if isinstance(value, _Repeats):
            found.extend(_join(path, k) for k in value.repeated)
        for k, v in value.items():
            _collect(v, _join(path, k), found)
    elif isinstance(value, list):
        for i, v in enumerate(value):
            _collect(v, f"{path}[{i}]", found)


def _join(path: str, key: Any) -> str:
    return f"{path}.{key}" if path else str(key)


# -------------------------------------------------------------------------- YAML


class _Limits:
    """Composition with a depth limit and a budget for what aliases repeat.

    Composition is where both bite: each node is composed one level deeper than its
    parent (the composer recurses), and an alias hands back a node composed before,
    whose size is known, so a bomb is refused after reading no more than it spent.
    Mixed into a PyYAML loader, before its ``Composer``.
    """

    anchors: dict[str, Node]
    peek_event: Any

    def _start_limits(self) -> None:
        self._depth = 0
        self._alias_bytes = 0
        self._open: set[str] = set()  # anchors of nodes still being composed
        self._sizes: dict[int, int] = {}

    def compose_node(self, parent: Node | None, index: Any) -> Node | None:
        event = self.peek_event()
        if isinstance(event, yaml.AliasEvent):
            if event.anchor in self._open:
                raise BadRequest(f'the request body is not valid YAML: the alias '
                                 f'"*{event.anchor}" refers to a node that contains it')
            node = self.anchors.get(event.anchor or "")
            if node is not None:
                self._alias_bytes += self._size(node)
                if self._alias_bytes > MAX_YAML_ALIAS_BYTES:
                    raise BadRequest(f"the request body's YAML aliases expand to more than "
                                     f"{MAX_YAML_ALIAS_BYTES} bytes")
            return super().compose_node(parent, index)  # type: ignore[misc]
        self._depth += 1
        if self._depth > MAX_DEPTH:
            raise too_deep()
        anchor = getattr(event, "anchor", None)
        if anchor:
            self._open.add(anchor)
        try:
            return super().compose_node(parent, index)  # type: ignore[misc]
        finally:
            self._depth -= 1
            self._open.discard(anchor or "")

    def _size(self, node: Node) -> int:
        """About the JSON size of ``node`` with every alias inside it expanded (memoised)."""
        known = self._sizes.get(id(node))
        if known is not None:
            return known
        if isinstance(node, ScalarNode):
            size = len(node.value) + 2
        elif isinstance(node, SequenceNode):
            size = 2 + sum(self._size(item) + 1 for item in node.value)
        else:
            size = 2 + sum(self._size(k) + self._size(v) + 2 for k, v in node.value)
        self._sizes[id(node)] = size
        return size


class _PureLoader(_Limits, yaml.SafeLoader):
    """The limits on PyYAML's pure-Python loader (where libyaml is not installed)."""

    def __init__(self, stream: bytes) -> None:
        super().__init__(stream)
        self._start_limits()

    def fetch_flow_collection_start(self, TokenClass: Any) -> None:  # noqa: N803 - PyYAML's name
        """The scanner reads ahead over every ``[`` that may start a key, at a cost that
        grows with the nesting: refuse the nesting as it is read, not once composed."""
        super().fetch_flow_collection_start(TokenClass)
        if self.flow_level > MAX_DEPTH:
            raise too_deep()


_Loader: Callable[[bytes], Any] = _PureLoader
if yaml.__with_libyaml__:
    from yaml._yaml import CParser

    class _CLoader(_Limits, Composer, CParser, SafeConstructor, Resolver):
        """libyaml's scanner and parser (about ten times faster, nesting capped at 1000)
        under PyYAML's Python composer, which the limits hook into."""

        def __init__(self, stream: bytes) -> None:
            CParser.__init__(self, stream)
            Composer.__init__(self)
            SafeConstructor.__init__(self)
            Resolver.__init__(self)
            self._start_limits()

    _Loader = _CLoader


def decode_yaml(raw: bytes) -> Decoded:
    """One YAML document within the limits, as the JSON it stands for (aliases expanded,
    timestamps and other YAML-only types as JSON would carry them). A body that is
    JSON (kubectl's apply patches) is read as JSON, much faster."""
    if looks_like_json(raw):
        try:
            document = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            if "depth" in str(exc):
                raise too_deep() from None
        else:
            return _json_limits(raw, document)
    loader = _Loader(raw)
    try:
        node = loader.get_single_node()
        if node is None:
            return Decoded(None)
        duplicates = yaml_duplicates(node)
        document = loader.construct_document(node)
    except yaml.YAMLError as exc:
        if "maximum nesting depth" in str(exc):  # libyaml's own cap, met reading ahead
            raise too_deep() from None
        raise BadRequest(f"the request body is not valid YAML: {exc}".splitlines()[0]) from None
    except RecursionError:
        raise too_deep() from None
    finally:
        loader.dispose()
    try:
        encoded = orjson.dumps(document, option=orjson.OPT_NON_STR_KEYS)
    except orjson.JSONEncodeError as exc:
        raise BadRequest(f"the request body cannot be read as JSON: {exc}") from None
    return Decoded(orjson.loads(encoded), duplicates, len(encoded))


def yaml_duplicates(root: Node) -> tuple[str, ...]:
    """Paths of keys a YAML mapping repeats (``<<`` merges are not repeats)."""
    found: list[str] = []
    seen: set[int] = set()
    stack: list[tuple[Node, str]] = [(root, "")]
    while stack:
        node, path = stack.pop()
        if id(node) in seen:
            continue  # an aliased node: reported where it first appeared
        seen.add(id(node))
        if isinstance(node, MappingNode):
            keys: set[str] = set()
            children = []
            for k, v in node.value:
                key = k.value if isinstance(k, ScalarNode) else None
                if key is None or k.tag == "tag:yaml.org,2002:merge":
                    continue
                if key in keys:
                    found.append(_join(path, key))
                keys.add(key)
                children.append((v, _join(path, key)))
            stack.extend(reversed(children))
        elif isinstance(node, SequenceNode):
            stack.extend(reversed([(v, f"{path}[{i}]") for i, v in enumerate(node.value)]))
    return tuple(dict.fromkeys(found))


def looks_like_json(raw: bytes) -> bool:
    """A YAML body that is JSON (kubectl's apply patches are) decodes as JSON, fast."""
    return raw.lstrip()[:1] in (b"{", b"[")
