"""Label and field selectors, with Kubernetes syntax and matching semantics.

One implementation shared by the API server (``?labelSelector=`` / ``?fieldSelector=`` on
lists and watches) and by clients (controllers matching Pods to a Service's selector), so
that both sides agree on exactly which objects a selector picks.

Label selectors follow ``k8s.io/apimachinery/pkg/labels``::

    a=b  a==b  a!=b  a in (x,y)  a notin (x)  a  !a      comma = AND, whitespace ignored

Semantics worth remembering: ``!=`` and ``notin`` also match objects that lack the key,
``=`` and ``in`` need the key to be present, and the empty selector matches everything.
Parsing sorts requirements by key (as Kubernetes does), so ``str()`` gives one canonical
form for equivalent selectors and ``parse_label_selector(str(s)) == s``.

Field selectors follow ``k8s.io/apimachinery/pkg/fields``: ``field=value``, ``==``, ``!=``,
comma = AND, and ``\\``, ``\\,``, ``\\=`` escapes inside values. Which fields exist is
decided per kind by the caller (``allowed``); ``metadata.name`` and ``metadata.namespace``
are always allowed, since every Kubernetes type supports them.

Pure code: no I/O, no global state.
"""

from __future__ import annotations

from collections.abc import Collection, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from apimachinery import names

__all__ = [
    "EVERYTHING",
    "FieldRequirement",
    "FieldSelector",
    "LabelSelector",
    "Requirement",
    "SelectorError",
    "check_label_key",
    "check_label_value",
    "matches_map",
    "object_fields",
    "parse_field_selector",
    "parse_label_selector",
    "selector_from_label_selector_object",
    "selector_from_map",
]


class SelectorError(ValueError):
    """A selector could not be parsed or is invalid; the message is fit for a user.

    The API server turns it into a 400 BadRequest, so messages name the offending part.
    """


# --------------------------------------------------------------------------------------
# Label key / value validation (apimachinery util/validation IsQualifiedName, IsValidLabelValue)
# --------------------------------------------------------------------------------------

def check_label_key(key: str) -> str | None:
    """Why ``key`` is not a valid label key (a qualified name), or None if it is valid.

    The API server's label validation uses the same predicate (``apimachinery.names``), so a
    selector and a stored label are judged by one rule with one wording.
    """
    problems = names.is_qualified_name(key)
    return "; ".join(problems) if problems else None


def check_label_value(value: str) -> str | None:
    """Why ``value`` is not a valid label value, or None. The empty string is valid."""
    problems = names.is_valid_label_value(value)
    return "; ".join(problems) if problems else None


def _validate_key(key: str) -> None:
    problem = check_label_key(key)
    if problem is not None:
        raise SelectorError(
            f"unable to parse requirement: key: Invalid value: {_q(key)}: {problem}"
        )


def _validate_value(value: str) -> None:
    problem = check_label_value(value)
    if problem is not None:
        raise SelectorError(
            f"unable to parse requirement: values: Invalid value: {_q(value)}: {problem}"
        )


def _q(value: object) -> str:
    """Go-style %q quoting for messages."""
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return repr(value)


# --------------------------------------------------------------------------------------
# Label selectors
# --------------------------------------------------------------------------------------

_OPS = frozenset({"=", "!=", "in", "notin", "exists", "!"})
_OP_ALIASES = {"==": "="}


@dataclass(frozen=True)
class Requirement:
    """One ANDed term of a label selector.

    ``op`` is one of ``=``, ``!=``, ``in``, ``notin``, ``exists``, ``!`` (does not exist);
    ``==`` is accepted and stored as ``=``. ``values`` holds exactly one value for ``=`` and
    ``!=``, at least one (stored sorted and de-duplicated, so equal sets compare equal) for
    ``in``/``notin``, and none for ``exists``/``!``. Construction validates everything and
    raises SelectorError, so an existing Requirement is always well formed.
    """

    key: str
    op: str
    values: tuple[str, ...] = ()
    _set: frozenset[str] = field(init=False, repr=False, compare=False, hash=False)

    def __post_init__(self) -> None:
        op = _OP_ALIASES.get(self.op, self.op)
        if op not in _OPS:
            raise SelectorError(f"unable to parse requirement: {_q(self.op)} is not a valid "
                                "label selector operator")
        values = self.values
        if isinstance(values, str):  # a lone string is a classic mistake: "abc" -> a, b, c
            values = (values,)
        values = tuple(values)
        _validate_key(self.key)
        for v in values:
            _validate_value(v)
        if op in ("=", "!="):
            if len(values) != 1:
                raise SelectorError(
                    f"unable to parse requirement: values: Invalid value: {list(values)!r}: "
                    "exact-match compatibility requires one single value"
                )
        elif op in ("in", "notin"):
            if not values:
                raise SelectorError(
                    "unable to parse requirement: values: Invalid value: []: for 'in', "
                    "'notin' operators, values set can't be empty"
                )
            values = tuple(sorted(set(values)))
        elif values:
            raise SelectorError(
                f"unable to parse requirement: values: Invalid value: {list(values)!r}: "
                "values set must be empty for exists and does not exist"
            )
        object.__setattr__(self, "op", op)
        object.__setattr__(self, "values", values)
        object.__setattr__(self, "_set", frozenset(values))

    def matches(self, labels: Mapping[str, str]) -> bool:
        """Kubernetes semantics: a missing key satisfies ``!=``, ``notin`` and ``!`` only."""
        op = self.op
        if op == "exists":
            return self.key in labels
        if op == "!":
            return self.key not in labels
        have = labels.get(self.key)  # None when absent; never equal to / in a str set
        if op == "=":
            return have == self.values[0]
        if op == "!=":
            return have != self.values[0]
        if op == "in":
            return have in self._set
        return have not in self._set  # notin

    def __str__(self) -> str:
        op = self.op
        if op == "exists":
            return self.key
        if op == "!":
            return "!" + self.key
        if op in ("=", "!="):
            return f"{self.key}{op}{self.values[0]}"
        return f"{self.key} {op} ({','.join(self.values)})"


@dataclass(frozen=True)
class LabelSelector:
    """An AND of requirements. No requirements = matches everything.

    ``match_nothing`` exists only for the ``metav1.LabelSelector`` null case (a nil
    selector selects nothing in Kubernetes, unlike an empty one); selectors parsed from
    text or built from a map never set it.
    """

    requirements: tuple[Requirement, ...] = ()
    match_nothing: bool = False

    def matches(self, labels: Mapping[str, str] | None) -> bool:
        if self.match_nothing:
            return False
        if labels is None:
            labels = {}
        return all(r.matches(labels) for r in self.requirements)

    @property
    def empty(self) -> bool:
        """True if the selector matches everything (no requirements)."""
        return not self.requirements and not self.match_nothing

    def __str__(self) -> str:
        return ",".join(str(r) for r in self.requirements)

    def __iter__(self) -> Iterator[Requirement]:
        return iter(self.requirements)

    def __bool__(self) -> bool:
        # Truthiness is deliberately "has requirements": `if selector:` reads naturally.
        return bool(self.requirements) or self.match_nothing


EVERYTHING = LabelSelector(())


def _sorted_reqs(reqs: list[Requirement]) -> tuple[Requirement, ...]:
    # Kubernetes sorts requirements by key; a stable sort keeps same-key terms in order.
    return tuple(sorted(reqs, key=lambda r: r.key))


# Lexer: Kubernetes treats these as single-character special symbols; "!=" and "==" are
# two-character operators; everything else up to whitespace/special is an identifier.
_SPECIAL = frozenset("=!(),<>")
_WHITESPACE = frozenset(" \t\r\n")
_EOS = ""  # token kind for end of string


def _lex(text: str) -> list[tuple[str, str, int]]:
    """Split into (kind, text, position) tokens; kind is 'id', an operator/symbol, or ''."""
    tokens: list[tuple[str, str, int]] = []
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if c in _WHITESPACE:
            i += 1
            continue
        if c in _SPECIAL:
            two = text[i:i + 2]
            if two in ("!=", "=="):
                tokens.append((two, two, i))
                i += 2
            else:
                tokens.append((c, c, i))
                i += 1
            continue
        j = i
        while j < n and text[j] not in _SPECIAL and text[j] not in _WHITESPACE:
            j += 1
        tokens.append(("id", text[i:j], i))
        i = j
    tokens.append((_EOS, "", n))
    return tokens


class _LabelParser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.tokens = _lex(text)
        self.i = 0

    def peek(self) -> tuple[str, str, int]:
        return self.tokens[self.i]

    def next(self) -> tuple[str, str, int]:
        tok = self.tokens[self.i]
        if tok[0] != _EOS:
            self.i += 1
        return tok

    def fail(self, tok: tuple[str, str, int], expected: str) -> SelectorError:
        found = tok[1] if tok[0] != _EOS else "end of string"
        return SelectorError(
            f"unable to parse requirement: found '{found}', expected: {expected} "
            f"(at position {tok[2]} of {self.text!r})"
        )

    def parse(self) -> LabelSelector:
        if self.peek()[0] == _EOS:
            return EVERYTHING
        reqs = [self.requirement()]
        while True:
            tok = self.next()
            if tok[0] == _EOS:
                break
            if tok[0] != ",":
                raise self.fail(tok, "',' or end of string")
            if self.peek()[0] == _EOS:
                raise self.fail(self.peek(), "identifier after ','")
            reqs.append(self.requirement())
        return LabelSelector(_sorted_reqs(reqs))

    def requirement(self) -> Requirement:
        tok = self.next()
        if tok[0] == "!":
            key_tok = self.next()
            if key_tok[0] != "id":
                raise self.fail(key_tok, "identifier after '!'")
            follow = self.peek()
            if follow[0] not in (",", _EOS):
                raise self.fail(follow, "',' or end of string after '!" + key_tok[1] + "'")
            return Requirement(key_tok[1], "!")
        if tok[0] != "id":
            raise self.fail(tok, "'!' or identifier")
        key = tok[1]
        op_tok = self.peek()
        kind, word = op_tok[0], op_tok[1]
        if kind in (",", _EOS):
            return Requirement(key, "exists")
        self.next()
        if kind in ("=", "==", "!="):
            return Requirement(key, "!=" if kind == "!=" else "=", (self.exact_value(),))
        if kind == "id" and word in ("in", "notin"):
            return Requirement(key, word, self.value_set())
        if kind in ("<", ">"):
            raise SelectorError(
                f"unable to parse requirement: operator '{kind}' is not supported "
                f"(at position {op_tok[2]} of {self.text!r})"
            )
        raise self.fail(op_tok, "'=', '==', '!=', 'in', 'notin', ',' or end of string")

    def exact_value(self) -> str:
        tok = self.peek()
        if tok[0] in (",", _EOS):  # "a=" selects an empty value, as in Kubernetes
            return ""
        if tok[0] != "id":
            raise self.fail(tok, "value")
        self.next()
        return tok[1]

    def value_set(self) -> tuple[str, ...]:
        tok = self.next()
        if tok[0] != "(":
            raise self.fail(tok, "'('")
        values: list[str] = []
        if self.peek()[0] == ")":
            # Kubernetes reads "()" as the set holding the empty value, which also keeps
            # str() round-tripping for `in ("")`.
            self.next()
            return ("",)
        while True:
            tok = self.peek()
            if tok[0] == "id":
                values.append(tok[1])
                self.next()
            elif tok[0] in (",", ")"):
                values.append("")  # "(a,,b)" / "(a,)" carry an empty value, as in Kubernetes
            else:
                raise self.fail(tok, "value, ',' or ')'")
            sep = self.next()
            if sep[0] == ")":
                return tuple(values)
            if sep[0] != ",":
                raise self.fail(sep, "',' or ')'")


def parse_label_selector(text: str | None) -> LabelSelector:
    """Parse the Kubernetes label selector syntax; None or blank gives the match-all selector.

    Raises SelectorError (a ValueError) with a user-facing message on any syntax error or
    invalid key/value.
    """
    if text is None:
        return EVERYTHING
    if not isinstance(text, str):
        raise SelectorError(f"label selector must be a string, not {type(text).__name__}")
    return _LabelParser(text).parse()


def selector_from_map(m: Mapping[str, str] | None) -> LabelSelector:
    """Equality selector from a plain map (a Service's ``spec.selector``, a ``nodeSelector``).

    An empty map gives the match-all selector. Note for callers: Kubernetes does not manage
    endpoints for a Service whose selector is empty/absent; decide that before calling.
    Keys and values are validated (SelectorError on bad ones).
    """
    if not m:
        return EVERYTHING
    return LabelSelector(_sorted_reqs([Requirement(k, "=", (v,)) for k, v in m.items()]))


_EXPR_OPS = {"In": "in", "NotIn": "notin", "Exists": "exists", "DoesNotExist": "!"}


def selector_from_label_selector_object(obj: Mapping[str, Any] | None) -> LabelSelector:
    """Convert a ``metav1.LabelSelector`` ({matchLabels, matchExpressions}).

    As in ``metav1.LabelSelectorAsSelector``: ``None`` selects nothing, ``{}`` selects
    everything. Structural problems (wrong types, unknown operator, values on Exists, no
    values on In) raise SelectorError.
    """
    if obj is None:
        return LabelSelector((), match_nothing=True)
    if not isinstance(obj, Mapping):
        raise SelectorError("label selector must be an object")
    reqs: list[Requirement] = []
    match_labels = obj.get("matchLabels") or {}
    if not isinstance(match_labels, Mapping):
        raise SelectorError("matchLabels must be an object of string values")
    for k, v in match_labels.items():
        if not isinstance(v, str):
            raise SelectorError(f"matchLabels[{k}]: Invalid value: {v!r}: must be a string")
        reqs.append(Requirement(k, "=", (v,)))
    exprs = obj.get("matchExpressions") or []
    if not isinstance(exprs, list):
        raise SelectorError("matchExpressions must be a list")
    for i, expr in enumerate(exprs):
        if not isinstance(expr, Mapping):
            raise SelectorError(f"matchExpressions[{i}] must be an object")
        operator = expr.get("operator")
        op = _EXPR_OPS.get(operator) if isinstance(operator, str) else None
        if op is None:
            raise SelectorError(
                f"matchExpressions[{i}].operator: Unsupported value: {_q(operator)}: supported "
                'values: "DoesNotExist", "Exists", "In", "NotIn"'
            )
        values = expr.get("values") or []
        if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
            raise SelectorError(f"matchExpressions[{i}].values must be a list of strings")
        key = expr.get("key")
        if not isinstance(key, str):
            raise SelectorError(f"matchExpressions[{i}].key: Required value")
        reqs.append(Requirement(key, op, tuple(values)))
    return LabelSelector(_sorted_reqs(reqs))


def matches_map(selector: Mapping[str, str], labels: Mapping[str, str] | None) -> bool:
    """Fast path for map selectors: every selector key present in ``labels`` with that value.

    No validation and no object construction, for hot loops (every Pod × every Service).
    An empty selector matches everything, like ``selector_from_map({})``.
    """
    if not selector:
        return True
    if not labels:
        return False
    return all(labels.get(k) == v for k, v in selector.items())


# --------------------------------------------------------------------------------------
# Field selectors
# --------------------------------------------------------------------------------------

ALWAYS_ALLOWED_FIELDS = frozenset({"metadata.name", "metadata.namespace"})


@dataclass(frozen=True)
class FieldRequirement:
    """``field op value`` with op ``=`` or ``!=`` (``==`` is stored as ``=``)."""

    field: str
    op: str
    value: str

    def __post_init__(self) -> None:
        op = _OP_ALIASES.get(self.op, self.op)
        if op not in ("=", "!="):
            raise SelectorError(f"invalid field selector operator {self.op!r}")
        object.__setattr__(self, "op", op)

    def matches(self, fields: Mapping[str, str]) -> bool:
        have = fields.get(self.field, "")
        return have == self.value if self.op == "=" else have != self.value

    def __str__(self) -> str:
        return f"{self.field}{self.op}{_escape_field_value(self.value)}"


@dataclass(frozen=True)
class FieldSelector:
    """An AND of field requirements; kept in the order written. Empty = matches everything."""

    requirements: tuple[FieldRequirement, ...] = ()

    def matches(self, fields: Mapping[str, str]) -> bool:
        """Match against pre-extracted fields (see ``object_fields``); missing counts as ""."""
        return all(r.matches(fields) for r in self.requirements)

    def matches_object(self, obj: Mapping[str, Any]) -> bool:
        """Convenience: extract exactly the fields this selector uses, then match."""
        if not self.requirements:
            return True
        return self.matches(object_fields(obj, self.fields))

    @property
    def fields(self) -> frozenset[str]:
        """The field paths this selector reads, to pass to ``object_fields``."""
        return frozenset(r.field for r in self.requirements)

    @property
    def empty(self) -> bool:
        return not self.requirements

    def required_value(self, field_name: str) -> str | None:
        """The value ``field_name`` must equal, if some ``=`` term pins it (else None).

        Lets the server turn ``metadata.name=x`` into a point lookup instead of a scan.
        """
        for r in self.requirements:
            if r.field == field_name and r.op == "=":
                return r.value
        return None

    def __str__(self) -> str:
        return ",".join(str(r) for r in self.requirements)

    def __bool__(self) -> bool:
        return bool(self.requirements)


def _escape_field_value(value: str) -> str:
    return value.replace("\\", "\\\\").replace(",", "\\,").replace("=", "\\=")


def _split_unescaped(text: str, sep: str) -> list[str]:
    """Split on ``sep`` not preceded by an escaping backslash; escapes are kept verbatim."""
    parts: list[str] = []
    start, i, n = 0, 0, len(text)
    while i < n:
        c = text[i]
        if c == "\\":
            i += 2
            continue
        if c == sep:
            parts.append(text[start:i])
            start = i + 1
        i += 1
    parts.append(text[start:])
    return parts


def _split_term(term: str) -> tuple[str, str, str] | None:
    """Find the first unescaped operator, trying ``!=`` then ``==`` then ``=`` at each spot."""
    i, n = 0, len(term)
    while i < n:
        if term[i] == "\\":
            i += 2
            continue
        for op in ("!=", "==", "="):
            if term.startswith(op, i):
                return term[:i], op, term[i + len(op):]
        i += 1
    return None


def _unescape_field_value(value: str, term: str) -> str:
    out: list[str] = []
    i, n = 0, len(value)
    while i < n:
        c = value[i]
        if c == "\\":
            if i + 1 >= n:
                raise SelectorError(
                    f"invalid field selector {term!r}: trailing backslash in value"
                )
            nxt = value[i + 1]
            if nxt not in "\\,=":
                raise SelectorError(
                    f"invalid field selector {term!r}: invalid escape sequence '\\{nxt}' "
                    "(only \\\\, \\, and \\= are allowed)"
                )
            out.append(nxt)
            i += 2
            continue
        if c in ",=":
            raise SelectorError(
                f"invalid field selector {term!r}: unescaped '{c}' in value (write '\\{c}')"
            )
        out.append(c)
        i += 1
    return "".join(out)


def parse_field_selector(text: str | None, allowed: Collection[str]) -> FieldSelector:
    """Parse ``field=value,field!=value`` for a kind whose selectable fields are ``allowed``.

    ``metadata.name`` and ``metadata.namespace`` are always allowed. Empty terms (``a=b,``)
    are skipped, as Kubernetes does; surrounding whitespace around fields and values is
    ignored. Raises SelectorError: ``field label not supported: X`` for unknown fields,
    ``invalid selector: ...`` for terms without an operator or with bad escapes.
    """
    if text is None:
        return FieldSelector(())
    if not isinstance(text, str):
        raise SelectorError(f"field selector must be a string, not {type(text).__name__}")
    reqs: list[FieldRequirement] = []
    for raw in _split_unescaped(text, ","):
        term = raw.strip()
        if not term:
            continue
        split = _split_term(term)
        if split is None:
            raise SelectorError(f"invalid selector: '{text}'; can't understand '{term}'")
        lhs, op, rhs = split
        name = lhs.strip()
        if name not in ALWAYS_ALLOWED_FIELDS and name not in allowed:
            raise SelectorError(f"field label not supported: {name}")
        reqs.append(FieldRequirement(name, op, _unescape_field_value(rhs.strip(), term)))
    return FieldSelector(tuple(reqs))


def _field_text(value: object) -> str:
    # Kubernetes' field label functions render bools as "true"/"false" (e.g.
    # spec.unschedulable) and numbers in decimal; absent or structured values are "".
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    return ""


def object_fields(obj: Mapping[str, Any], fields: Collection[str]) -> dict[str, str]:
    """Extract ``fields`` (dotted paths such as ``spec.nodeName``) as strings; missing → ""."""
    out: dict[str, str] = {}
    for path in fields:
        cur: Any = obj
        for part in path.split("."):
            if isinstance(cur, Mapping):
                cur = cur.get(part)
            else:
                cur = None
                break
        out[path] = _field_text(cur)
    return out
