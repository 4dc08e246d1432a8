"""Store (cache + indexes) and object keys."""

from __future__ import annotations

import pytest

from apimachinery.keys import make_key, object_key, split_key
from client.store import Store


def pod(name: str, node: str | None = None, ns: str = "default", rv: str = "1",
        labels: dict[str, str] | None = None) -> dict:
    obj = {"metadata": {"name": name, "namespace": ns, "resourceVersion": rv,
                        "labels": labels or {}},
           "spec": {}}
    if node:
        obj["spec"]["nodeName"] = node
    return obj


def by_node(obj: dict) -> str | None:
    return obj["spec"].get("nodeName")


def by_labels(obj: dict) -> list[str]:
    return [f"{k}={v}" for k, v in obj["metadata"]["labels"].items()]


def names(objs: list[dict]) -> list[str]:
    return [o["metadata"]["name"] for o in objs]


# -- keys ------------------------------------------------------------------------------


@pytest.mark.parametrize(("obj", "key"), [
    ({"metadata": {"name": "web", "namespace": "default"}}, "default/web"),
    ({"metadata": {"name": "node-1"}}, "node-1"),
    ({"metadata": {"name": "node-1", "namespace": ""}}, "node-1"),
])
def test_object_key(obj, key):
    assert object_key(obj) == key


def test_object_key_needs_a_name():
    with pytest.raises(KeyError):
        object_key({"metadata": {"namespace": "x"}})


@pytest.mark.parametrize(("key", "parts"), [
    ("default/web", ("default", "web")),
    ("node-1", (None, "node-1")),
    ("kube-system/a.b.c", ("kube-system", "a.b.c")),
])
def test_split_key_inverts_make_key(key, parts):
    assert split_key(key) == parts
    assert make_key(*parts) == key


@pytest.mark.parametrize("bad", ["/web", "ns/", "a/b/c"])
def test_split_key_rejects_malformed(bad):
    with pytest.raises(ValueError):
        split_key(bad)


# -- store -----------------------------------------------------------------------------


def test_upsert_get_delete_and_sorted_listing():
    s = Store()
    assert s.upsert(pod("b")) is None
    assert s.upsert(pod("a")) is None
    old = s.upsert(pod("b", rv="2"))
    assert old is not None and old["metadata"]["resourceVersion"] == "1"
    assert s.keys() == ["default/a", "default/b"]
    assert names(s.list()) == ["a", "b"]
    assert s.get("default/b")["metadata"]["resourceVersion"] == "2"
    assert "default/a" in s and len(s) == 2
    assert s.delete("default/a")["metadata"]["name"] == "a"
    assert s.delete("default/a") is None
    assert s.get("default/a") is None


def test_index_follows_updates_and_deletes():
    s = Store()
    s.add_index("node", by_node)
    s.upsert(pod("p1", "n1"))
    s.upsert(pod("p2", "n1"))
    s.upsert(pod("p3", "n2"))
    s.upsert(pod("p4"))  # no node: not indexed
    assert names(s.by_index("node", "n1")) == ["p1", "p2"]
    assert s.index_values("node") == ["n1", "n2"]

    s.upsert(pod("p2", "n2", rv="2"))  # moved: leaves n1, joins n2
    assert names(s.by_index("node", "n1")) == ["p1"]
    assert names(s.by_index("node", "n2")) == ["p2", "p3"]

    s.delete("default/p1")
    assert s.by_index("node", "n1") == []
    assert s.index_values("node") == ["n2"]  # empty values are dropped
    assert s.index_keys("node", "n2") == ["default/p2", "default/p3"]


def test_multi_valued_index():
    s = Store()
    s.add_index("label", by_labels)
    s.upsert(pod("a", labels={"app": "web", "tier": "fe"}))
    s.upsert(pod("b", labels={"app": "web"}))
    assert names(s.by_index("label", "app=web")) == ["a", "b"]
    assert names(s.by_index("label", "tier=fe")) == ["a"]
    s.upsert(pod("a", labels={"app": "db"}))
    assert names(s.by_index("label", "app=web")) == ["b"]
    assert s.by_index("label", "tier=fe") == []


def test_replace_rebuilds_contents_indexes_and_version():
    s = Store()
    s.add_index("node", by_node)
    s.upsert(pod("gone", "n1"))
    s.upsert(pod("kept", "n1"))
    s.replace([pod("kept", "n2", rv="5"), pod("new", "n3", rv="6")], "6")
    assert s.keys() == ["default/kept", "default/new"]
    assert s.resource_version == "6"
    assert s.by_index("node", "n1") == []
    assert names(s.by_index("node", "n2")) == ["kept"]
    assert names(s.by_index("node", "n3")) == ["new"]


def test_index_added_later_covers_cached_objects():
    s = Store()
    s.upsert(pod("p1", "n1"))
    s.add_index("node", by_node)
    assert names(s.by_index("node", "n1")) == ["p1"]
    with pytest.raises(ValueError):
        s.add_index("node", by_node)


def test_unknown_index_is_a_key_error():
    with pytest.raises(KeyError, match="no index named"):
        Store().by_index("nope", "x")


def test_items_is_a_snapshot():
    s = Store()
    s.upsert(pod("a"))
    snap = s.items()
    s.upsert(pod("b"))
    assert list(snap) == ["default/a"]


def test_cluster_scoped_keys():
    s = Store()
    s.upsert({"metadata": {"name": "node-1", "resourceVersion": "3"}})
    assert s.keys() == ["node-1"]
