"""mpctl's manifest loading: multi-document YAML, JSON, List expansion, directories, errors."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

from mpctl.manifests import ManifestError, load, load_text, parse_documents

SVC = """\
apiVersion: v1
kind: Service
metadata:
  name: web
spec:
  ports:
  - port: 80
"""


def names(manifests) -> list[str]:
    return [m.obj["metadata"]["name"] for m in manifests]


def test_multi_document_with_separators_and_empty_documents() -> None:
    text = "---\n" + SVC + "---\n---\n# only a comment\n---\n" + SVC.replace("web", "db") + "...\n"
    loaded = load_text(text, "x.yaml")
    assert names(loaded) == ["web", "db"]
    assert all(m.source == "x.yaml" for m in loaded)
    assert loaded[0].obj["spec"]["ports"] == [{"port": 80}]


def test_empty_file_has_no_objects() -> None:
    assert load_text("", "e.yaml") == []
    assert load_text("---\n---\n", "e.yaml") == []


def test_list_kind_is_expanded_recursively() -> None:
    text = json.dumps({"apiVersion": "v1", "kind": "List", "items": [
        {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "a"}},
        {"apiVersion": "v1", "kind": "List", "items": [
            {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "b"}}]},
    ]})
    assert names(load_text(text, "l.json")) == ["a", "b"]
    typed = "apiVersion: v1\nkind: ServiceList\nitems:\n- apiVersion: v1\n  kind: Service\n" \
            "  metadata: {name: c}\n"
    assert names(load_text(typed, "l.yaml")) == ["c"]


def test_json_document() -> None:
    obj = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "team"}}
    assert load_text(json.dumps(obj), "-")[0].obj == obj


def test_timestamps_stay_strings() -> None:
    text = SVC.replace("  name: web\n", "  name: web\n  annotations:\n    at: 2024-01-01T00:00:00Z\n"
                                          "    day: 2024-01-01\n")
    obj = load_text(text, "t.yaml")[0].obj
    assert obj["metadata"]["annotations"] == {"at": "2024-01-01T00:00:00Z", "day": "2024-01-01"}
    json.dumps(obj)  # nothing YAML-specific left in it


def test_bad_yaml_names_the_file_and_line() -> None:
    with pytest.raises(ManifestError) as info:
        load_text("apiVersion: v1\nkind: Service\nmetadata:\n  name: web\n  bad: : x\n", "bad.yaml")
    message = str(info.value)
    assert message.startswith("error parsing bad.yaml: yaml: line 5: ")
    assert "\n" not in message


def test_bad_json_file() -> None:
    with pytest.raises(ManifestError, match=r"^error parsing bad\.json: "):
        parse_documents('{"kind": ', "bad.json")


@pytest.mark.parametrize(("text", "message"), [
    ("- a\n- b\n", "expected a mapping, got list"),
    ("just a string\n", "expected a mapping, got str"),
    ("apiVersion: v1\nmetadata: {name: x}\n", "kind not set"),
    ("kind: Service\nmetadata: {name: x}\n", "apiVersion not set"),
    ("apiVersion: v1\nkind: Service\n", "metadata.name not set"),
    ("apiVersion: v1\nkind: Service\nmetadata: [1]\n", "metadata must be a mapping"),
])
def test_documents_that_are_not_objects(text: str, message: str) -> None:
    with pytest.raises(ManifestError, match=message):
        load_text(text, "m.yaml")


def test_generate_name_is_enough_to_load() -> None:
    text = "apiVersion: v1\nkind: Pod\nmetadata: {generateName: web-}\n"
    assert load_text(text, "g.yaml")[0].obj["metadata"] == {"generateName": "web-"}


def test_load_files_directories_and_stdin(tmp_path: Path) -> None:
    d = tmp_path / "manifests"
    d.mkdir()
    (d / "b.yaml").write_text(SVC.replace("web", "b"))
    (d / "a.yml").write_text(SVC.replace("web", "a"))
    (d / "c.json").write_text(json.dumps({"apiVersion": "v1", "kind": "Service",
                                          "metadata": {"name": "c"}}))
    (d / "notes.txt").write_text("not a manifest")
    (d / "sub").mkdir()
    single = tmp_path / "one.yaml"
    single.write_text(SVC)
    stdin = io.StringIO(SVC.replace("web", "from-stdin"))
    loaded = load([str(d), str(single), "-"], stdin=stdin)
    assert names(loaded) == ["a", "b", "c", "web", "from-stdin"]
    assert loaded[0].source == str(d / "a.yml")
    assert loaded[-1].source == "STDIN"


def test_missing_path_and_empty_directory(tmp_path: Path) -> None:
    with pytest.raises(ManifestError, match='the path ".*nope.yaml" does not exist'):
        load([str(tmp_path / "nope.yaml")])
    with pytest.raises(ManifestError, match="no .yaml, .yml or .json files"):
        load([str(tmp_path)])
