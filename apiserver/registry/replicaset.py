"""ReplicaSets (apps/v1): keep ``spec.replicas`` pods from a template; the controller does the keeping.

The pod template is defaulted and validated as a Pod is (``defaults``,
``validation/workload.py``); its containers patch by name as a Pod's do. ``/status``
is the controller's, ``/scale`` the replica count (``apiserver/scale.py``).
"""

from __future__ import annotations

from apimachinery import kinds, tables
from apiserver.defaults import default_replicaset
from apiserver.patch.schemas import CONDITIONS, METADATA, struct
from apiserver.registry import pod as pod_registry
from apiserver.registry.strategy import Strategy
from apiserver.validation import Rules, replicaset

# A workload's spec.template is a Pod's metadata and spec: the same list strategies.
TEMPLATE_PATCH_SCHEMA = struct(metadata=METADATA, spec=pod_registry.PATCH_SCHEMA.child("spec"))
WORKLOAD_PATCH_SCHEMA = struct(metadata=METADATA, spec=struct(template=TEMPLATE_PATCH_SCHEMA),
                               status=struct(conditions=CONDITIONS))


class ReplicaSetStrategy(Strategy):
    kind = kinds.REPLICASET
    rules = Rules(spec=replicaset.validate_spec, status=replicaset.validate_status)
    extra_fields = ("status.replicas",)  # Kubernetes' ReplicaSetToSelectableFields
    table = tables.REPLICASET_TABLE
    patch_schema = WORKLOAD_PATCH_SCHEMA
    openapi_root = "V1ReplicaSet"

    def default(self, obj: dict) -> None:
        default_replicaset(obj)


STRATEGY = ReplicaSetStrategy()
