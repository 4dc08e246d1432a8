"""RFC 6902 JSON Patch: the RFC's appendix A examples plus error classification."""

import copy

import pytest

from apiserver.patch import PatchError, json_patch

# (description, document, patch, expected result) — RFC 6902 appendix A.
RFC6902_OK = [
    ("A.1 add object member", {"foo": "bar"},
     [{"op": "add", "path": "/baz", "value": "qux"}],
     {"baz": "qux", "foo": "bar"}),
    ("A.2 add array element", {"foo": ["bar", "baz"]},
     [{"op": "add", "path": "/foo/1", "value": "qux"}],
     {"foo": ["bar", "qux", "baz"]}),
    ("A.3 remove object member", {"baz": "qux", "foo": "bar"},
     [{"op": "remove", "path": "/baz"}],
     {"foo": "bar"}),
    ("A.4 remove array element", {"foo": ["bar", "qux", "baz"]},
     [{"op": "remove", "path": "/foo/1"}],
     {"foo": ["bar", "baz"]}),
    ("A.5 replace value", {"baz": "qux", "foo": "bar"},
     [{"op": "replace", "path": "/baz", "value": "boo"}],
     {"baz": "boo", "foo": "bar"}),
    ("A.6 move value", {"foo": {"bar": "baz", "waldo": "fred"}, "qux": {"corge": "grault"}},
     [{"op": "move", "from": "/foo/waldo", "path": "/qux/thud"}],
     {"foo": {"bar": "baz"}, "qux": {"corge": "grault", "thud": "fred"}}),
    ("A.7 move array element", {"foo": ["all", "grass", "cows", "eat"]},
     [{"op": "move", "from": "/foo/1", "path": "/foo/3"}],
     {"foo": ["all", "cows", "eat", "grass"]}),
    ("A.8 test success", {"baz": "qux", "foo": ["a", 2, "c"]},
     [{"op": "test", "path": "/baz", "value": "qux"},
      {"op": "test", "path": "/foo/1", "value": 2}],
     {"baz": "qux", "foo": ["a", 2, "c"]}),
    ("A.10 add nested member object", {"foo": "bar"},
     [{"op": "add", "path": "/child", "value": {"grandchild": {}}}],
     {"foo": "bar", "child": {"grandchild": {}}}),
    ("A.11 ignore unrecognized elements", {"foo": "bar"},
     [{"op": "add", "path": "/baz", "value": "qux", "xyz": 123}],
     {"foo": "bar", "baz": "qux"}),
    ("A.14 ~ escape ordering", {"/": 9, "~1": 10},
     [{"op": "test", "path": "/~01", "value": 10}],
     {"/": 9, "~1": 10}),
    ("A.16 add array value", {"foo": ["bar"]},
     [{"op": "add", "path": "/foo/-", "value": ["abc", "def"]}],
     {"foo": ["bar", ["abc", "def"]]}),
]

RFC6902_FAIL = [
    ("A.9 test error", {"baz": "qux"},
     [{"op": "test", "path": "/baz", "value": "bar"}]),
    ("A.12 add to nonexistent target", {"foo": "bar"},
     [{"op": "add", "path": "/baz/bat", "value": "qux"}]),
    ("A.15 strings are not numbers", {"/": 9, "~1": 10},
     [{"op": "test", "path": "/~01", "value": "10"}]),
]


@pytest.mark.parametrize(("doc", "ops", "expected"), [c[1:] for c in RFC6902_OK],
                         ids=[c[0] for c in RFC6902_OK])
def test_rfc6902_appendix_a(doc, ops, expected):
    before = copy.deepcopy((doc, ops))
    assert json_patch(doc, ops) == expected
    assert (doc, ops) == before


@pytest.mark.parametrize(("doc", "ops"), [c[1:] for c in RFC6902_FAIL],
                         ids=[c[0] for c in RFC6902_FAIL])
def test_rfc6902_appendix_a_errors_are_unprocessable(doc, ops):
    with pytest.raises(PatchError) as err:
        json_patch(doc, ops)
    assert err.value.malformed is False


RFC6901_DOC = {"foo": ["bar", "baz"], "": 0, "a/b": 1, "c%d": 2, "e^f": 3, "g|h": 4,
               "i\\j": 5, 'k"l': 6, " ": 7, "m~n": 8}


@pytest.mark.parametrize(("pointer", "value"), [
    ("/foo", ["bar", "baz"]), ("/foo/0", "bar"), ("/", 0), ("/a~1b", 1), ("/c%d", 2),
    ("/e^f", 3), ("/g|h", 4), ("/i\\j", 5), ('/k"l', 6), ("/ ", 7), ("/m~0n", 8),
])
def test_rfc6901_pointers(pointer, value):
    json_patch(RFC6901_DOC, [{"op": "test", "path": pointer, "value": value}])


def test_test_op_compares_as_json():
    doc = {"n": 1, "b": True, "o": {"x": [1, {"y": None}]}}
    json_patch(doc, [{"op": "test", "path": "/n", "value": 1.0},
                     {"op": "test", "path": "/o", "value": {"x": [1.0, {"y": None}]}}])
    for path, value in [("/n", True), ("/b", 1), ("/o", {"x": [{"y": None}, 1]})]:
        with pytest.raises(PatchError):
            json_patch(doc, [{"op": "test", "path": path, "value": value}])


def test_kubernetes_style_label_patch_with_escapes():
    doc = {"metadata": {"labels": {"app": "web"}}}
    ops = [{"op": "add", "path": "/metadata/labels/example.com~1tier", "value": "fe"},
           {"op": "remove", "path": "/metadata/labels/app"}]
    assert json_patch(doc, ops) == {"metadata": {"labels": {"example.com/tier": "fe"}}}


def test_operations_apply_in_sequence():
    doc = {"spec": {"ports": [{"port": 80}]}}
    ops = [{"op": "copy", "from": "/spec/ports/0", "path": "/spec/ports/-"},
           {"op": "replace", "path": "/spec/ports/1/port", "value": 81},
           {"op": "move", "from": "/spec/ports/0", "path": "/spec/ports/1"},
           {"op": "test", "path": "/spec/ports", "value": [{"port": 81}, {"port": 80}]}]
    assert json_patch(doc, ops) == {"spec": {"ports": [{"port": 81}, {"port": 80}]}}


def test_result_does_not_alias_inputs():
    value = {"deep": [1]}
    doc = {"keep": {"x": [1]}}
    out = json_patch(doc, [{"op": "add", "path": "/v", "value": value}])
    out["v"]["deep"].append(2)
    out["keep"]["x"].append(2)
    assert value == {"deep": [1]} and doc == {"keep": {"x": [1]}}


def test_failed_patch_leaves_input_untouched():
    doc = {"a": 1}
    with pytest.raises(PatchError):
        json_patch(doc, [{"op": "add", "path": "/b", "value": 2},
                         {"op": "test", "path": "/a", "value": 2}])
    assert doc == {"a": 1}


def test_root_replace_must_stay_an_object():
    assert json_patch({"a": 1}, [{"op": "replace", "path": "", "value": {"b": 2}}]) == {"b": 2}
    with pytest.raises(PatchError) as err:
        json_patch({"a": 1}, [{"op": "replace", "path": "", "value": [1]}])
    assert not err.value.malformed


@pytest.mark.parametrize("ops", [
    [{"op": "remove", "path": "/missing"}],
    [{"op": "replace", "path": "/missing", "value": 1}],
    [{"op": "remove", "path": "/list/5"}],
    [{"op": "add", "path": "/list/5", "value": 1}],
    [{"op": "add", "path": "/list/01", "value": 1}],
    [{"op": "remove", "path": "/list/-"}],
    [{"op": "add", "path": "/list/x", "value": 1}],
    [{"op": "add", "path": "/scalar/x", "value": 1}],
    [{"op": "move", "from": "/obj", "path": "/obj/child"}],
    [{"op": "copy", "from": "/nope", "path": "/x"}],
    [{"op": "remove", "path": ""}],
])
def test_inapplicable_operations(ops):
    doc = {"list": [1, 2], "scalar": 3, "obj": {"k": 1}}
    with pytest.raises(PatchError) as err:
        json_patch(doc, ops)
    assert err.value.malformed is False


@pytest.mark.parametrize("ops", [
    {"op": "add", "path": "/a", "value": 1},
    "not a list",
    [1],
    [{"op": "frobnicate", "path": "/a"}],
    [{"path": "/a", "value": 1}],
    [{"op": "add", "value": 1}],
    [{"op": "add", "path": "/a"}],
    [{"op": "move", "path": "/a"}],
    [{"op": "add", "path": "a", "value": 1}],
    [{"op": "add", "path": 5, "value": 1}],
    [{"op": "add", "path": "/a~2", "value": 1}],
    # A malformed op is reported as malformed even after an op that cannot apply.
    [{"op": "remove", "path": "/missing"}, {"op": "nope"}],
])
def test_malformed_patches(ops):
    with pytest.raises(PatchError) as err:
        json_patch({"a": 0}, ops)
    assert err.value.malformed is True


def test_add_null_and_replace_with_null():
    assert json_patch({"a": 1}, [{"op": "add", "path": "/b", "value": None},
                                 {"op": "replace", "path": "/a", "value": None}]) == \
        {"a": None, "b": None}


def test_move_to_same_place_is_a_noop():
    assert json_patch({"a": [1]}, [{"op": "move", "from": "/a", "path": "/a"}]) == {"a": [1]}
