"""``meta.k8s.io/v1`` Table responses, the form ``kubectl get`` asks for.

kubectl sends ``Accept: application/json;as=Table;v=v1;g=meta.k8s.io, …`` and
prints the server's columns; ``priority: 1`` columns only with ``-o wide``. Each
kind's strategy names its table; the cells come from ``apimachinery.tables``, the
same functions mpctl prints with, so both tools show the same thing. Each row carries the object's metadata (a
``PartialObjectMetadata``), from which kubectl adds NAMESPACE and LABELS itself.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from apimachinery import tables
from apimachinery.kinds import Kind
from apiserver.errors import BadRequest
from apiserver.resources import by_kind

TABLE_MEDIA_TYPE = "application/json;as=Table;v=v1;g=meta.k8s.io"

_DESCRIPTIONS = {
    "NAME": "Name must be unique within a namespace.",
    "AGE": "CreationTimestamp is a timestamp representing the server time when this object "
           "was created.",
}


# metav1.IncludeObjectPolicy: what each row's ``object`` carries. kubectl asks for
# Object with --sort-by (it sorts on the rows' objects), Metadata otherwise.
INCLUDE_OBJECT = ("None", "Metadata", "Object")


@dataclass(frozen=True)
class TableRequest:
    """A request for a Table, and what its rows carry."""

    include_object: str = "Metadata"


def table_request(accept: str, params: Mapping[str, str]) -> TableRequest | None:
    """The Table asked for, or None for plain JSON; ``BadRequest`` for an unknown
    ``includeObject``."""
    if not wants_table(accept):
        return None
    include = params.get("includeObject") or "Metadata"
    if include not in INCLUDE_OBJECT:
        raise BadRequest(f'invalid includeObject "{include}": must be one of '
                         + ", ".join(INCLUDE_OBJECT))
    return TableRequest(include)


def wants_table(accept: str) -> bool:
    """True when the Accept header asks for a Table (kubectl get does; -o yaml does not)."""
    for part in accept.split(","):
        params = {p.strip().partition("=")[0]: p.strip().partition("=")[2]
                  for p in part.split(";")[1:]}
        if params.get("as") == "Table" and params.get("g") == "meta.k8s.io":
            return True
    return False


def _title(header: str) -> str:
    """kubectl upper-cases column names itself; send them as the real server does."""
    return "-".join(w.capitalize() for w in header.split("-")).replace("(S)", "(s)")


def column_definitions(spec: tables.TableSpec) -> list[dict[str, Any]]:
    """Every column in the ``-o wide`` order (the order of each row's cells); kubectl
    leaves out the priority-1 ones without ``-o wide``."""
    return [{"name": _title(name),
             "type": "string",  # RESTARTS too: "3 (5m ago)", as Kubernetes sends it
             "format": "name" if name == "NAME" else "",
             "description": _DESCRIPTIONS.get(name, ""),
             "priority": 0 if name in spec.columns else 1}
            for name in spec.header(wide=True)]


def row(spec: tables.TableSpec, obj: dict, now: datetime, include_object: str = "Metadata"
        ) -> dict[str, Any]:
    cells: list[Any] = spec.row(obj, now, True)
    if include_object == "None":
        return {"cells": cells}
    if include_object == "Object":
        return {"cells": cells, "object": obj}
    return {"cells": cells, "object": {"kind": "PartialObjectMetadata",
                                       "apiVersion": "meta.k8s.io/v1",
                                       "metadata": obj.get("metadata", {})}}


def table(kind: Kind, objects: Iterable[dict], now: datetime, *, resource_version: str = "",
          continue_token: str = "", request: TableRequest | None = None) -> dict[str, Any]:
    """The Table of ``objects`` of a served ``kind``, in the columns its strategy names."""
    spec = by_kind(kind).table
    metadata: dict[str, Any] = {}
    if resource_version:
        metadata["resourceVersion"] = resource_version
    if continue_token:
        metadata["continue"] = continue_token
    return {"kind": "Table", "apiVersion": "meta.k8s.io/v1", "metadata": metadata,
            "columnDefinitions": column_definitions(spec),
            "rows": [row(spec, o, now, (request or TableRequest()).include_object)
                     for o in objects]}

