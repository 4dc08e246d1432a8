"""The registry of kinds: one strategy per kind, and a write path that names none.

Three things are checked: the files of the write path hold no kind's name (the
kind-specific rules live in ``apiserver/registry/<kind>.py``); the registry agrees
with the facts clients read (``apimachinery.kinds``, the tables mpctl prints, the
OpenAPI models); and the worked example in ``docs/adding-a-kind.md`` runs as
written, through the real write path and a real store.
"""

from __future__ import annotations

import ast
import json
import re
import sys
import types
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from apimachinery import kinds, tables
from apiserver import discovery, resources
from apiserver import tables as server_tables
from apiserver.errors import Forbidden, Invalid
from apiserver.patch import strategic_merge_patch
from apiserver.registry.strategy import Strategy
from apiserver.services import ServiceAllocations
from apiserver.storage.store import Store, Txn
from apiserver.writes import Writes

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "adding-a-kind.md"
KIND_NAMES = {k.kind for k in kinds.KINDS} | {"Binding"}
# Modules that serve every kind alike: none may spell a kind's name.
GENERIC_MODULES = ("writes.py", "handlers.py", "app.py", "discovery.py", "paths.py",
                   "listopts.py", "tables.py", "managedfields.py", "defaults.py",
                   "openapi/__init__.py", "validation/__init__.py", "patch/schemas.py",
                   "patch/strategic.py")


def _strings(path: Path) -> Iterator[tuple[int, str]]:
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            yield node.lineno, node.value


@pytest.mark.parametrize("module", GENERIC_MODULES)
def test_the_generic_modules_name_no_kind(module: str) -> None:
    path = ROOT / "apiserver" / module
    found = [(line, text) for line, text in _strings(path) if text in KIND_NAMES]
    assert found == [], f"{module} branches on a kind's name; move it to the kind's strategy"
    assert not re.search(r"\.kind\.kind\s*[!=]=", path.read_text())


def test_every_served_kind_is_a_known_kind_with_one_strategy() -> None:
    served = [s.kind for s in resources.REGISTRY]
    assert len(set(served)) == len(served)
    assert set(served) <= set(kinds.KINDS)
    assert len({s.key for s in resources.REGISTRY}) == len(served)
    for s in resources.REGISTRY:
        assert resources.by_kind(s.kind) is s
        assert resources.by_key(s.key) is s
        assert resources.by_path(s.kind.group, s.kind.version, s.kind.plural) is s


def test_server_and_mpctl_print_the_same_columns() -> None:
    for s in resources.REGISTRY:
        assert s.table is tables.table_spec(s.kind), s


def test_every_openapi_root_is_in_the_generated_models() -> None:
    models = json.loads((ROOT / "apiserver" / "openapi" / "schemas.json").read_text())
    roots = [s.openapi_root for s in resources.REGISTRY] + [
        a.openapi_root for s in resources.REGISTRY for a in s.actions.values()]
    assert None not in roots
    assert set(roots) <= set(models["schemas"])


# ---------------------------------------------------------------------------- the example


def _doc_blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", DOC.read_text(), re.S)


@pytest.fixture
def priorityclasses(monkeypatch: pytest.MonkeyPatch) -> Strategy:
    """The doc's PriorityClass: its ``Kind`` line added to the facts, its module loaded."""
    kind_line, module_text = _doc_blocks()[:2]
    facts: dict[str, Any] = {"Kind": kinds.Kind}
    exec(kind_line, facts)  # noqa: S102 - the documented line, as written
    monkeypatch.setattr(kinds, "PRIORITYCLASS", facts["PRIORITYCLASS"], raising=False)
    monkeypatch.setattr(kinds, "KINDS", (*kinds.KINDS, facts["PRIORITYCLASS"]))
    module = types.ModuleType("apiserver.registry.priorityclass")
    monkeypatch.setitem(sys.modules, module.__name__, module)
    exec(compile(module_text, "docs/adding-a-kind.md", "exec"), module.__dict__)  # noqa: S102
    return module.STRATEGY


@pytest.fixture
def write(tmp_path: Path) -> Iterator[Callable[[Callable[[Txn], Any]], Any]]:
    """Run one write closure on a real store (SQLite in a temporary directory)."""
    store = Store(f"sqlite:///{tmp_path / 'state.db'}")
    store.start()
    writes = Writes(ServiceAllocations("10.96.0.0/16", "30000-32767"))

    def run(op: Callable[[Txn], Any]) -> Any:
        return store.submit(op).result(timeout=30)

    run.writes = writes  # type: ignore[attr-defined]
    namespaces = resources.by_kind(kinds.NAMESPACE)
    run(writes.create(namespaces, "", {"metadata": {"name": "default"}}))
    try:
        yield run
    finally:
        store.close()


def test_the_documented_kind_is_not_served_yet() -> None:
    """The example stays an example: a kind the registry does not hold."""
    kind_line = _doc_blocks()[0]
    facts: dict[str, Any] = {"Kind": kinds.Kind}
    exec(kind_line, facts)  # noqa: S102 - the documented line, as written
    documented = facts["PRIORITYCLASS"]
    assert all(s.kind.kind != documented.kind for s in resources.REGISTRY)


def test_the_documented_kind_is_served_by_the_generic_write_path(priorityclasses: Strategy,
                                                                 write: Any) -> None:
    writes: Writes = write.writes
    body = {"apiVersion": "scheduling.k8s.io/v1", "kind": "PriorityClass",
            "metadata": {"name": "high"}, "value": 1000}
    created = write(writes.create(priorityclasses, "", body))
    assert "namespace" not in created["metadata"]
    assert created["metadata"]["generation"] == 1
    assert created["preemptionPolicy"] == "PreemptLowerPriority"  # defaulted

    with pytest.raises(Invalid) as bad:
        writes.create(priorityclasses, "", {"metadata": {"name": "x"}, "value": 2_000_000_000,
                                            "preemptionPolicy": "Sometimes"})
    assert [c["field"] for c in bad.value.status()["details"]["causes"]] == [
        "value", "preemptionPolicy"]

    relabelled = write(writes.update(priorityclasses, "", "high", {
        **created, "metadata": {**created["metadata"], "labels": {"tier": "a"}},
        "globalDefault": True})).obj
    assert relabelled["metadata"]["generation"] == 2
    with pytest.raises(Invalid) as changed:
        write(writes.update(priorityclasses, "", "high", {**relabelled, "value": 5}))
    assert [c["field"] for c in changed.value.status()["details"]["causes"]] == ["value"]

    patched = strategic_merge_patch(priorityclasses.patch_schema, relabelled,
                                    {"metadata": {"finalizers": ["a"]}})
    assert patched["metadata"]["finalizers"] == ["a"]

    now = datetime(2030, 1, 1, tzinfo=UTC)
    assert [c["name"] for c in server_tables.column_definitions(priorityclasses.table)] == \
        ["Name", "Value", "Global-Default", "Age", "Preemptionpolicy"]
    assert server_tables.row(priorityclasses.table, relabelled, now)["cells"][:3] == \
        ["high", "1000", "true"]
    assert [e["name"] for e in discovery._resource_entries(priorityclasses)] == \
        ["priorityclasses"]

    gone = write(writes.delete(priorityclasses, "", "high", {}))
    assert gone["kind"] == "Status" and gone["details"]["kind"] == "priorityclasses"


def test_protected_names_and_scope_come_from_the_namespace_strategy(write: Any) -> None:
    writes: Writes = write.writes
    namespaces = resources.by_kind(kinds.NAMESPACE)
    with pytest.raises(Forbidden):
        writes.delete(namespaces, "", "default", {})
    assert resources.SCOPE is namespaces
