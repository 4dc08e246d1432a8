"""RFC 7386 JSON Merge Patch: the RFC's appendix A table and the object-only API."""

import copy

import pytest

from apiserver.patch import PatchError, merge_patch, merge_patch_value

# RFC 7386 appendix A, every row.
RFC7386 = [
    ({"a": "b"}, {"a": "c"}, {"a": "c"}),
    ({"a": "b"}, {"b": "c"}, {"a": "b", "b": "c"}),
    ({"a": "b"}, {"a": None}, {}),
    ({"a": "b", "b": "c"}, {"a": None}, {"b": "c"}),
    ({"a": ["b"]}, {"a": "c"}, {"a": "c"}),
    ({"a": "c"}, {"a": ["b"]}, {"a": ["b"]}),
    ({"a": {"b": "c"}}, {"a": {"b": "d", "c": None}}, {"a": {"b": "d"}}),
    ({"a": [{"b": "c"}]}, {"a": [1]}, {"a": [1]}),
    (["a", "b"], ["c", "d"], ["c", "d"]),
    ({"a": "b"}, ["c"], ["c"]),
    ({"a": "foo"}, None, None),
    ({"a": "foo"}, "bar", "bar"),
    ({"e": None}, {"a": 1}, {"e": None, "a": 1}),
    ([1, 2], {"a": "b", "c": None}, {"a": "b"}),
    ({}, {"a": {"bb": {"ccc": None}}}, {"a": {"bb": {}}}),
]


@pytest.mark.parametrize(("target", "patch", "expected"), RFC7386)
def test_rfc7386_appendix_a(target, patch, expected):
    before = copy.deepcopy((target, patch))
    assert merge_patch_value(target, patch) == expected
    assert (target, patch) == before


@pytest.mark.parametrize(("target", "patch", "expected"),
                         [r for r in RFC7386 if isinstance(r[0], dict) and isinstance(r[1], dict)])
def test_merge_patch_objects(target, patch, expected):
    assert merge_patch(target, patch) == expected


def test_lists_are_replaced_whole_and_keep_nulls():
    doc = {"spec": {"ports": [{"port": 80}, {"port": 81}]}}
    out = merge_patch(doc, {"spec": {"ports": [{"port": 82, "name": None}]}})
    assert out == {"spec": {"ports": [{"port": 82, "name": None}]}}


def test_labels_and_annotations():
    doc = {"metadata": {"name": "web", "labels": {"a": "1", "b": "2"}}}
    patch = {"metadata": {"labels": {"a": None, "c": "3"}, "annotations": {"k": "v"}}}
    assert merge_patch(doc, patch) == {"metadata": {
        "name": "web", "labels": {"b": "2", "c": "3"}, "annotations": {"k": "v"}}}


def test_directive_keys_have_no_meaning_in_merge_patch():
    assert merge_patch({"a": {"b": 1}}, {"a": {"$patch": "delete"}}) == \
        {"a": {"b": 1, "$patch": "delete"}}


def test_result_does_not_alias_inputs():
    doc = {"keep": {"x": [1]}}
    patch = {"new": {"y": [2]}}
    out = merge_patch(doc, patch)
    out["keep"]["x"].append(9)
    out["new"]["y"].append(9)
    assert doc == {"keep": {"x": [1]}} and patch == {"new": {"y": [2]}}


@pytest.mark.parametrize("patch", [["c"], None, "bar", 3])
def test_non_object_patch_is_malformed(patch):
    with pytest.raises(PatchError) as err:
        merge_patch({"a": 1}, patch)
    assert err.value.malformed is True


def test_non_object_document_is_rejected():
    with pytest.raises(PatchError):
        merge_patch([1], {"a": 1})
