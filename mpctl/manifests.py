"""Loading manifests for ``apply -f`` / ``delete -f``: files, directories or ``-`` (stdin).

A file holds one or more YAML documents (``---`` separated) or JSON; empty documents
are skipped and ``kind: List`` documents are expanded into their items. Every
object must be a mapping with ``apiVersion``, ``kind`` and ``metadata.name``
(or ``metadata.generateName``). Errors are ``ManifestError`` with a message fit
for a user (``mpctl`` prints it after ``error:``).
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import yaml

MANIFEST_SUFFIXES = (".yaml", ".yml", ".json")


class ManifestError(ValueError):
    """A manifest could not be read or is not a Kubernetes object; message fit for a user."""


@dataclass(frozen=True)
class Manifest:
    """One object from a manifest file and where it came from (for messages)."""

    source: str
    obj: dict[str, Any]


class _Loader(yaml.SafeLoader):
    """SafeLoader that keeps timestamps as strings (as Kubernetes' YAML→JSON conversion does)."""


_Loader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


def _yaml_error(source: str, exc: yaml.YAMLError) -> ManifestError:
    mark = getattr(exc, "problem_mark", None)
    problem = getattr(exc, "problem", None) or str(exc)
    if mark is not None:
        return ManifestError(f"error parsing {source}: yaml: line {mark.line + 1}: {problem}")
    return ManifestError(f"error parsing {source}: yaml: {problem}")


def parse_documents(text: str, source: str = "<stdin>") -> list[Any]:
    """The non-empty documents of a YAML (or JSON) text, in order."""
    stripped = text.lstrip()
    if source.endswith(".json") or stripped.startswith(("{", "[")):
        try:
            doc = json.loads(text)
        except json.JSONDecodeError as exc:
            if source.endswith(".json"):
                raise ManifestError(f"error parsing {source}: {exc}") from None
        else:
            return [doc] if doc is not None else []
    try:
        return [doc for doc in yaml.load_all(text, Loader=_Loader) if doc is not None]
    except yaml.YAMLError as exc:
        raise _yaml_error(source, exc) from None


def expand(doc: Any, source: str, index: int) -> list[dict[str, Any]]:
    """Check one document and expand ``kind: List`` (recursively)."""
    where = f"{source} (document {index + 1})"
    if not isinstance(doc, dict):
        raise ManifestError(f"error parsing {where}: expected a mapping, got "
                            f"{type(doc).__name__}")
    kind = doc.get("kind")
    if kind == "List" or (isinstance(kind, str) and kind.endswith("List")
                          and isinstance(doc.get("items"), list)):
        items = doc.get("items") or []
        if not isinstance(items, list):
            raise ManifestError(f"error parsing {where}: items must be a list")
        out: list[dict[str, Any]] = []
        for item in items:
            out.extend(expand(item, source, index))
        return out
    if not kind or not isinstance(kind, str):
        raise ManifestError(f'error validating "{source}": error validating data: kind not set')
    if not doc.get("apiVersion") or not isinstance(doc.get("apiVersion"), str):
        raise ManifestError(
            f'error validating "{source}": error validating data: apiVersion not set')
    meta = doc.get("metadata")
    if meta is None:
        meta = doc["metadata"] = {}
    if not isinstance(meta, dict):
        raise ManifestError(f"error parsing {where}: metadata must be a mapping")
    if not meta.get("name") and not meta.get("generateName"):
        raise ManifestError(
            f'error validating "{source}": error validating data: metadata.name not set')
    return [doc]


def load_text(text: str, source: str) -> list[Manifest]:
    out: list[Manifest] = []
    for i, doc in enumerate(parse_documents(text, source)):
        out.extend(Manifest(source, obj) for obj in expand(doc, source, i))
    return out


def manifest_files(path: str) -> list[str]:
    """A file as given, or a directory's ``.yaml``/``.yml``/``.json`` files sorted by name."""
    if path == "-":
        return ["-"]
    if os.path.isdir(path):
        files = sorted(str(p) for p in Path(path).iterdir()
                       if p.is_file() and p.suffix.lower() in MANIFEST_SUFFIXES)
        if not files:
            raise ManifestError(f"error reading {path}: no .yaml, .yml or .json files")
        return files
    if not os.path.exists(path):
        raise ManifestError(f'the path "{path}" does not exist')
    return [path]


def load(paths: Iterable[str], stdin: IO[str] | None = None) -> list[Manifest]:
    """Every object of every ``-f`` argument, in order."""
    out: list[Manifest] = []
    for path in paths:
        for file in manifest_files(path):
            if file == "-":
                text = (stdin or sys.stdin).read()
                out.extend(load_text(text, "STDIN"))
                continue
            try:
                text = Path(file).read_text(encoding="utf-8")
            except (OSError, UnicodeDecodeError) as exc:
                raise ManifestError(f"error reading {file}: {exc}") from None
            out.extend(load_text(text, file))
    return out
