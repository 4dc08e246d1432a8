"""Label and field selectors: Kubernetes syntax, validation, matching and canonical form."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from apimachinery.labels import (
    EVERYTHING,
    FieldRequirement,
    FieldSelector,
    LabelSelector,
    Requirement,
    SelectorError,
    check_label_key,
    check_label_value,
    matches_map,
    object_fields,
    parse_field_selector,
    parse_label_selector,
    selector_from_label_selector_object,
    selector_from_map,
)

# ---------------------------------------------------------------------------- parsing


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", ()),
        ("   ", ()),
        ("a=b", (Requirement("a", "=", ("b",)),)),
        ("a==b", (Requirement("a", "=", ("b",)),)),
        ("a!=b", (Requirement("a", "!=", ("b",)),)),
        ("a = b", (Requirement("a", "=", ("b",)),)),
        (" a != b ", (Requirement("a", "!=", ("b",)),)),
        ("a=", (Requirement("a", "=", ("",)),)),
        ("a", (Requirement("a", "exists"),)),
        ("!a", (Requirement("a", "!"),)),
        ("! a", (Requirement("a", "!"),)),
        ("a in (x,y)", (Requirement("a", "in", ("x", "y")),)),
        ("a in(y, x)", (Requirement("a", "in", ("x", "y")),)),
        ("a in (x,x)", (Requirement("a", "in", ("x",)),)),
        ("a in (x,)", (Requirement("a", "in", ("", "x")),)),
        ("a in ()", (Requirement("a", "in", ("",)),)),  # as Kubernetes: the empty value
        ("a notin ( )", (Requirement("a", "notin", ("",)),)),
        ("a notin (x)", (Requirement("a", "notin", ("x",)),)),
        ("a\tnotin\n( x , y )", (Requirement("a", "notin", ("x", "y")),)),
        (
            "tier=web,app.kubernetes.io/name in (db,web),!canary,env",
            (
                Requirement("app.kubernetes.io/name", "in", ("db", "web")),
                Requirement("canary", "!"),
                Requirement("env", "exists"),
                Requirement("tier", "=", ("web",)),
            ),
        ),
        ("example.com/My_Name-1.x=V.a_l-1", (Requirement("example.com/My_Name-1.x", "=", ("V.a_l-1",)),)),
        ("in=x", (Requirement("in", "=", ("x",)),)),  # keywords only matter in operator position
        ("a=in", (Requirement("a", "=", ("in",)),)),
        ("k=" + "v" * 63, (Requirement("k", "=", ("v" * 63,)),)),
        ("b=1,a=2,b!=3", (Requirement("a", "=", ("2",)), Requirement("b", "=", ("1",)),
                          Requirement("b", "!=", ("3",)))),
    ],
)
def test_parse_valid(text: str, expected: tuple[Requirement, ...]) -> None:
    assert parse_label_selector(text).requirements == expected


def test_parse_none_is_everything() -> None:
    assert parse_label_selector(None) == EVERYTHING
    assert parse_label_selector(None).empty
    assert parse_label_selector("").empty
    assert not parse_label_selector("a").empty


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("a b", "found 'b', expected: '=', '==', '!=', 'in', 'notin', ',' or end of string"),
        ("a=b c", "found 'c', expected: ',' or end of string"),
        ("a=b,", "identifier after ','"),
        (",a=b", "found ','"),
        ("a=b,,c=d", "found ','"),
        ("a in (x", "found 'end of string'"),
        ("a in x", "expected: '('"),
        ("a in (x y)", "expected: ',' or ')'"),
        ("a in (x))", "found ')'"),
        ("a=b=c", "found '='"),
        ("a===b", "found '='"),
        ("!", "identifier after '!'"),
        ("!a=b", "found '='"),
        ("!!a", "identifier after '!'"),
        ("=b", "found '='"),
        ("a!b", "found '!'"),
        ("a>1", "operator '>' is not supported"),
        ("a<1", "operator '<' is not supported"),
        ("a=(b)", "found '('"),
        ("a foo (b)", "found 'foo'"),
        ("a$=b", "key: Invalid value"),
        ("-a=b", "name part must consist of alphanumeric"),
        ("a-=b", "name part must consist of alphanumeric"),
        ("k" * 64 + "=b", "no more than 63 characters"),
        ("Example.com/a=b", "prefix part"),
        ("/a=b", "prefix part must be non-empty"),
        ("a/=b", "name part must be non-empty"),
        ("a/b/c=d", "qualified name"),
        ("x" * 254 + "/a=b", "no more than 253"),
        ("a=b$", "values: Invalid value"),
        ("a=-b", "values: Invalid value"),
        ("a=" + "v" * 64, "no more than 63 characters"),
        ("a in (x,y$)", "values: Invalid value"),
    ],
)
def test_parse_invalid(text: str, fragment: str) -> None:
    with pytest.raises(SelectorError) as info:
        parse_label_selector(text)
    assert fragment in str(info.value)
    assert str(info.value).startswith("unable to parse requirement")


def test_selector_error_is_value_error() -> None:
    assert issubclass(SelectorError, ValueError)


@pytest.mark.parametrize(
    ("key", "ok"),
    [
        ("a", True),
        ("A.b_c-d", True),
        ("1", True),
        ("kubernetes.io/service-name", True),
        ("a.b-c.d/X", True),
        ("", False),
        ("a b", False),
        ("_a", False),
        ("a_", False),
        ("UPPER.com/a", False),
        ("-x.com/a", False),
    ],
)
def test_check_label_key(key: str, ok: bool) -> None:
    assert (check_label_key(key) is None) is ok


@pytest.mark.parametrize(
    ("value", "ok"),
    [("", True), ("a", True), ("a.B-c_1", True), ("a/b", False), ("a ", False),
     ("v" * 63, True), ("v" * 64, False), (".a", False)],
)
def test_check_label_value(value: str, ok: bool) -> None:
    assert (check_label_value(value) is None) is ok


# ---------------------------------------------------------------------------- matching

LABELS = {"app": "web", "tier": "frontend", "empty": ""}


@pytest.mark.parametrize(
    ("text", "labels", "matches"),
    [
        ("", {}, True),
        ("", LABELS, True),
        ("app=web", LABELS, True),
        ("app==web", LABELS, True),
        ("app=db", LABELS, False),
        ("missing=x", LABELS, False),
        ("app!=db", LABELS, True),
        ("app!=web", LABELS, False),
        ("missing!=x", LABELS, True),  # != matches when the key is absent
        ("app in (db,web)", LABELS, True),
        ("app in (db)", LABELS, False),
        ("missing in (x)", LABELS, False),  # in requires presence
        ("app notin (db)", LABELS, True),
        ("app notin (db,web)", LABELS, False),
        ("missing notin (x)", LABELS, True),  # notin matches when the key is absent
        ("app", LABELS, True),
        ("missing", LABELS, False),
        ("!app", LABELS, False),
        ("!missing", LABELS, True),
        ("empty", LABELS, True),
        ("empty=", LABELS, True),
        ("missing=", LABELS, False),
        ("empty in (,x)", LABELS, True),
        ("app=web,tier=frontend", LABELS, True),
        ("app=web,tier=backend", LABELS, False),
        ("app=web,!canary,tier notin (backend)", LABELS, True),
        ("app", {}, False),
        ("!app", {}, True),
    ],
)
def test_matches(text: str, labels: dict[str, str], matches: bool) -> None:
    assert parse_label_selector(text).matches(labels) is matches


def test_matches_none_labels() -> None:
    assert parse_label_selector("").matches(None)
    assert parse_label_selector("!a").matches(None)
    assert parse_label_selector("a!=b").matches(None)
    assert not parse_label_selector("a").matches(None)


# ---------------------------------------------------------------------------- canonical form


@pytest.mark.parametrize(
    ("text", "canonical"),
    [
        ("", ""),
        ("a==b", "a=b"),
        (" a = b ", "a=b"),
        ("a!=b", "a!=b"),
        ("a=", "a="),
        ("a in ( y , x , y )", "a in (x,y)"),
        ("a notin (x)", "a notin (x)"),
        ("!a", "!a"),
        ("a", "a"),
        ("z=1,!b,a in (q)", "a in (q),!b,z=1"),
        ("a in (,x)", "a in (,x)"),
    ],
)
def test_str_canonical_round_trip(text: str, canonical: str) -> None:
    sel = parse_label_selector(text)
    assert str(sel) == canonical
    assert parse_label_selector(str(sel)) == sel


_name = st.from_regex(r"[A-Za-z0-9]([-A-Za-z0-9_.]{0,10}[A-Za-z0-9])?", fullmatch=True)
_key = st.one_of(_name, st.builds(lambda p, n: f"{p}/{n}",
                                  st.from_regex(r"[a-z0-9]([-a-z0-9]{0,5}[a-z0-9])?(\.[a-z]{1,4})?",
                                                fullmatch=True), _name))
_value = st.one_of(st.just(""), _name)
_req = st.one_of(
    st.builds(lambda k, v: Requirement(k, "=", (v,)), _key, _value),
    st.builds(lambda k, v: Requirement(k, "!=", (v,)), _key, _value),
    st.builds(lambda k, vs: Requirement(k, "in", tuple(vs)), _key, st.lists(_value, min_size=1, max_size=3)),
    st.builds(lambda k, vs: Requirement(k, "notin", tuple(vs)), _key, st.lists(_value, min_size=1, max_size=3)),
    st.builds(lambda k: Requirement(k, "exists"), _key),
    st.builds(lambda k: Requirement(k, "!"), _key),
)


@given(st.lists(_req, max_size=5))
def test_round_trip_property(reqs: list[Requirement]) -> None:
    sel = LabelSelector(tuple(sorted(reqs, key=lambda r: r.key)))
    assert parse_label_selector(str(sel)) == sel


# ---------------------------------------------------------------------------- constructors


def test_requirement_validates_and_normalizes() -> None:
    assert Requirement("a", "==", ("b",)).op == "="
    assert Requirement("a", "in", ["y", "x", "y"]).values == ("x", "y")
    assert Requirement("a", "=", "b").values == ("b",)
    with pytest.raises(SelectorError):
        Requirement("a", "=", ("b", "c"))
    with pytest.raises(SelectorError):
        Requirement("a", "exists", ("b",))
    with pytest.raises(SelectorError):
        Requirement("a", "gt", ("1",))
    with pytest.raises(SelectorError):
        Requirement("bad key", "exists")


def test_selector_from_map() -> None:
    sel = selector_from_map({"tier": "web", "app": "x"})
    assert str(sel) == "app=x,tier=web"
    assert sel.matches({"app": "x", "tier": "web", "other": "1"})
    assert not sel.matches({"app": "x"})
    assert selector_from_map({}).empty
    assert selector_from_map(None).matches({"a": "b"})
    with pytest.raises(SelectorError):
        selector_from_map({"a": "b c"})


@pytest.mark.parametrize(
    ("obj", "canonical"),
    [
        ({}, ""),
        ({"matchLabels": {"b": "1", "a": "2"}}, "a=2,b=1"),
        ({"matchExpressions": [{"key": "a", "operator": "In", "values": ["y", "x"]}]},
         "a in (x,y)"),
        ({"matchExpressions": [{"key": "a", "operator": "NotIn", "values": ["x"]}]},
         "a notin (x)"),
        ({"matchExpressions": [{"key": "a", "operator": "Exists"}]}, "a"),
        ({"matchExpressions": [{"key": "a", "operator": "DoesNotExist", "values": []}]}, "!a"),
        ({"matchLabels": {"z": "1"},
          "matchExpressions": [{"key": "a", "operator": "Exists"}]}, "a,z=1"),
        ({"matchLabels": None, "matchExpressions": None}, ""),
    ],
)
def test_selector_from_label_selector_object(obj: dict, canonical: str) -> None:
    sel = selector_from_label_selector_object(obj)
    assert str(sel) == canonical
    assert sel == parse_label_selector(canonical)


@pytest.mark.parametrize(
    "obj",
    [
        {"matchExpressions": [{"key": "a", "operator": "Equals", "values": ["x"]}]},
        {"matchExpressions": [{"key": "a", "operator": "In", "values": []}]},
        {"matchExpressions": [{"key": "a", "operator": "In"}]},
        {"matchExpressions": [{"key": "a", "operator": "Exists", "values": ["x"]}]},
        {"matchExpressions": [{"operator": "Exists"}]},
        {"matchExpressions": [{"key": "a", "operator": "In", "values": "x"}]},
        {"matchExpressions": {"key": "a"}},
        {"matchLabels": {"a": 1}},
        {"matchLabels": ["a"]},
        {"matchLabels": {"a b": "c"}},
        "a=b",
    ],
)
def test_selector_from_label_selector_object_invalid(obj: object) -> None:
    with pytest.raises(SelectorError):
        selector_from_label_selector_object(obj)  # type: ignore[arg-type]


def test_nil_label_selector_object_matches_nothing() -> None:
    sel = selector_from_label_selector_object(None)
    assert not sel.matches({})
    assert not sel.matches({"a": "b"})
    assert not sel.empty


@pytest.mark.parametrize(
    ("selector", "labels", "matches"),
    [
        ({}, None, True),
        ({}, {"a": "b"}, True),
        ({"a": "b"}, None, False),
        ({"a": "b"}, {"a": "b", "c": "d"}, True),
        ({"a": "b", "c": "d"}, {"a": "b"}, False),
        ({"a": ""}, {}, False),
        ({"a": ""}, {"a": ""}, True),
    ],
)
def test_matches_map_agrees_with_selector(selector, labels, matches) -> None:
    assert matches_map(selector, labels) is matches
    assert selector_from_map(selector).matches(labels) is matches


# ---------------------------------------------------------------------------- field selectors

POD_FIELDS = {"spec.nodeName", "status.phase"}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (None, ()),
        ("", ()),
        ("metadata.name=web", (FieldRequirement("metadata.name", "=", "web"),)),
        ("metadata.name==web", (FieldRequirement("metadata.name", "=", "web"),)),
        ("spec.nodeName!=n1", (FieldRequirement("spec.nodeName", "!=", "n1"),)),
        ("spec.nodeName=", (FieldRequirement("spec.nodeName", "=", ""),)),
        ("metadata.name=web,spec.nodeName!=n1",
         (FieldRequirement("metadata.name", "=", "web"),
          FieldRequirement("spec.nodeName", "!=", "n1"))),
        (" status.phase = Running ", (FieldRequirement("status.phase", "=", "Running"),)),
        ("metadata.name=web,", (FieldRequirement("metadata.name", "=", "web"),)),
        ("metadata.name=a\\,b", (FieldRequirement("metadata.name", "=", "a,b"),)),
        ("metadata.name=a\\=b", (FieldRequirement("metadata.name", "=", "a=b"),)),
        ("metadata.name=a\\\\b", (FieldRequirement("metadata.name", "=", "a\\b"),)),
        ("metadata.name=a\\,b,status.phase!=x\\=y",
         (FieldRequirement("metadata.name", "=", "a,b"),
          FieldRequirement("status.phase", "!=", "x=y"))),
        ("metadata.namespace=default", (FieldRequirement("metadata.namespace", "=", "default"),)),
    ],
)
def test_parse_field_selector(text, expected) -> None:
    sel = parse_field_selector(text, POD_FIELDS)
    assert sel.requirements == expected
    assert parse_field_selector(str(sel), POD_FIELDS) == sel


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("spec.foo=x", "field label not supported: spec.foo"),
        ("=x", "field label not supported: "),
        ("metadata.name", "can't understand 'metadata.name'"),
        ("metadata.name=web,bogus", "can't understand 'bogus'"),
        ("metadata.name=a=b", "unescaped '='"),
        ("metadata.name=a\\xb", "invalid escape sequence"),
        ("metadata.name=a\\", "trailing backslash"),
    ],
)
def test_parse_field_selector_invalid(text: str, fragment: str) -> None:
    with pytest.raises(SelectorError) as info:
        parse_field_selector(text, POD_FIELDS)
    assert fragment in str(info.value)


def test_field_selector_str_escapes() -> None:
    sel = FieldSelector((FieldRequirement("metadata.name", "==", "a,b=c\\d"),))
    assert str(sel) == "metadata.name=a\\,b\\=c\\\\d"
    assert parse_field_selector(str(sel), ()) == sel


POD = {
    "metadata": {"name": "web-1", "namespace": "default"},
    "spec": {"nodeName": "n1", "unschedulable": True, "replicas": 3},
    "status": {"phase": "Running"},
}


def test_object_fields() -> None:
    got = object_fields(POD, ["metadata.name", "metadata.namespace", "spec.nodeName",
                              "status.phase", "involvedObject.kind", "spec.unschedulable",
                              "spec.replicas", "spec", "metadata.name.x"])
    assert got == {
        "metadata.name": "web-1",
        "metadata.namespace": "default",
        "spec.nodeName": "n1",
        "status.phase": "Running",
        "involvedObject.kind": "",
        "spec.unschedulable": "true",
        "spec.replicas": "3",
        "spec": "",
        "metadata.name.x": "",
    }


@pytest.mark.parametrize(
    ("text", "matches"),
    [
        ("", True),
        ("metadata.name=web-1", True),
        ("metadata.name=web-2", False),
        ("spec.nodeName!=n2", True),
        ("spec.nodeName!=n1", False),
        ("spec.nodeName=n1,status.phase=Running", True),
        ("spec.nodeName=n1,status.phase=Pending", False),
        ("involvedObject.kind=", True),  # missing field reads as ""
        ("involvedObject.kind!=Pod", True),
    ],
)
def test_field_selector_matches(text: str, matches: bool) -> None:
    sel = parse_field_selector(text, POD_FIELDS | {"involvedObject.kind"})
    assert sel.matches_object(POD) is matches
    assert sel.matches(object_fields(POD, sel.fields)) is matches


def test_field_selector_required_value() -> None:
    sel = parse_field_selector("metadata.name!=x,metadata.name=web", ())
    assert sel.required_value("metadata.name") == "web"
    assert sel.required_value("metadata.namespace") is None
    assert sel.fields == {"metadata.name"}
    assert FieldSelector().empty and not FieldSelector()
