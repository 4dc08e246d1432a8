"""Nodes: registered by their agent, whose status is kept as it was sent."""

from __future__ import annotations

from apimachinery import kinds, names, tables
from apiserver.defaults import default_node
from apiserver.patch.schemas import CONDITIONS, MERGE_SET, METADATA, merge_by, struct
from apiserver.registry.strategy import Strategy
from apiserver.validation import Rules, node


class NodeStrategy(Strategy):
    kind = kinds.NODE
    rules = Rules(names.is_dns1123_subdomain, node.validate_spec, node.validate_status)
    extra_fields = ("spec.unschedulable",)
    table = tables.NODE_TABLE
    patch_schema = struct(
        metadata=METADATA,
        spec=struct(podCIDRs=MERGE_SET),
        status=struct(conditions=CONDITIONS, addresses=merge_by("type")),
    )
    openapi_root = "V1Node"

    def default(self, obj: dict) -> None:
        default_node(obj)


STRATEGY = NodeStrategy()
