"""Per-kind list merge strategies for strategic merge patch.

Kubernetes reads these from Go struct tags (``patchStrategy:"merge" patchMergeKey:"..."``
in ``k8s.io/api/core/v1/types.go``); we have no Go types, so the tags for the kinds we
serve are transcribed here. A field not described is a map (merged recursively) or an
atomic list (replaced whole), exactly like JSON merge patch.
"""

from collections.abc import Mapping
from dataclasses import dataclass, field


@dataclass(frozen=True, eq=False)
class FieldSchema:
    """Patch metadata of one field; ``fields`` describe its members (or its list elements).

    ``merge`` with ``key`` is a list of objects merged by that key; ``merge`` without a key
    is a set of primitives (union); no ``merge`` means an atomic list.
    """

    merge: bool = False
    key: str | None = None
    fields: Mapping[str, "FieldSchema"] = field(default_factory=dict)

    def child(self, name: str) -> "FieldSchema":
        return self.fields.get(name, ATOMIC)


ATOMIC = FieldSchema()
MERGE_SET = FieldSchema(merge=True)


def struct(**fields: FieldSchema) -> FieldSchema:
    """An object whose listed members have special strategies."""
    return FieldSchema(fields=fields)


def merge_by(key: str, **fields: FieldSchema) -> FieldSchema:
    """A list of objects merged by ``key``; ``fields`` describe each element."""
    return FieldSchema(merge=True, key=key, fields=fields)


_METADATA = struct(finalizers=MERGE_SET, ownerReferences=merge_by("uid"))
_CONDITIONS = merge_by("type")

_CONTAINER = {
    "ports": merge_by("containerPort"),
    "env": merge_by("name"),
    "volumeMounts": merge_by("mountPath"),
    "volumeDevices": merge_by("devicePath"),
}

_POD_SPEC = struct(
    containers=merge_by("name", **_CONTAINER),
    initContainers=merge_by("name", **_CONTAINER),
    ephemeralContainers=merge_by("name", **_CONTAINER),
    volumes=merge_by("name"),
    imagePullSecrets=merge_by("name"),
    hostAliases=merge_by("ip"),
    topologySpreadConstraints=merge_by("topologyKey"),
    resourceClaims=merge_by("name"),
    schedulingGates=merge_by("name"),
)

_POD_STATUS = struct(
    conditions=_CONDITIONS,
    podIPs=merge_by("ip"),
    hostIPs=merge_by("ip"),
    resourceClaimStatuses=merge_by("name"),
)

KINDS: Mapping[str, FieldSchema] = {
    "Pod": struct(metadata=_METADATA, spec=_POD_SPEC, status=_POD_STATUS),
    "Service": struct(
        metadata=_METADATA,
        spec=struct(ports=merge_by("port")),
        status=struct(conditions=_CONDITIONS),
    ),
    "Node": struct(
        metadata=_METADATA,
        spec=struct(podCIDRs=MERGE_SET),
        status=struct(conditions=_CONDITIONS, addresses=merge_by("type")),
    ),
    "Namespace": struct(metadata=_METADATA, status=struct(conditions=_CONDITIONS)),
    "EndpointSlice": struct(metadata=_METADATA),
    "Event": struct(metadata=_METADATA),
}

_DEFAULT = struct(metadata=_METADATA)


def schema_for(kind: str) -> FieldSchema:
    """The schema of ``kind``; unknown kinds still get the ObjectMeta strategies."""
    return KINDS.get(kind, _DEFAULT) if isinstance(kind, str) else _DEFAULT
