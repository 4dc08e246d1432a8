"""The served kinds' field layout: unknown-field checks and the OpenAPI v3 documents.

``schemas.json`` is generated from the official API models (``tools/gen_schemas.py``).
Two consumers: the write path, which drops fields the kind does not have (as
Kubernetes' typed decoding does) and, with ``fieldValidation=Strict``, rejects
them; and ``/openapi/v3``, whose per-group-version documents tell kubectl that
this server validates fields itself (a PATCH operation with the group-version-kind
extension and a ``fieldValidation`` parameter) and let ``kubectl explain`` work.
"""

from __future__ import annotations

import functools
import hashlib
import json
from pathlib import Path
from typing import Any

from apiserver.patch.schemas import FieldSchema
from apiserver.registry.strategy import Strategy
from apiserver.resources import REGISTRY, group_versions, in_group_version

_SCHEMA_FILE = Path(__file__).with_name("schemas.json")
_REF = "#/components/schemas/"


@functools.cache
def _data() -> dict[str, Any]:
    data = json.loads(_SCHEMA_FILE.read_text())
    for rt in REGISTRY:
        if rt.openapi_root is not None:
            _mark_patch_strategies(data["schemas"], rt.openapi_root, rt.patch_schema, set())
    return data


def _mark_patch_strategies(schemas: dict[str, Any], name: str, strategy: FieldSchema,
                           seen: set[tuple[str, int]]) -> None:
    """Copy strategic-merge list strategies onto the schemas as kubectl reads them.

    kubectl computes ``apply`` patches from these extensions when the server has an
    OpenAPI document; without them it would treat ``spec.ports`` as an atomic list
    while the server merges it by ``port``, and the two would disagree.
    """
    if (name, id(strategy)) in seen:
        return
    seen.add((name, id(strategy)))
    for prop_name, prop in schemas[name].get("properties", {}).items():
        child = strategy.child(prop_name)
        target = prop.get("items", prop)
        if child.merge and prop.get("type") == "array":
            prop["x-kubernetes-patch-strategy"] = "merge"
            if child.key:
                prop["x-kubernetes-patch-merge-key"] = child.key
        ref = target.get("$ref")
        if ref and child.fields:
            _mark_patch_strategies(schemas, ref[len(_REF):], child, seen)


def _schema(name: str) -> dict[str, Any]:
    return _data()["schemas"][name]


def unknown_fields(root: str | None, obj: Any, *, prune: bool = False) -> list[str]:
    """Paths of fields the model ``root`` (a strategy's ``openapi_root``) does not define
    (``spec.ports[0].bogus``), in document order; none when there is no model.

    With ``prune`` they are also removed from ``obj``. Maps and free-form values are
    not descended into; only typed objects have a fixed set of fields.
    """
    if root is None or not isinstance(obj, dict):
        return []
    found: list[str] = []
    _walk({"$ref": _REF + root}, obj, "", found, prune)
    return found


def _walk(fragment: dict[str, Any], value: Any, path: str, found: list[str],
          prune: bool) -> None:
    if "$ref" in fragment:
        schema = _schema(fragment["$ref"][len(_REF):])
        if not isinstance(value, dict):
            return  # a type mismatch is validation's business, not this walk's
        props = schema.get("properties", {})
        for key in list(value):
            where = f"{path}.{key}" if path else key
            if key not in props:
                found.append(where)
                if prune:
                    del value[key]
                continue
            _walk(props[key], value[key], where, found, prune)
    elif fragment.get("type") == "array" and isinstance(value, list):
        for i, item in enumerate(value):
            _walk(fragment["items"], item, f"{path}[{i}]", found, prune)
    elif fragment.get("type") == "object" and isinstance(value, dict) \
            and "additionalProperties" in fragment:
        for key, item in value.items():
            _walk(fragment["additionalProperties"], item, f"{path}[{key}]", found, prune)


# ------------------------------------------------------------------ OpenAPI v3 documents


def _gv_path(group: str, version: str) -> str:
    return f"apis/{group}/{version}" if group else f"api/{version}"


@functools.cache
def v3_document(group: str, version: str) -> dict[str, Any] | None:
    served = in_group_version(group, version)
    if not served:
        return None
    paths: dict[str, Any] = {}
    needed: set[str] = set()
    for rt in served:
        root = rt.openapi_root
        if root is None:
            continue
        needed.add(root)
        for path, ops in _operations(rt, root).items():
            paths[path] = ops
    schemas = {name: _schema(name) for name in sorted(_reachable(needed))}
    return {"openapi": "3.0.0",
            "info": {"title": "miniplane", "version": "v1.36.0-miniplane"},
            "paths": paths, "components": {"schemas": schemas}}


def _operations(rt: Strategy, root: str) -> dict[str, Any]:
    k = rt.kind
    gvk = {"group": k.group, "version": k.version, "kind": k.kind}
    body = {"content": {"application/json": {"schema": {"$ref": _REF + root}}}}
    reply = {"200": {"description": "OK", "content": {
        "application/json": {"schema": {"$ref": _REF + root}}}}}
    field_validation = {"name": "fieldValidation", "in": "query", "schema": {"type": "string"},
                        "description": "Ignore, Warn or Strict: what to do with unknown "
                                       "or duplicate fields."}
    field_manager = {"name": "fieldManager", "in": "query", "schema": {"type": "string"}}
    dry_run = {"name": "dryRun", "in": "query", "schema": {"type": "string"}}

    def op(verb: str, action: str, **extra: Any) -> dict[str, Any]:
        return {"operationId": f"{verb}{k.kind}", "x-kubernetes-action": action,
                "x-kubernetes-group-version-kind": gvk, "responses": reply, **extra}

    writes = [dry_run, field_manager, field_validation]
    prefix = "/" + _gv_path(k.group, k.version)
    scope = f"{prefix}/namespaces/{{namespace}}/{k.plural}" if k.namespaced \
        else f"{prefix}/{k.plural}"
    if not rt.stored:  # a review: create is all there is
        return {scope: {"post": op("create", "post", requestBody=body, parameters=writes)}}
    return {
        scope: {"get": op("list", "list"), "post": op("create", "post", requestBody=body,
                                                      parameters=writes)},
        f"{scope}/{{name}}": {
            "get": op("read", "get"),
            "put": op("replace", "put", requestBody=body, parameters=writes),
            "patch": op("patch", "patch", requestBody={"content": {
                t: {"schema": {"type": "object"}} for t in (
                    "application/json-patch+json", "application/merge-patch+json",
                    "application/strategic-merge-patch+json", "application/apply-patch+yaml")}},
                        parameters=writes + [{"name": "force", "in": "query",
                                              "schema": {"type": "boolean"}}]),
            "delete": op("delete", "delete"),
        },
    }


def _reachable(names: set[str]) -> set[str]:
    seen: set[str] = set()
    stack = list(names)
    while stack:
        name = stack.pop()
        if name in seen:
            continue
        seen.add(name)
        stack.extend(_refs(_schema(name)))
    return seen


def _refs(fragment: Any) -> list[str]:
    if isinstance(fragment, dict):
        out = [fragment["$ref"][len(_REF):]] if "$ref" in fragment else []
        for value in fragment.values():
            out += _refs(value)
        return out
    if isinstance(fragment, list):
        return [r for item in fragment for r in _refs(item)]
    return []


@functools.cache
def v3_index() -> dict[str, Any]:
    """``/openapi/v3``: one entry per group-version, addressed by a content hash."""
    paths = {}
    for group, version in group_versions():
        doc = v3_document(group, version)
        digest = hashlib.sha256(json.dumps(doc, sort_keys=True).encode()).hexdigest()[:32]
        gv = _gv_path(group, version)
        paths[gv] = {"serverRelativeURL": f"/openapi/v3/{gv}?hash={digest.upper()}"}
    return {"paths": paths}
