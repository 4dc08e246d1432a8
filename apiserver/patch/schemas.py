"""List merge strategies for strategic merge patch, and the pieces every kind shares.

Kubernetes reads these from Go struct tags (``patchStrategy:"merge" patchMergeKey:"..."``
in ``k8s.io/api/core/v1/types.go``); we have no Go types, so each kind's strategy
(``apiserver/registry/<kind>.py``) transcribes its tags as a ``FieldSchema`` built from
these helpers. A field not described is a map (merged recursively) or an atomic list
(replaced whole), exactly like JSON merge patch.
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


# ObjectMeta's strategies, which every kind's schema starts from.
METADATA = struct(finalizers=MERGE_SET, ownerReferences=merge_by("uid"))
# ``conditions`` lists, merged by their type (Pod, Node, Namespace and Service statuses).
CONDITIONS = merge_by("type")
# A kind with no list strategies of its own.
DEFAULT = struct(metadata=METADATA)
