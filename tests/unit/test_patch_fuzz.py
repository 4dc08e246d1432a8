"""Property tests: garbage in gives a result or PatchError, never another exception;
inputs are never mutated; strategic patches never leak directive keys."""

import contextlib
import copy

import jsonpatch
import jsonpointer
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from apiserver.patch import (
    PatchError,
    json_patch,
    merge_patch,
    merge_patch_value,
    strategic_merge_patch,
)
from tests.unit.kindhooks import patch_schema

FIELD_NAMES = ["metadata", "spec", "status", "finalizers", "ownerReferences", "uid", "labels",
               "ports", "port", "containers", "initContainers", "name", "env", "volumes",
               "conditions", "type", "addresses", "podCIDRs", "taints", "endpoints", "a", "b"]
DIRECTIVE_NAMES = ["$patch", "$retainKeys", "$setElementOrder/ports",
                   "$setElementOrder/containers", "$setElementOrder/finalizers",
                   "$setElementOrder/conditions", "$deleteFromPrimitiveList/finalizers",
                   "$deleteFromPrimitiveList/podCIDRs", "$setElementOrder", "$other"]
KINDS = ["Service", "Pod", "Node", "Namespace", "EndpointSlice", "Event", "Other"]

scalars = (st.none() | st.booleans() | st.integers(-3, 3) | st.sampled_from(FIELD_NAMES)
           | st.sampled_from(["delete", "replace", "merge"])
           | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=3))
plain_keys = st.sampled_from(FIELD_NAMES) | st.text(max_size=3).filter(
    lambda k: not k.startswith("$"))


def json_values(keys):
    return st.recursive(scalars, lambda inner: st.lists(inner, max_size=4)
                        | st.dictionaries(keys, inner, max_size=5), max_leaves=25)


documents = st.dictionaries(plain_keys, json_values(plain_keys), max_size=5)
patch_keys = plain_keys | st.sampled_from(DIRECTIVE_NAMES)
patches = st.dictionaries(patch_keys, json_values(patch_keys), max_size=5)

pointers = st.sampled_from(["", "/", "/a", "/a/0", "/a/-", "/a/b", "/b", "/0", "/-",
                            "/a/01", "/~0", "/~1", "/~2", "a", "/spec/ports/0/port"])
operation = st.fixed_dictionaries(
    {"op": st.sampled_from(["add", "remove", "replace", "move", "copy", "test", "bad"])},
    optional={"path": pointers | scalars, "from": pointers, "value": json_values(plain_keys)})
json_patches = st.lists(operation | json_values(plain_keys), max_size=5) | json_values(plain_keys)

FUZZ = settings(max_examples=200, deadline=None,
                suppress_health_check=[HealthCheck.too_slow])


# Pod-shaped documents and patches, to reach merge-keyed lists, sets and ordering.
names = st.sampled_from(["a", "b", "c", "d"])
directive = st.sampled_from(["delete", "replace", "merge", None, 1])
env_var = st.fixed_dictionaries({"name": names}, optional={"value": scalars, "$patch": directive})
container = st.fixed_dictionaries({"name": names}, optional={
    "image": scalars, "env": st.lists(env_var, max_size=3), "$patch": directive,
    "$setElementOrder/env": st.lists(st.fixed_dictionaries({"name": names}), max_size=3),
    "$retainKeys": st.lists(st.sampled_from(["name", "image", "env"]), max_size=3)})
name_sets = st.lists(names, max_size=4)
pod_metadata = st.fixed_dictionaries({}, optional={
    "finalizers": name_sets, "$setElementOrder/finalizers": name_sets,
    "$deleteFromPrimitiveList/finalizers": name_sets,
    "labels": st.dictionaries(names, st.none() | names, max_size=3)})
pod_spec = st.fixed_dictionaries({}, optional={
    "containers": st.lists(container | st.fixed_dictionaries({"$patch": directive}),
                           max_size=4),
    "$setElementOrder/containers": st.lists(st.fixed_dictionaries({"name": names}),
                                            max_size=4),
    "tolerations": st.lists(st.fixed_dictionaries({"key": names}), max_size=2)})
pods = st.fixed_dictionaries({}, optional={"metadata": pod_metadata, "spec": pod_spec})
live_pods = st.fixed_dictionaries({}, optional={
    "metadata": st.fixed_dictionaries({}, optional={"finalizers": name_sets}),
    "spec": st.fixed_dictionaries({}, optional={"containers": st.lists(
        st.fixed_dictionaries({"name": names}, optional={
            "image": scalars, "env": st.lists(st.fixed_dictionaries({"name": names}),
                                              max_size=3)}), max_size=4)})})


def directive_keys(value):
    if isinstance(value, dict):
        own = [k for k in value if k == "$patch" or k == "$retainKeys"
               or k.startswith(("$setElementOrder/", "$deleteFromPrimitiveList/"))]
        return own + [k for v in value.values() for k in directive_keys(v)]
    if isinstance(value, list):
        return [k for v in value for k in directive_keys(v)]
    return []


@FUZZ
@given(st.sampled_from(KINDS), documents, patches)
def test_strategic_merge_patch_garbage(kind, doc, patch):
    before = copy.deepcopy((doc, patch))
    try:
        out = strategic_merge_patch(patch_schema(kind), doc, patch)
    except PatchError as err:
        assert str(err)
        return
    finally:
        assert (doc, patch) == before
    assert isinstance(out, dict)
    assert directive_keys(out) == []


@FUZZ
@given(live_pods, pods)
def test_strategic_merge_patch_pod_shaped(doc, patch):
    before = copy.deepcopy((doc, patch))
    try:
        out = strategic_merge_patch(patch_schema("Pod"), doc, patch)
    except PatchError:
        return
    finally:
        assert (doc, patch) == before
    assert directive_keys(out) == []
    for c in out.get("spec", {}).get("containers", []):
        assert isinstance(c, dict) and "name" in c


@FUZZ
@given(st.sampled_from(KINDS), json_values(patch_keys), json_values(patch_keys))
def test_strategic_merge_patch_any_json(kind, doc, patch):
    with contextlib.suppress(PatchError):
        assert isinstance(strategic_merge_patch(patch_schema(kind), doc, patch), dict)


@FUZZ
@given(documents, st.dictionaries(plain_keys.filter(lambda k: k != "metadata"),
                                  json_values(plain_keys), max_size=5))
def test_strategic_equals_merge_patch_without_special_fields(doc, patch):
    """For a kind with no list strategies (bar metadata) SMP degenerates to RFC 7386."""
    assert strategic_merge_patch(patch_schema("Event"), doc, patch) == merge_patch(doc, patch)


@FUZZ
@given(json_values(plain_keys), json_values(plain_keys))
def test_merge_patch_is_idempotent_and_pure(target, patch):
    before = copy.deepcopy((target, patch))
    once = merge_patch_value(target, patch)
    assert (target, patch) == before
    assert merge_patch_value(once, patch) == once


@FUZZ
@given(json_values(plain_keys), json_values(plain_keys))
def test_merge_patch_garbage(doc, patch):
    with contextlib.suppress(PatchError):
        assert isinstance(merge_patch(doc, patch), dict)


@FUZZ
@given(json_values(plain_keys), json_patches)
def test_json_patch_garbage(doc, ops):
    before = copy.deepcopy((doc, ops))
    try:
        assert isinstance(json_patch(doc, ops), dict)
    except PatchError as err:
        assert str(err)
    assert (doc, ops) == before


def test_deeply_nested_input_is_a_patch_error():
    deep: dict = {}
    node = deep
    for _ in range(5000):
        node["a"] = {}
        node = node["a"]
    for call in (lambda: strategic_merge_patch(patch_schema("Pod"), {}, deep),
                 lambda: merge_patch({}, deep),
                 lambda: json_patch({}, [{"op": "add", "path": "/x", "value": deep}])):
        try:
            call()
        except PatchError as err:
            assert err.malformed


# The maintained ``jsonpatch`` library as an oracle (``apiserver/patch/jsonpatch.py``
# says why it is not used in the server itself): wherever ours applies a patch, the
# library gets the same document, and wherever ours refuses a well-formed patch, the
# library refuses it too (or makes the non-object the API must refuse).
rfc_patches = st.lists(st.fixed_dictionaries(
    {"op": st.sampled_from(["add", "remove", "replace", "move", "copy", "test"]),
     "path": pointers, "from": pointers, "value": json_values(plain_keys)}), max_size=5)


@FUZZ
@given(documents, rfc_patches)
def test_json_patch_agrees_with_the_jsonpatch_library(doc, ops):
    try:
        ours = json_patch(doc, ops)
    except PatchError as err:
        ours = err
    try:
        theirs = jsonpatch.apply_patch(doc, ops)
    except (jsonpatch.JsonPatchException, jsonpointer.JsonPointerException) as err:
        theirs = err
    if isinstance(ours, dict):
        assert theirs == ours
    elif not ours.malformed:
        assert isinstance(theirs, Exception) or not isinstance(theirs, dict)
