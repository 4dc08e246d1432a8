"""Node rules (Kubernetes ``ValidateNode``, ``ValidateNodeUpdate``).

A node agent registers its Node with a full ``status``, so status is judged on
every write, not only through ``/status``.
"""

from __future__ import annotations

from apimachinery import names
from apiserver.errors import FieldError, duplicate, forbidden, invalid
from apiserver.validation.fields import FieldErrors

TAINT_EFFECTS = ("NoSchedule", "PreferNoSchedule", "NoExecute")
ADDRESS_TYPES = ("Hostname", "InternalIP", "ExternalIP", "InternalDNS", "ExternalDNS")


def validate_spec(errs: FieldErrors, obj: dict, old: dict | None) -> None:
    spec = errs.obj(obj.get("spec"), "spec") or {}
    pod_cidr = errs.text(spec.get("podCIDR"), "spec.podCIDR")
    if pod_cidr and not errs.check(pod_cidr, "spec.podCIDR", names.is_valid_cidr):
        pod_cidr = None  # reported; comparing it with podCIDRs would only repeat that
    _check_pod_cidrs(errs, spec.get("podCIDRs"), pod_cidr)
    errs.boolean(spec.get("unschedulable"), "spec.unschedulable")
    for key in ("providerID", "externalID"):
        errs.text(spec.get(key), f"spec.{key}")
    check_taints(errs, spec.get("taints"), "spec.taints")
    validate_status(errs, obj, old)
    old_spec = old.get("spec") if isinstance(old, dict) else None
    if isinstance(old_spec, dict):
        _check_update(errs, spec, old_spec)


def _check_pod_cidrs(errs: FieldErrors, raw: object, pod_cidr: str | None) -> None:
    cidrs = list(errs.strings(raw, "spec.podCIDRs"))
    if pod_cidr and cidrs and cidrs[0][1] != pod_cidr:
        errs.append(invalid("spec.podCIDRs", raw, "first value must match `podCIDR`"))
    valid = [cidr for p, cidr in cidrs if errs.check(cidr, p, names.is_valid_cidr)]
    if len(valid) > 2 or (len(valid) == 2 and
                          names.ip_family(valid[0]) == names.ip_family(valid[1])):
        errs.append(invalid("spec.podCIDRs", raw,
                            "may specify no more than one CIDR for each IP family"))
    seen: set[str] = set()
    for p, cidr in cidrs:
        if cidr in seen:
            errs.append(duplicate(p, cidr))
        seen.add(cidr)


def check_taints(errs: FieldErrors, value: object, path: str) -> None:
    seen: set[tuple[str, str]] = set()
    for p, taint in errs.items(value, path):
        key = errs.required_text(taint.get("key"), f"{p}.key")
        if key:
            errs.check(key, f"{p}.key", names.is_qualified_name)
        taint_value = errs.text(taint.get("value"), f"{p}.value")
        if taint_value:
            errs.check(taint_value, f"{p}.value", names.is_valid_label_value)
        effect = errs.enum(taint.get("effect"), f"{p}.effect", TAINT_EFFECTS, required=True)
        errs.text(taint.get("timeAdded"), f"{p}.timeAdded")
        if key is not None and effect is not None:
            if (key, effect) in seen:
                errs.append(FieldError(p, "FieldValueDuplicate",
                                       "taints must be unique by key and effect pair",
                                       f"{key}:{effect}"))
            seen.add((key, effect))


def _check_update(errs: FieldErrors, spec: dict, old_spec: dict) -> None:
    """podCIDRs and providerID may go from unset to set, never change after."""
    old_cidrs = _cidrs(old_spec)
    if old_cidrs and _cidrs(spec) != old_cidrs:
        errs.append(forbidden("spec.podCIDRs",
                              'node updates may not change podCIDR except from "" to valid'))
    old_provider = old_spec.get("providerID")
    if old_provider and spec.get("providerID") != old_provider:
        errs.append(forbidden("spec.providerID",
                              'node updates may not change providerID except from "" to valid'))


def _cidrs(spec: dict) -> list:
    cidrs = spec.get("podCIDRs")
    if isinstance(cidrs, list) and cidrs:
        return cidrs
    return [spec["podCIDR"]] if spec.get("podCIDR") else []


def validate_status(errs: FieldErrors, obj: dict, old: dict | None) -> None:
    """Shape of what a node agent reports: conditions, addresses, capacity, endpoints."""
    status = errs.obj(obj.get("status"), "status") or {}
    errs.conditions(status.get("conditions"), "status.conditions")
    seen: list[tuple[str, str]] = []
    for p, address in errs.items(status.get("addresses"), "status.addresses"):
        kind = errs.enum(address.get("type"), f"{p}.type", ADDRESS_TYPES, required=True)
        value = errs.required_text(address.get("address"), f"{p}.address")
        if value and kind is not None:
            if (kind, value) in seen:
                errs.append(duplicate(p, f"{kind}: {value}"))
            seen.append((kind, value))
    for key in ("capacity", "allocatable", "nodeInfo"):
        errs.obj(status.get(key), f"status.{key}")
    endpoints = errs.obj(status.get("daemonEndpoints"), "status.daemonEndpoints") or {}
    kubelet = errs.obj(endpoints.get("kubeletEndpoint"),
                       "status.daemonEndpoints.kubeletEndpoint") or {}
    errs.port(kubelet.get("Port"), "status.daemonEndpoints.kubeletEndpoint.Port")
    errs.text(status.get("phase"), "status.phase")
    for _ in errs.items(status.get("images"), "status.images"):
        pass
