"""Strategic merge patch: kubectl's real patches, every directive, and the ordering
vectors of apimachinery's strategicpatch tests mapped onto our kinds."""

import copy
import json

import pytest

from apiserver.patch import PatchError, strategic_merge_patch
from tests.unit.kindhooks import patch_schema


def smp(kind, doc, patch):
    """Apply and check that neither input was touched."""
    before = copy.deepcopy((doc, patch))
    out = strategic_merge_patch(patch_schema(kind), doc, patch)
    assert (doc, patch) == before, "inputs were mutated"
    return out


def directive_keys(value, found=None):
    found = [] if found is None else found
    if isinstance(value, dict):
        found += [k for k in value if k.startswith("$")]
        for v in value.values():
            directive_keys(v, found)
    elif isinstance(value, list):
        for v in value:
            directive_keys(v, found)
    return found


def containers(*names_or_dicts):
    return [{"name": c} if isinstance(c, str) else c for c in names_or_dicts]


def pod(cs):
    return {"kind": "Pod", "spec": {"containers": cs}}


def names(items, key="name"):
    return [i[key] for i in items]


# --- kubectl client-side apply -------------------------------------------------------

SERVICE = {
    "apiVersion": "v1", "kind": "Service",
    "metadata": {"name": "web", "namespace": "default", "resourceVersion": "7",
                 "annotations": {"kubectl.kubernetes.io/last-applied-configuration": "{old}\n"}},
    "spec": {"type": "ClusterIP", "clusterIP": "10.96.0.10", "clusterIPs": ["10.96.0.10"],
             "selector": {"app": "web"},
             "ports": [{"name": "http", "port": 80, "protocol": "TCP", "targetPort": 8080}]},
}


def test_kubectl_apply_changes_service_port_80_to_81():
    patch = json.loads(
        '{"metadata":{"annotations":{"kubectl.kubernetes.io/last-applied-configuration":"..."}},'
        '"spec":{"$setElementOrder/ports":[{"port":81}],"ports":[{"name":"http","port":81,'
        '"protocol":"TCP","targetPort":8080},{"$patch":"delete","port":80}]}}')
    out = smp("Service", SERVICE, patch)
    assert out["spec"]["ports"] == [
        {"name": "http", "port": 81, "protocol": "TCP", "targetPort": 8080}]
    assert out["metadata"]["annotations"] == {
        "kubectl.kubernetes.io/last-applied-configuration": "..."}
    assert out["spec"]["clusterIP"] == "10.96.0.10" and out["spec"]["selector"] == {"app": "web"}
    assert directive_keys(out) == []


def test_kubectl_apply_adds_a_second_port_in_manifest_order():
    patch = {"spec": {"$setElementOrder/ports": [{"port": 80}, {"port": 443}],
                      "ports": [{"name": "https", "port": 443, "targetPort": 8443}]}}
    out = smp("Service", SERVICE, patch)
    assert names(out["spec"]["ports"], "port") == [80, 443]
    assert out["spec"]["ports"][0]["targetPort"] == 8080


def test_kubectl_apply_reorders_ports():
    doc = copy.deepcopy(SERVICE)
    doc["spec"]["ports"] = [{"port": 80, "name": "a"}, {"port": 81, "name": "b"}]
    patch = {"spec": {"$setElementOrder/ports": [{"port": 81}, {"port": 80}]}}
    assert names(smp("Service", doc, patch)["spec"]["ports"], "port") == [81, 80]


def test_service_atomic_lists_and_selector_map():
    patch = {"spec": {"clusterIPs": ["10.96.0.11"], "selector": {"app": None, "tier": "fe"}}}
    out = smp("Service", SERVICE, patch)
    assert out["spec"]["clusterIPs"] == ["10.96.0.11"]
    assert out["spec"]["selector"] == {"tier": "fe"}


def test_null_deletes_fields_even_merge_lists():
    out = smp("Service", SERVICE, {"spec": {"ports": None, "type": None}})
    assert "ports" not in out["spec"] and "type" not in out["spec"]


# --- $patch in objects ---------------------------------------------------------------


def test_patch_replace_in_a_map():
    patch = {"spec": {"selector": {"$patch": "replace", "tier": "be"}}}
    assert smp("Service", SERVICE, patch)["spec"]["selector"] == {"tier": "be"}


def test_patch_replace_processes_nested_directives_against_nothing():
    patch = {"spec": {"$patch": "replace", "selector": {"a": None, "b": "1"},
                      "ports": [{"port": 1}, {"$patch": "delete", "port": 80}]}}
    out = smp("Service", SERVICE, patch)
    assert out["spec"] == {"selector": {"b": "1"}, "ports": [{"port": 1}]}


def test_patch_replace_at_top_level():
    assert smp("Service", SERVICE, {"$patch": "replace", "kind": "Service"}) == {"kind": "Service"}
    assert smp("Service", SERVICE, {"$patch": "replace"}) == {}


def test_patch_delete_in_a_map_removes_it():
    out = smp("Service", SERVICE, {"spec": {"selector": {"$patch": "delete"}}})
    assert "selector" not in out["spec"]
    out = smp("Service", SERVICE, {"metadata": {"labels": {"$patch": "delete", "x": "y"}}})
    assert "labels" not in out["metadata"]


def test_patch_merge_is_the_default():
    out = smp("Service", SERVICE, {"spec": {"selector": {"$patch": "merge", "tier": "fe"}}})
    assert out["spec"]["selector"] == {"app": "web", "tier": "fe"}


def test_patch_delete_nested_inside_merged_list_element():
    doc = pod([{"name": "app", "resources": {"limits": {"cpu": "1"}}}])
    patch = pod([{"name": "app", "resources": {"$patch": "delete"}}])
    assert smp("Pod", doc, patch)["spec"]["containers"] == [{"name": "app"}]


# --- merge-keyed lists ---------------------------------------------------------------


def test_pod_containers_env_ports_merge_by_key():
    doc = pod([
        {"name": "app", "image": "app:1",
         "env": [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}],
         "ports": [{"containerPort": 80, "protocol": "TCP"}],
         "volumeMounts": [{"mountPath": "/data", "name": "d"}]},
        {"name": "side", "image": "side:1"},
    ])
    patch = pod([{"name": "app", "image": "app:2",
                  "env": [{"name": "B", "value": "3"}, {"name": "C", "value": "4"}],
                  "ports": [{"containerPort": 80, "name": "http"}],
                  "volumeMounts": [{"mountPath": "/data", "readOnly": True}]}])
    out = smp("Pod", doc, patch)["spec"]["containers"]
    assert names(out) == ["app", "side"]
    app = out[0]
    assert app["image"] == "app:2"
    assert app["env"] == [{"name": "A", "value": "1"}, {"name": "B", "value": "3"},
                          {"name": "C", "value": "4"}]
    assert app["ports"] == [{"containerPort": 80, "protocol": "TCP", "name": "http"}]
    assert app["volumeMounts"] == [{"mountPath": "/data", "name": "d", "readOnly": True}]
    assert out[1] == {"name": "side", "image": "side:1"}


def test_init_containers_and_env_delete_directive():
    doc = {"spec": {"initContainers": [
        {"name": "init", "env": [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}]}]}}
    patch = {"spec": {"initContainers": [
        {"name": "init", "env": [{"$patch": "delete", "name": "A"}]}]}}
    out = smp("Pod", doc, patch)
    assert out["spec"]["initContainers"][0]["env"] == [{"name": "B", "value": "2"}]


def test_list_element_delete_removes_all_duplicates():
    doc = pod(containers("1", "1", {"name": "2", "image": "a"}, "3", "3"))
    patch = pod([{"name": "1", "$patch": "delete"}, {"name": "3", "$patch": "delete"}])
    assert smp("Pod", doc, patch)["spec"]["containers"] == [{"name": "2", "image": "a"}]


def test_list_replace_directive():
    doc = pod(containers("a", "b"))
    patch = pod([{"name": "c", "image": "x", "env": [{"$patch": "delete", "name": "Z"}]},
                 {"$patch": "replace"}])
    assert smp("Pod", doc, patch)["spec"]["containers"] == [
        {"name": "c", "image": "x", "env": []}]
    assert smp("Pod", doc, pod([{"$patch": "replace"}]))["spec"]["containers"] == []


def test_patch_list_for_absent_field_drops_delete_elements():
    patch = pod([{"name": "hello"}, {"$patch": "delete", "name": "doesntexist"}])
    assert smp("Pod", {"spec": {}}, patch)["spec"]["containers"] == [{"name": "hello"}]


def test_new_elements_go_before_server_only_elements_like_kubernetes():
    # As on a real server (see the kubectl patch task page): without $setElementOrder a
    # new container lands first.
    doc = pod(containers({"name": "patch-demo-ctr", "image": "nginx"}))
    patch = pod([{"name": "patch-demo-ctr-2", "image": "redis"}])
    assert names(smp("Pod", doc, patch)["spec"]["containers"]) == [
        "patch-demo-ctr-2", "patch-demo-ctr"]


@pytest.mark.parametrize(("original", "patch", "expected"), [
    # apimachinery "preserve the order from the patch in a merging list"
    (containers("1", {"name": "2", "value": "b"}, "3"),
     [{"name": "3", "value": "c"}, {"name": "1", "value": "a"}, {"name": "2", "other": "x"}],
     [{"name": "3", "value": "c"}, {"name": "1", "value": "a"},
      {"name": "2", "value": "b", "other": "x"}]),
    # ... "in a merging list 2"
    (containers("1", {"name": "2", "value": "b"}, "3"),
     [{"name": "3", "value": "c"}, {"name": "1", "value": "a"}],
     [{"name": "2", "value": "b"}, {"name": "3", "value": "c"}, {"name": "1", "value": "a"}]),
])
def test_apimachinery_merge_list_order_vectors(original, patch, expected):
    assert smp("Pod", pod(original), pod(patch))["spec"]["containers"] == expected


def test_missing_merge_key_is_malformed():
    with pytest.raises(PatchError) as err:
        strategic_merge_patch(patch_schema("Pod"), pod(containers("1")), pod([{"image": "b"}]))
    assert err.value.malformed


def test_delete_element_without_merge_key_is_malformed():
    with pytest.raises(PatchError) as err:
        strategic_merge_patch(patch_schema("Pod"), pod(containers("1")), pod([{"$patch": "delete"}]))
    assert err.value.malformed


def test_owner_references_merge_by_uid():
    doc = {"metadata": {"ownerReferences": [{"uid": "u1", "name": "a"}, {"uid": "u2"}]}}
    patch = {"metadata": {"ownerReferences": [{"uid": "u2", "controller": True},
                                              {"uid": "u1", "$patch": "delete"}]}}
    assert smp("Event", doc, patch)["metadata"]["ownerReferences"] == [
        {"uid": "u2", "controller": True}]


# --- Node ----------------------------------------------------------------------------

NODE = {"kind": "Node", "metadata": {"name": "n1"},
        "spec": {"podCIDRs": ["10.0.0.0/24"], "taints": [{"key": "a", "effect": "NoSchedule"}]},
        "status": {"conditions": [{"type": "Ready", "status": "False", "reason": "Boot"},
                                  {"type": "MemoryPressure", "status": "False"}],
                   "addresses": [{"type": "InternalIP", "address": "10.0.0.1"},
                                 {"type": "Hostname", "address": "n1"}]}}


def test_node_status_conditions_and_addresses_merge_by_type():
    patch = {"status": {
        "conditions": [{"type": "Ready", "status": "True", "reason": "KubeletReady",
                        "lastHeartbeatTime": "2024-01-01T00:00:00Z"}],
        "addresses": [{"type": "InternalIP", "address": "10.0.0.2"}]}}
    status = smp("Node", NODE, patch)["status"]
    assert status["conditions"] == [
        {"type": "Ready", "status": "True", "reason": "KubeletReady",
         "lastHeartbeatTime": "2024-01-01T00:00:00Z"},
        {"type": "MemoryPressure", "status": "False"}]
    assert status["addresses"] == [{"type": "InternalIP", "address": "10.0.0.2"},
                                   {"type": "Hostname", "address": "n1"}]


def test_node_taints_are_atomic():
    out = smp("Node", NODE, {"spec": {"taints": [{"key": "b", "effect": "NoExecute"}]}})
    assert out["spec"]["taints"] == [{"key": "b", "effect": "NoExecute"}]


def test_node_pod_cidrs_are_a_merged_set():
    patch = {"spec": {"$setElementOrder/podCIDRs": ["10.0.0.0/24", "fd00::/64"],
                      "podCIDRs": ["fd00::/64"]}}
    assert smp("Node", NODE, patch)["spec"]["podCIDRs"] == ["10.0.0.0/24", "fd00::/64"]
    plain = smp("Node", NODE, {"spec": {"podCIDRs": ["fd00::/64", "10.0.0.0/24"]}})
    assert plain["spec"]["podCIDRs"] == ["fd00::/64", "10.0.0.0/24"]


# --- primitive sets: finalizers ------------------------------------------------------


def fin(values):
    return {"metadata": {"finalizers": values}}


@pytest.mark.parametrize(("original", "patch", "expected"), [
    (["a", "b"], ["b", "c"], ["a", "b", "c"]),     # union without duplicates
    (["a", "b", "c"], ["c", "a", "b"], ["c", "a", "b"]),
    (["a", "b", "c"], ["c", "a"], ["b", "c", "a"]),
    (["a"], ["b"], ["b", "a"]),                    # new values first, as on a real server
    (["a", "a", "b"], ["a"], ["a", "b"]),
])
def test_finalizers_merge_as_a_set(original, patch, expected):
    for kind in ("Pod", "Service", "Namespace", "SomethingElse"):
        assert smp(kind, fin(original), fin(patch))["metadata"]["finalizers"] == expected


def test_kubectl_style_finalizer_addition_appends():
    patch = {"metadata": {"$setElementOrder/finalizers": ["a", "b"], "finalizers": ["b"]}}
    assert smp("Pod", fin(["a"]), patch)["metadata"]["finalizers"] == ["a", "b"]


def test_delete_from_primitive_list():
    patch = {"metadata": {"$deleteFromPrimitiveList/finalizers": ["b", "c"]}}
    assert smp("Pod", fin(["a", "b", "c", "b"]), patch)["metadata"]["finalizers"] == ["a"]


@pytest.mark.parametrize(("original", "patch", "expected"), [
    # apimachinery "delete items in lists of scalars" (three-way)
    (["1", "2", "3", "4"],
     {"$setElementOrder/finalizers": ["1", "2"], "$deleteFromPrimitiveList/finalizers": ["3"]},
     ["1", "2", "4"]),
    # "delete all duplicate items in lists of scalars"
    (["1", "2", "3", "3", "4"],
     {"$setElementOrder/finalizers": ["1", "2"], "$deleteFromPrimitiveList/finalizers": ["3"]},
     ["1", "2", "4"]),
    # "add and delete items in lists of scalars" (two-way)
    (["1", "2", "3"],
     {"$setElementOrder/finalizers": ["1", "2", "4"],
      "$deleteFromPrimitiveList/finalizers": ["3"], "finalizers": ["4"]},
     ["1", "2", "4"]),
    # "$setElementOrder contains item that is not present in the int list to be merged"
    (["1", "3"], {"$setElementOrder/finalizers": ["3", "2", "1"]}, ["3", "1"]),
    # "$deleteFromPrimitiveList of nonexistent item ... should not add the item"
    (["1", "2"], {"$deleteFromPrimitiveList/finalizers": ["3"]}, ["1", "2"]),
])
def test_apimachinery_primitive_list_vectors(original, patch, expected):
    assert smp("Pod", fin(original), {"metadata": patch})["metadata"]["finalizers"] == expected


def test_delete_from_primitive_list_never_creates_the_list():
    out = smp("Pod", {"metadata": {"name": "x"}},
              {"metadata": {"$deleteFromPrimitiveList/finalizers": ["a"]}})
    assert out == {"metadata": {"name": "x"}}


def test_delete_from_atomic_primitive_list():
    doc = {"spec": {"clusterIPs": ["a", "b", "c"]}}
    patch = {"spec": {"$deleteFromPrimitiveList/clusterIPs": ["b"]}}
    assert smp("Service", doc, patch)["spec"]["clusterIPs"] == ["a", "c"]


def test_primitive_set_rejects_objects():
    with pytest.raises(PatchError) as err:
        strategic_merge_patch(patch_schema("Pod"), fin(["a"]), fin([{"x": 1}]))
    assert not err.value.malformed


# --- $setElementOrder on keyed lists -------------------------------------------------


@pytest.mark.parametrize(("current", "patch", "expected"), [
    # apimachinery "merge lists of maps"
    (containers({"name": "1", "other": "a"}, {"name": "2", "value": "2", "other": "b"}),
     {"$setElementOrder/containers": [{"name": "4"}, {"name": "1"}, {"name": "2"},
                                      {"name": "3"}],
      "containers": [{"name": "4", "value": "4"}, {"name": "3", "value": "3"}]},
     [{"name": "4", "value": "4"}, {"name": "1", "other": "a"},
      {"name": "2", "value": "2", "other": "b"}, {"name": "3", "value": "3"}]),
    # "merge lists of maps with conflict"
    (containers({"name": "1", "other": "a"}, {"name": "2", "value": "3", "other": "b"}),
     {"$setElementOrder/containers": [{"name": "1"}, {"name": "2"}, {"name": "3"}],
      "containers": [{"name": "2", "value": "2"}, {"name": "3", "value": "3"}]},
     [{"name": "1", "other": "a"}, {"name": "2", "value": "2", "other": "b"},
      {"name": "3", "value": "3"}]),
    # "nested patch merge with empty list" (three-way)
    (containers("hello2"),
     {"$setElementOrder/containers": [{"name": "hello"}, {"name": "doesntexist"}],
      "containers": [{"name": "hello"}, {"$patch": "delete", "name": "doesntexist"}]},
     [{"name": "hello"}, {"name": "hello2"}]),
    # "$setElementOrder contains item that is not present in the list to be merged"
    (containers("1", "3"),
     {"$setElementOrder/containers": [{"name": "3"}, {"name": "2"}, {"name": "1"}],
      "containers": [{"name": "3", "value": "3"}, {"name": "1", "value": "1"}]},
     [{"name": "3", "value": "3"}, {"name": "1", "value": "1"}]),
])
def test_apimachinery_set_element_order_vectors(current, patch, expected):
    assert smp("Pod", pod(current), {"spec": patch})["spec"]["containers"] == expected


def test_set_element_order_for_absent_list_with_patch():
    patch = {"spec": {"$setElementOrder/containers": [{"name": "b"}, {"name": "a"}],
                      "containers": [{"name": "b"}, {"name": "a"}]}}
    assert names(smp("Pod", {"spec": {}}, patch)["spec"]["containers"]) == ["b", "a"]


def test_set_element_order_alone_for_absent_list_is_a_noop():
    patch = {"spec": {"$setElementOrder/containers": [{"name": "b"}]}}
    assert smp("Pod", {"spec": {}}, patch) == {"spec": {}}


@pytest.mark.parametrize("patch", [
    # apimachinery "should check if order in $setElementOrder and patch list match"
    {"$setElementOrder/containers": [{"name": "1"}, {"name": "2"}, {"name": "3"}],
     "containers": [{"name": "3", "value": "3"}, {"name": "1", "value": "1"}]},
    {"$setElementOrder/containers": [{"name": "1"}], "containers": [{"name": "2"}]},
    {"$setElementOrder/containers": ["1"]},
    {"$setElementOrder/containers": "1"},
    {"$setElementOrder/containers": [], "containers": {"name": "1"}},
])
def test_inconsistent_set_element_order_is_malformed(patch):
    with pytest.raises(PatchError) as err:
        strategic_merge_patch(patch_schema("Pod"), pod(containers("1", "3", "2")), {"spec": patch})
    assert err.value.malformed


def test_inconsistent_primitive_order_is_malformed():
    patch = {"metadata": {"$setElementOrder/finalizers": ["1", "2", "3"],
                          "finalizers": ["3", "1"]}}
    with pytest.raises(PatchError) as err:
        strategic_merge_patch(patch_schema("Pod"), fin(["1", "3", "2"]), patch)
    assert err.value.malformed


# --- $retainKeys ---------------------------------------------------------------------


def test_retain_keys_clears_other_union_members():
    doc = {"spec": {"volumes": [{"name": "data", "emptyDir": {}}, {"name": "other",
                                                                   "emptyDir": {}}]}}
    patch = {"spec": {"volumes": [{"name": "data", "$retainKeys": ["name", "hostPath"],
                                   "hostPath": {"path": "/x"}}]}}
    assert smp("Pod", doc, patch)["spec"]["volumes"] == [
        {"name": "data", "hostPath": {"path": "/x"}}, {"name": "other", "emptyDir": {}}]


def test_retain_keys_on_a_plain_map():
    doc = {"spec": {"strategy": {"type": "A", "rollingUpdate": {"x": 1}, "keep": 1}}}
    patch = {"spec": {"strategy": {"$retainKeys": ["type", "keep"], "type": "B"}}}
    assert smp("Event", doc, patch)["spec"]["strategy"] == {"type": "B", "keep": 1}


def test_retain_keys_must_cover_patched_fields():
    patch = {"spec": {"volumes": [{"name": "data", "$retainKeys": ["name"],
                                   "hostPath": {"path": "/x"}}]}}
    with pytest.raises(PatchError) as err:
        strategic_merge_patch(patch_schema("Pod"), {"spec": {"volumes": [{"name": "data"}]}}, patch)
    assert err.value.malformed is False


# --- atomic lists and other kinds ----------------------------------------------------


def test_endpointslice_lists_are_atomic():
    doc = {"kind": "EndpointSlice", "endpoints": [{"addresses": ["10.0.0.1"]},
                                                  {"addresses": ["10.0.0.2"]}],
           "ports": [{"name": "http", "port": 80}]}
    patch = {"endpoints": [{"addresses": ["10.0.0.3"]}], "ports": [{"port": 81}]}
    out = smp("EndpointSlice", doc, patch)
    assert out["endpoints"] == [{"addresses": ["10.0.0.3"]}]
    assert out["ports"] == [{"port": 81}]


def test_pod_tolerations_and_container_statuses_are_atomic():
    doc = {"spec": {"tolerations": [{"key": "a"}, {"key": "b"}]},
           "status": {"containerStatuses": [{"name": "a", "ready": True}, {"name": "b"}]}}
    patch = {"spec": {"tolerations": [{"key": "c"}]},
             "status": {"containerStatuses": [{"name": "a", "ready": False}]}}
    out = smp("Pod", doc, patch)
    assert out["spec"]["tolerations"] == [{"key": "c"}]
    assert out["status"]["containerStatuses"] == [{"name": "a", "ready": False}]


def test_pod_status_conditions_merge_by_type():
    doc = {"status": {"conditions": [{"type": "Ready", "status": "False"},
                                     {"type": "PodScheduled", "status": "True"}]}}
    patch = {"status": {"conditions": [{"type": "Ready", "status": "True"}]}}
    assert smp("Pod", doc, patch)["status"]["conditions"] == [
        {"type": "Ready", "status": "True"}, {"type": "PodScheduled", "status": "True"}]


def test_unknown_kind_merges_metadata_only():
    doc = {"metadata": {"finalizers": ["a"]}, "spec": {"ports": [{"port": 1}]}}
    patch = {"metadata": {"finalizers": ["a", "b"]}, "spec": {"ports": [{"port": 2}]}}
    out = smp("Widget", doc, patch)
    assert out == {"metadata": {"finalizers": ["a", "b"]}, "spec": {"ports": [{"port": 2}]}}


def test_atomic_list_values_are_stripped_of_directive_keys():
    patch = {"spec": {"tolerations": [{"key": "a", "$patch": "delete"}]}}
    assert smp("Pod", {}, patch) == {"spec": {"tolerations": [{"key": "a"}]}}


def test_new_maps_drop_nulls_and_directives():
    patch = {"spec": {"selector": {"a": None, "b": "1"},
                      "ports": [{"port": 1, "name": None}, {"$patch": "delete", "port": 2}],
                      "$setElementOrder/ports": [{"port": 1}]}}
    out = smp("Service", {}, patch)
    assert out == {"spec": {"selector": {"b": "1"}, "ports": [{"port": 1}]}}


# --- errors and hygiene --------------------------------------------------------------


@pytest.mark.parametrize("patch", [
    ["not", "an", "object"],
    {"spec": {"selector": {"$patch": "bogus"}}},
    {"spec": {"ports": [{"$patch": "merge", "port": 1}]}},
    {"spec": {"ports": ["not-an-object"]}},
    {"spec": {"$setElementOrder": [1]}},
    {"spec": {"$setElementOrder/": [1]}},
    {"spec": {"$deleteFromPrimitiveListX/ports": [1]}},
    {"metadata": {"$deleteFromPrimitiveList/finalizers": "a"}},
    {"spec": {"$retainKeys": "ports"}},
])
def test_malformed_strategic_patches(patch):
    with pytest.raises(PatchError) as err:
        strategic_merge_patch(patch_schema("Service"), SERVICE, patch)
    assert err.value.malformed is True


def test_non_object_document_is_rejected():
    with pytest.raises(PatchError):
        strategic_merge_patch(patch_schema("Service"), ["x"], {})


def test_result_never_aliases_inputs():
    patch = {"spec": {"ports": [{"port": 80, "extra": {"a": [1]}}],
                      "newmap": {"x": [1]}}}
    out = strategic_merge_patch(patch_schema("Service"), SERVICE, patch)
    out["spec"]["ports"][0]["extra"]["a"].append(2)
    out["spec"]["newmap"]["x"].append(2)
    out["spec"]["selector"]["app"] = "changed"
    out["metadata"]["annotations"].clear()
    assert patch["spec"]["ports"][0]["extra"] == {"a": [1]}
    assert patch["spec"]["newmap"] == {"x": [1]}
    assert SERVICE["spec"]["selector"] == {"app": "web"}
    assert SERVICE["metadata"]["annotations"]


def test_complex_patch_leaves_inputs_untouched_and_no_directives_in_output():
    doc = pod(containers({"name": "a", "env": [{"name": "X", "value": "1"}]}, "b"))
    doc["metadata"] = {"finalizers": ["f1", "f2"], "labels": {"l": "1"}}
    patch = {"metadata": {"$deleteFromPrimitiveList/finalizers": ["f1"],
                          "$setElementOrder/finalizers": ["f2", "f3"], "finalizers": ["f3"],
                          "labels": {"$patch": "replace", "m": "2"}},
             "spec": {"$setElementOrder/containers": [{"name": "c"}, {"name": "a"}],
                      "containers": [{"name": "c"}, {"name": "b", "$patch": "delete"},
                                     {"name": "a", "env": [{"name": "X", "$patch": "delete"}],
                                      "$retainKeys": ["name", "env"]}]}}
    out = smp("Pod", doc, patch)
    assert directive_keys(out) == []
    assert out["metadata"] == {"finalizers": ["f2", "f3"], "labels": {"m": "2"}}
    assert out["spec"]["containers"] == [{"name": "c"}, {"name": "a", "env": []}]
