"""Pods: created Pending, bound to a node through ``pods/binding``, deleted gracefully.

A bound pod that has not finished is only marked on DELETE (for
``terminationGracePeriodSeconds`` or the request's ``gracePeriodSeconds``); its
node agent stops it and finishes the deletion. An unbound or finished pod goes at once.
"""

from __future__ import annotations

from apimachinery import kinds, names, tables
from apimachinery.pods import qos_class
from apiserver import objects
from apiserver.defaults import DEFAULT_TERMINATION_GRACE_SECONDS, default_pod
from apiserver.errors import Conflict, Invalid, NotFound, required
from apiserver.objects import meta
from apiserver.patch.schemas import CONDITIONS, METADATA, merge_by, struct
from apiserver.registry.strategy import Action, Strategy, WriteContext
from apiserver.validation import Rules, pod

_CONTAINER = {
    "ports": merge_by("containerPort"),
    "env": merge_by("name"),
    "volumeMounts": merge_by("mountPath"),
    "volumeDevices": merge_by("devicePath"),
}

PATCH_SCHEMA = struct(
    metadata=METADATA,
    spec=struct(
        containers=merge_by("name", **_CONTAINER),
        initContainers=merge_by("name", **_CONTAINER),
        ephemeralContainers=merge_by("name", **_CONTAINER),
        volumes=merge_by("name"),
        imagePullSecrets=merge_by("name"),
        hostAliases=merge_by("ip"),
        topologySpreadConstraints=merge_by("topologyKey"),
        resourceClaims=merge_by("name"),
        schedulingGates=merge_by("name"),
    ),
    status=struct(
        conditions=CONDITIONS,
        podIPs=merge_by("ip"),
        hostIPs=merge_by("ip"),
        resourceClaimStatuses=merge_by("name"),
    ),
)


def bind(ctx: WriteContext, namespace: str, name: str, binding: dict) -> dict:
    """``POST pods/<name>/binding``: set the pod's node, once, and mark it scheduled."""
    target = binding.get("target") if isinstance(binding, dict) else None
    node = target.get("name") if isinstance(target, dict) else None
    if not isinstance(node, str) or not node:
        raise Invalid("Binding", name, [required("target.name")])
    pod_obj = ctx.txn.get(STRATEGY.key, namespace, name)
    if pod_obj is None:
        raise NotFound.of("pods", name)
    spec = pod_obj.setdefault("spec", {})
    if spec.get("nodeName"):
        raise Conflict(f'Operation cannot be fulfilled on pods/binding "{name}": pod '
                       f'{name} is already assigned to node "{spec["nodeName"]}"',
                       details={"name": name, "kind": "pods/binding"})
    if meta(pod_obj).get("deletionTimestamp"):
        raise Conflict(f'Operation cannot be fulfilled on pods/binding "{name}": pod '
                       f"{name} is being deleted, cannot be assigned to a host",
                       details={"name": name, "kind": "pods/binding"})
    old = objects.deep_copy(pod_obj)
    spec["nodeName"] = node
    conditions = [c for c in (pod_obj.setdefault("status", {}).get("conditions") or [])
                  if isinstance(c, dict) and c.get("type") != "PodScheduled"]
    conditions.append({"type": "PodScheduled", "status": "True",
                       "lastTransitionTime": objects.rfc3339(objects.now())})
    pod_obj["status"]["conditions"] = conditions
    ctx.put(STRATEGY, namespace, pod_obj, old)
    return objects.success("pods", name)


class PodStrategy(Strategy):
    kind = kinds.POD
    rules = Rules(names.is_dns1123_subdomain, pod.validate_spec, pod.validate_status)
    extra_fields = ("spec.nodeName", "status.phase", "status.podIP", "spec.restartPolicy",
                    "spec.schedulerName")
    return_deleted = True
    actions = {"binding": Action("Binding", bind, openapi_root="V1Binding")}
    table = tables.POD_TABLE
    patch_schema = PATCH_SCHEMA
    openapi_root = "V1Pod"

    def default(self, obj: dict) -> None:
        default_pod(obj)

    def prepare_for_create(self, obj: dict) -> None:
        super().prepare_for_create(obj)
        obj["status"] = {"phase": "Pending", "qosClass": qos_class(obj.get("spec"))}

    def grace_period(self, obj: dict, asked: int | None) -> int:
        spec = obj.get("spec") or {}
        phase = (obj.get("status") or {}).get("phase")
        if not spec.get("nodeName") or phase in ("Succeeded", "Failed"):
            return 0  # nothing runs it, or it has finished: nobody to wait for
        if asked is not None:
            return max(0, int(asked))
        return int(spec.get("terminationGracePeriodSeconds",
                            DEFAULT_TERMINATION_GRACE_SECONDS) or 0)


STRATEGY = PodStrategy()
