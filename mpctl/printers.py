"""What ``mpctl get`` prints: tables laid out as kubectl does, and -o yaml/json/name.

The columns and cells come from ``apimachinery.tables`` (shared with the API server's
Table responses); this module lays them out and formats whole objects.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

import yaml

from apimachinery.kinds import Kind
from apimachinery.tables import name_of, resource_name, table_rows

from .tabwriter import TableWriter


def print_table(kind: Kind, objects: Iterable[Mapping[str, Any]], now: datetime,
                **options: bool) -> str:
    """The whole table text as ``kubectl get`` prints it (ends with a newline)."""
    return TableWriter().format(table_rows(kind, objects, now, **options))


def no_resources_message(namespace: str | None, namespaced: bool) -> str:
    """kubectl's line on stderr for an empty list."""
    if namespaced and namespace:
        return f"No resources found in {namespace} namespace."
    return "No resources found"


# --------------------------------------------------------------------------- -o yaml/json/name

def clean_object(obj: Mapping[str, Any], kind: Kind | None = None) -> dict[str, Any]:
    """A copy fit for printing: ``kind``/``apiVersion`` filled in (list items lack them),
    ``metadata.managedFields`` hidden as kubectl does by default."""
    out: dict[str, Any] = {}
    if kind is not None:
        out["apiVersion"] = obj.get("apiVersion") or kind.api_version
        out["kind"] = obj.get("kind") or kind.kind
    out.update({k: v for k, v in obj.items() if k not in out})
    meta = out.get("metadata")
    if isinstance(meta, dict) and "managedFields" in meta:
        out["metadata"] = {k: v for k, v in meta.items() if k != "managedFields"}
    return out


def as_list(items: list[dict[str, Any]]) -> dict[str, Any]:
    """The ``kind: List`` wrapper kubectl prints for several objects."""
    return {"apiVersion": "v1", "items": items, "kind": "List",
            "metadata": {"resourceVersion": ""}}


class _Dumper(yaml.SafeDumper):
    pass


def _str_presenter(dumper: yaml.SafeDumper, data: str) -> yaml.Node:
    if "\n" in data:
        return dumper.represent_scalar("tag:yaml.org,2002:str", data, style="|")
    if dumper.resolve(yaml.ScalarNode, data, (True, False)) != "tag:yaml.org,2002:str":
        # would read back as a number, bool, null or timestamp: quote it, as kubectl does
        return dumper.represent_scalar("tag:yaml.org,2002:str", data, style='"')
    return dumper.represent_scalar("tag:yaml.org,2002:str", data)


_Dumper.add_representer(str, _str_presenter)


def to_yaml(obj: Any) -> str:
    """YAML like kubectl's: keys sorted, block style, lists not indented under their key."""
    return yaml.dump(obj, Dumper=_Dumper, sort_keys=True, default_flow_style=False,
                     allow_unicode=True, width=float("inf"))


def to_json(obj: Any) -> str:
    """JSON like kubectl's: 4-space indent, ends with a newline."""
    return json.dumps(obj, indent=4, ensure_ascii=False) + "\n"


def to_name(kind: Kind, obj: Mapping[str, Any]) -> str:
    return f"{resource_name(kind)}/{name_of(obj)}"
