"""``metadata.managedFields``: which manager last wrote which fields.

A simplified server-side-apply bookkeeping: every write that names a
``fieldManager`` records (or replaces) that manager's entry, with the set of fields
its request contained in Kubernetes' FieldsV1 notation (``f:<field>`` for object
members, ``k:{...}`` for list items merged by key, ``v:<value>`` for set members).
Conflicts between managers are not detected; the entry is what ``kubectl`` and the
client libraries show.
"""

from __future__ import annotations

import json
from typing import Any

from apiserver.patch.schemas import FieldSchema

_SKIP = ("apiVersion", "kind")
_SERVER_META = ("uid", "resourceVersion", "generation", "creationTimestamp",
                "deletionTimestamp", "deletionGracePeriodSeconds", "managedFields", "name",
                "namespace", "generateName", "selfLink")


def field_set(schema: FieldSchema, doc: dict) -> dict[str, Any]:
    """The FieldsV1 set of the fields present in ``doc`` (a request body) of a kind whose
    list strategies are ``schema``."""
    out: dict[str, Any] = {}
    for key, value in doc.items():
        if key in _SKIP:
            continue
        if key == "metadata" and isinstance(value, dict):
            value = {k: v for k, v in value.items() if k not in _SERVER_META}
            if not value:
                continue
        out[f"f:{key}"] = _fields(value, schema.child(key))
    return out


def _fields(value: Any, schema: FieldSchema) -> dict[str, Any]:
    if isinstance(value, dict):
        return {f"f:{k}": _fields(v, schema.child(k)) for k, v in value.items()
                if not k.startswith("$")}
    if isinstance(value, list) and schema.merge:
        out: dict[str, Any] = {}
        for item in value:
            if schema.key and isinstance(item, dict) and schema.key in item:
                ident = json.dumps({schema.key: item[schema.key]}, separators=(",", ":"))
                out[f"k:{ident}"] = {".": {}, **_fields(item, schema)}
            elif not isinstance(item, dict | list):
                out[f"v:{json.dumps(item)}"] = {}
        return out
    return {}


def record(obj: dict, *, manager: str, operation: str, api_version: str, time: str,
           fields: dict[str, Any], subresource: str = "") -> None:
    """Set ``manager``'s entry (one per manager, operation and subresource) on ``obj``."""
    meta = obj.setdefault("metadata", {})
    entries = [e for e in meta.get("managedFields") or [] if isinstance(e, dict) and not (
        e.get("manager") == manager and e.get("operation") == operation
        and e.get("subresource", "") == subresource)]
    entry: dict[str, Any] = {"manager": manager, "operation": operation,
                             "apiVersion": api_version, "time": time,
                             "fieldsType": "FieldsV1", "fieldsV1": fields}
    if subresource:
        entry["subresource"] = subresource
    entries.append(entry)
    meta["managedFields"] = entries
