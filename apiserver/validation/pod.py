"""Pod rules (Kubernetes ``ValidatePodSpec``, ``ValidatePodUpdate``, ``…StatusUpdate``).

A pod's spec is fixed once created, except the few fields Kubernetes lets an update
change; scheduling (``spec.nodeName``) goes through the binding subresource, never
through an update. Status belongs to the node agent and is judged only on
``/status`` writes (the server resets it on create).
"""

from __future__ import annotations

from typing import Any

from apimachinery import names
from apiserver.errors import duplicate, forbidden, invalid, not_supported, required
from apiserver.validation.container import PodScope, check_containers
from apiserver.validation.fields import FieldErrors, is_int
from apiserver.validation.meta import check_labels
from apiserver.validation.node import TAINT_EFFECTS
from apiserver.validation.securitycontext import check_pod_security_context

RESTART_POLICIES = ("Always", "OnFailure", "Never")
DNS_POLICIES = ("ClusterFirst", "ClusterFirstWithHostNet", "Default", "None")
PHASES = ("Pending", "Running", "Succeeded", "Failed", "Unknown")
TOLERATION_OPERATORS = ("Equal", "Exists")
SYSTEM_CONDITIONS = ("PodScheduled", "Ready", "Initialized")
MAX_INT32 = 2**31 - 1
MAX_NAMESERVERS, MAX_SEARCHES = 3, 32
MAX_SEARCH_CHARS = 2048  # the whole search line, spaces included (kubelet's limit)
UPDATABLE_FIELDS = ("`spec.containers[*].image`", "`spec.initContainers[*].image`",
                    "`spec.activeDeadlineSeconds`",
                    "`spec.tolerations` (only additions to existing tolerations)",
                    "`spec.terminationGracePeriodSeconds` (allow it to be set to 1 if it was "
                    "previously negative)")
_SHOWN_CHANGES = 5


# ---------------------------------------------------------------------------- spec


def validate_spec(errs: FieldErrors, obj: dict, old: dict | None) -> None:
    spec = errs.obj(obj.get("spec"), "spec") or {}
    scope = PodScope(host_network=spec.get("hostNetwork") is True)
    if spec.get("containers") in (None, []):
        errs.append(required("spec.containers", ""))
    check_containers(errs, spec.get("initContainers"), "spec.initContainers", scope, init=True)
    check_containers(errs, spec.get("containers"), "spec.containers", scope, init=False)
    errs.enum(spec.get("restartPolicy"), "spec.restartPolicy", RESTART_POLICIES, required=True)
    dns_policy = errs.enum(spec.get("dnsPolicy"), "spec.dnsPolicy", DNS_POLICIES, required=True)
    _check_dns_config(errs, spec.get("dnsConfig"), dns_policy)
    for key, rule in (("nodeName", names.is_dns1123_subdomain),
                      ("hostname", names.is_dns1123_label),
                      ("subdomain", names.is_dns1123_label),
                      ("schedulerName", names.is_dns1123_subdomain),
                      ("serviceAccountName", names.is_dns1123_subdomain),
                      ("priorityClassName", names.is_dns1123_subdomain)):
        text = errs.text(spec.get(key), f"spec.{key}")
        if text:
            errs.check(text, f"spec.{key}", rule)
    check_labels(errs, spec.get("nodeSelector"), "spec.nodeSelector")
    errs.at_least(spec.get("terminationGracePeriodSeconds"), "spec.terminationGracePeriodSeconds", 0)
    deadline = errs.integer(spec.get("activeDeadlineSeconds"), "spec.activeDeadlineSeconds")
    if deadline is not None and not 1 <= deadline <= MAX_INT32:
        errs.append(invalid("spec.activeDeadlineSeconds", deadline,
                            names.inclusive_range_error(1, MAX_INT32)))
    for key in ("hostNetwork", "hostPID", "hostIPC", "enableServiceLinks",
                "automountServiceAccountToken", "shareProcessNamespace", "setHostnameAsFQDN"):
        errs.boolean(spec.get(key), f"spec.{key}")
    errs.integer(spec.get("priority"), "spec.priority")
    check_pod_security_context(errs, spec.get("securityContext"), "spec.securityContext")
    errs.obj(spec.get("affinity"), "spec.affinity")
    check_tolerations(errs, spec.get("tolerations"), "spec.tolerations")
    _check_volumes(errs, spec.get("volumes"), "spec.volumes")
    _check_host_aliases(errs, spec.get("hostAliases"), "spec.hostAliases")
    old_spec = old.get("spec") if isinstance(old, dict) else None
    if isinstance(old_spec, dict):
        _check_update(errs, spec, old_spec)


def _check_dns_config(errs: FieldErrors, value: Any, dns_policy: str | None) -> None:
    path = "spec.dnsConfig"
    config = errs.obj(value, path)
    if config is None:
        if dns_policy == "None" and value is None:
            errs.append(required(path, "must provide `dnsConfig` when `dnsPolicy` is None"))
        return
    servers = errs.seq(config.get("nameservers"), f"{path}.nameservers")
    if dns_policy == "None" and not servers and config.get("nameservers") in (None, []):
        errs.append(required(f"{path}.nameservers",
                             "must provide at least one DNS nameserver when `dnsPolicy` is None"))
    if servers and len(servers) > MAX_NAMESERVERS:
        errs.append(invalid(f"{path}.nameservers", servers,
                            f"must not have more than {MAX_NAMESERVERS} nameservers"))
    for p, server in errs.strings(servers, f"{path}.nameservers"):
        errs.check(server, p, names.is_valid_ip)
    searches = errs.seq(config.get("searches"), f"{path}.searches")
    if searches and len(searches) > MAX_SEARCHES:
        errs.append(invalid(f"{path}.searches", searches,
                            f"must not have more than {MAX_SEARCHES} search paths"))
    texts = [s for s in searches or [] if isinstance(s, str)]
    if len(" ".join(texts)) > MAX_SEARCH_CHARS:
        errs.append(invalid(f"{path}.searches", searches,
                            f"must not have more than {MAX_SEARCH_CHARS} characters "
                            "(including spaces) in the search list"))
    for p, search in errs.strings(searches, f"{path}.searches"):
        errs.check(search.removesuffix("."), p, names.is_dns1123_subdomain)
    for p, option in errs.items(config.get("options"), f"{path}.options"):
        errs.required_text(option.get("name"), f"{p}.name", "Option.Name must not be empty")
        errs.text(option.get("value"), f"{p}.value")


def check_tolerations(errs: FieldErrors, value: Any, path: str) -> None:
    for p, tol in errs.items(value, path):
        key = errs.text(tol.get("key"), f"{p}.key")
        if key:
            errs.check(key, f"{p}.key", names.is_qualified_name)
        operator = errs.text(tol.get("operator"), f"{p}.operator")
        effect = errs.text(tol.get("effect"), f"{p}.effect")
        toleration_value = errs.text(tol.get("value"), f"{p}.value")
        if not key and operator != "Exists":
            errs.append(invalid(f"{p}.operator", operator, "operator must be Exists when `key` "
                                'is empty, which means "match all values and all keys"'))
        if errs.integer(tol.get("tolerationSeconds"), f"{p}.tolerationSeconds") is not None \
                and effect != "NoExecute":
            errs.append(invalid(f"{p}.effect", effect,
                                "effect must be 'NoExecute' when `tolerationSeconds` is set"))
        if operator in (None, "", "Equal"):
            if toleration_value:
                errs.check(toleration_value, f"{p}.value", names.is_valid_label_value)
        elif operator == "Exists":
            if toleration_value:
                errs.append(invalid(f"{p}.operator", tol,
                                    "value must be empty when `operator` is 'Exists'"))
        else:
            errs.append(not_supported(f"{p}.operator", operator, list(TOLERATION_OPERATORS)))
        if effect:
            errs.enum(effect, f"{p}.effect", TAINT_EFFECTS)


def _check_volumes(errs: FieldErrors, value: Any, path: str) -> None:
    seen: set[str] = set()
    for p, volume in errs.items(value, path):
        name = errs.required_text(volume.get("name"), f"{p}.name")
        if name and errs.check(name, f"{p}.name", names.is_dns1123_label):
            if name in seen:
                errs.append(duplicate(f"{p}.name", name))
            seen.add(name)


def _check_host_aliases(errs: FieldErrors, value: Any, path: str) -> None:
    for p, alias in errs.items(value, path):
        ip = errs.text(alias.get("ip"), f"{p}.ip")
        if ip is not None or alias.get("ip") is None:
            errs.check(ip or "", f"{p}.ip", names.is_valid_ip)
        for q, hostname in errs.strings(alias.get("hostnames"), f"{p}.hostnames"):
            errs.check(hostname, q, names.is_dns1123_subdomain)


# ---------------------------------------------------------------------------- update


def _check_update(errs: FieldErrors, spec: dict, old_spec: dict) -> None:
    """Only images, a shorter deadline and added tolerations may change (``ValidatePodUpdate``)."""
    for key in ("containers", "initContainers"):
        new, old = spec.get(key), old_spec.get(key)
        if isinstance(new, list) and isinstance(old, list) and len(new) != len(old):
            errs.append(forbidden(f"spec.{key}", "pod updates may not add or remove containers"))
            return
    _check_deadline_update(errs, spec.get("activeDeadlineSeconds"),
                           old_spec.get("activeDeadlineSeconds"))
    _check_toleration_update(errs, spec.get("tolerations"), old_spec.get("tolerations"))
    munged = _with_updatable_fields_of(spec, old_spec)
    if munged != old_spec:
        changed = _changed_paths(old_spec, munged, "spec")
        shown = ", ".join(changed[:_SHOWN_CHANGES]) + (", …" if len(changed) > _SHOWN_CHANGES
                                                        else "")
        errs.append(forbidden("spec", "pod updates may not change fields other than "
                              + ",".join(UPDATABLE_FIELDS) + (f"\nchanged: {shown}" if shown
                                                              else "")))


def _with_updatable_fields_of(spec: dict, old_spec: dict) -> dict:
    """``spec`` with every field an update may change set back to its old value."""
    munged = dict(spec)
    for key in ("containers", "initContainers"):
        new, old = spec.get(key), old_spec.get(key)
        if isinstance(new, list) and isinstance(old, list):
            munged[key] = [_with_image_of(c, o) for c, o in zip(new, old, strict=True)]
    for key in ("activeDeadlineSeconds", "tolerations"):
        if key in old_spec:
            munged[key] = old_spec[key]
        else:
            munged.pop(key, None)
    old_grace = old_spec.get("terminationGracePeriodSeconds")
    if is_int(old_grace) and old_grace < 0 and spec.get("terminationGracePeriodSeconds") == 1:
        munged["terminationGracePeriodSeconds"] = old_grace
    return munged


def _with_image_of(container: Any, old: Any) -> Any:
    if not isinstance(container, dict) or not isinstance(old, dict):
        return container
    munged = dict(container)
    if "image" in old:
        munged["image"] = old["image"]
    else:
        munged.pop("image", None)
    return munged


def _check_deadline_update(errs: FieldErrors, new: Any, old: Any) -> None:
    path = "spec.activeDeadlineSeconds"
    if not is_int(old):
        return
    if new is None:
        errs.append(invalid(path, None, "must not update from a positive integer to nil value"))
    elif is_int(new) and new > old:
        errs.append(invalid(path, new, "must be less than or equal to previous value"))


def _check_toleration_update(errs: FieldErrors, new: Any, old: Any) -> None:
    """Existing tolerations stay (only their tolerationSeconds may change); more may be added."""
    if not isinstance(old, list):
        return
    current = [_without_seconds(t) for t in new] if isinstance(new, list) else []
    if any(_without_seconds(t) not in current for t in old):
        errs.append(forbidden("spec.tolerations",
                              "existing toleration can not be modified except its "
                              "tolerationSeconds"))


def _without_seconds(toleration: Any) -> Any:
    if isinstance(toleration, dict):
        return {k: v for k, v in toleration.items() if k != "tolerationSeconds"}
    return toleration


def _changed_paths(old: Any, new: Any, path: str, depth: int = 0) -> list[str]:
    """Where two JSON values differ, as field paths: enough to tell a user what to undo."""
    if old == new:
        return []
    if depth < 8 and isinstance(old, dict) and isinstance(new, dict):
        out: list[str] = []
        for key in sorted(set(old) | set(new), key=str):
            out += _changed_paths(old.get(key), new.get(key), f"{path}.{key}", depth + 1)
        return out
    if depth < 8 and isinstance(old, list) and isinstance(new, list) and len(old) == len(new):
        out = []
        for i, (a, b) in enumerate(zip(old, new, strict=True)):
            out += _changed_paths(a, b, f"{path}[{i}]", depth + 1)
        return out
    return [path]


# ---------------------------------------------------------------------------- status


def validate_status(errs: FieldErrors, obj: dict, old: dict | None) -> None:
    """What a node agent writes: phase, conditions, addresses, container statuses."""
    status = errs.obj(obj.get("status"), "status") or {}
    errs.enum(status.get("phase"), "status.phase", PHASES)
    errs.conditions(status.get("conditions"), "status.conditions", _condition_type)
    _check_ips(errs, status, "podIP", "podIPs")
    _check_ips(errs, status, "hostIP", "hostIPs")
    for key in ("initContainerStatuses", "containerStatuses", "ephemeralContainerStatuses"):
        for p, cs in errs.items(status.get(key), f"status.{key}"):
            errs.required_text(cs.get("name"), f"{p}.name")
            for flag in ("ready", "started"):
                errs.boolean(cs.get(flag), f"{p}.{flag}")
            errs.at_least(cs.get("restartCount"), f"{p}.restartCount", 0)
            for text in ("image", "imageID", "containerID"):
                errs.text(cs.get(text), f"{p}.{text}")
            for state in ("state", "lastState"):
                errs.obj(cs.get(state), f"{p}.{state}")
    for key in ("message", "reason", "nominatedNodeName", "qosClass", "startTime"):
        errs.text(status.get(key), f"status.{key}")


def _condition_type(kind: str) -> list[str]:
    """Kubernetes' own condition types are exempt; others must be qualified names."""
    return [] if kind in SYSTEM_CONDITIONS else names.is_qualified_name(kind)


def _check_ips(errs: FieldErrors, status: dict, single: str, plural: str) -> None:
    """``podIP`` + ``podIPs`` (or host…): valid, one per family, the list led by the single."""
    ip = errs.text(status.get(single), f"status.{single}")
    if ip and not errs.check(ip, f"status.{single}", names.is_valid_ip):
        ip = None  # reported; comparing it with the list would only repeat that
    raw = status.get(plural)
    listed: list[str] = []
    for p, entry in errs.items(raw, f"status.{plural}"):
        value = errs.text(entry.get("ip"), f"{p}.ip")
        if value is None:
            if entry.get("ip") is None:
                errs.append(required(f"{p}.ip", ""))
        elif errs.check(value, f"{p}.ip", names.is_valid_ip):
            if value in listed:
                errs.append(duplicate(f"{p}.ip", value))
            else:
                listed.append(value)
    if len(listed) > 2 or (len(listed) == 2 and
                           names.ip_family(listed[0]) == names.ip_family(listed[1])):
        errs.append(invalid(f"status.{plural}", raw,
                            "may specify no more than one IP for each IP family"))
    if ip and listed and listed[0] != ip:
        errs.append(invalid(f"status.{plural}", raw, f"first value must match `{single}`"))
