"""Pod Security admission: the privileged / baseline / restricted levels, per namespace.

A namespace picks a level per mode with labels, as in Kubernetes:

    pod-security.kubernetes.io/enforce=<level>   refuse pods that violate it
    pod-security.kubernetes.io/warn=<level>      answer with ``Warning:`` headers
    pod-security.kubernetes.io/audit=<level>     log the violation
    pod-security.kubernetes.io/<mode>-version=latest|v1.N

Unlabelled modes take the server's default (``--pod-security-default`` for
enforce; privileged for warn and audit, as kube-apiserver's defaults). An
unparseable enforce level counts as restricted (fail closed), warn and audit as
privileged (fail open), exactly as ``PolicyToEvaluate`` does; a Namespace write
with a bad label is refused as Invalid.

Pod controllers (Deployments, ReplicaSets) have their pod template judged at the
warn and audit levels only, as Kubernetes does: the pods they create meet enforce.

The checks are pure functions of the pod (``evaluate``), worded as
k8s.io/pod-security-admission words them, in its order: the baseline checks,
then either baseline's overlapping checks or the restricted ones. Only the
checks for fields a Linux pod has are here (no Windows hostProcess), and every
version label is judged by the latest policy.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from apiserver.admission import CREATE, UPDATE, Attributes
from apiserver.errors import FieldError, Invalid, invalid

if TYPE_CHECKING:
    from apiserver.storage.store import Txn

log = logging.getLogger(__name__)

PRIVILEGED, BASELINE, RESTRICTED = "privileged", "baseline", "restricted"
LEVELS = (PRIVILEGED, BASELINE, RESTRICTED)
LABEL_PREFIX = "pod-security.kubernetes.io/"
LATEST = "latest"
_VERSION = re.compile(r"^v1\.(0|[1-9][0-9]*)$")


# ---------------------------------------------------------------------------- policy


@dataclass(frozen=True)
class LevelVersion:
    level: str
    version: str = LATEST

    def __str__(self) -> str:
        return f"{self.level}:{self.version}"


@dataclass(frozen=True)
class Policy:
    enforce: LevelVersion
    audit: LevelVersion
    warn: LevelVersion

    @classmethod
    def default(cls, enforce: str = PRIVILEGED) -> Policy:
        """The server's defaults: ``enforce`` at the given level, warn and audit privileged."""
        if enforce not in LEVELS:
            raise ValueError(f"pod security level must be one of {', '.join(LEVELS)}, "
                             f"not {enforce!r}")
        return cls(LevelVersion(enforce), LevelVersion(PRIVILEGED), LevelVersion(PRIVILEGED))


def _level(value: str) -> tuple[str, str | None]:
    if value in LEVELS:
        return value, None
    return RESTRICTED, f"must be one of {', '.join(LEVELS)}"


def _version(value: str) -> tuple[str, str | None]:
    if value == LATEST or _VERSION.match(value):
        return value, None
    return LATEST, 'must be "latest" or "v1.x"'


def policy_for(labels: Mapping[str, Any] | None, default: Policy) -> tuple[Policy, list[FieldError]]:
    """A namespace's policy from its labels, and the errors of labels that don't parse."""
    errors: list[FieldError] = []
    modes = {"enforce": default.enforce, "audit": default.audit, "warn": default.warn}
    for mode, current in list(modes.items()):
        level, version = current.level, current.version
        raw_level = (labels or {}).get(LABEL_PREFIX + mode)
        if isinstance(raw_level, str):
            level, problem = _level(raw_level)
            if problem:
                errors.append(invalid(f"metadata.labels[{LABEL_PREFIX}{mode}]", raw_level,
                                      problem))
                if mode != "enforce":
                    level = PRIVILEGED  # fail open for warn and audit
        raw_version = (labels or {}).get(f"{LABEL_PREFIX}{mode}-version")
        if isinstance(raw_version, str):
            version, problem = _version(raw_version)
            if problem:
                errors.append(invalid(f"metadata.labels[{LABEL_PREFIX}{mode}-version]",
                                      raw_version, problem))
        modes[mode] = LevelVersion(level, version)
    return Policy(modes["enforce"], modes["audit"], modes["warn"]), errors


# ---------------------------------------------------------------------------- checks


@dataclass(frozen=True)
class Violation:
    """One failed check: its short reason and the detail naming what is at fault."""

    reason: str
    detail: str = ""


def _dict(value: Any) -> dict:
    return value if isinstance(value, dict) else {}


def _list(value: Any) -> list:
    return value if isinstance(value, list) else []


def _containers(spec: dict) -> Iterator[dict]:
    """Init containers, containers, ephemeral containers: the order Kubernetes visits."""
    for key in ("initContainers", "containers", "ephemeralContainers"):
        for c in _list(spec.get(key)):
            if isinstance(c, dict):
                yield c


def _name(c: dict) -> str:
    return str(c.get("name") or "")


def _sc(c: dict) -> dict:
    return _dict(c.get("securityContext"))


def _join_quote(items: list[str]) -> str:
    return ", ".join(f'"{i}"' for i in items)


def _plural(singular: str, plural: str, count: int) -> str:
    return singular if count == 1 else plural


def _containers_phrase(names: list[str]) -> str:
    return f'{_plural("container", "containers", len(names))} {_join_quote(names)}'


def _go_quote(value: str) -> str:
    """Go's ``%q`` for the plain strings these messages hold."""
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


Check = Callable[[dict, dict], Violation | None]  # (metadata, spec) → violation


def host_namespaces(_meta: dict, spec: dict) -> Violation | None:
    used = sorted(k for k in ("hostNetwork", "hostPID", "hostIPC") if spec.get(k) is True)
    return Violation("host namespaces", ", ".join(used)) if used else None


def privileged(_meta: dict, spec: dict) -> Violation | None:
    bad = [_name(c) for c in _containers(spec) if _sc(c).get("privileged") is True]
    if bad:
        return Violation("privileged",
                         f"{_containers_phrase(bad)} must not set securityContext.privileged=true")
    return None


BASELINE_CAPABILITIES = frozenset((
    "AUDIT_WRITE", "CHOWN", "DAC_OVERRIDE", "FOWNER", "FSETID", "KILL", "MKNOD",
    "NET_BIND_SERVICE", "SETFCAP", "SETGID", "SETPCAP", "SETUID", "SYS_CHROOT"))


def capabilities_baseline(_meta: dict, spec: dict) -> Violation | None:
    bad: list[str] = []
    caps: set[str] = set()
    for c in _containers(spec):
        added = [str(a) for a in _list(_dict(_sc(c).get("capabilities")).get("add"))]
        extra = [a for a in added if a not in BASELINE_CAPABILITIES]
        if extra:
            bad.append(_name(c))
            caps.update(extra)
    if bad:
        return Violation("non-default capabilities",
                         f"{_containers_phrase(bad)} must not include "
                         f"{_join_quote(sorted(caps))} in securityContext.capabilities.add")
    return None


def host_path_volumes(_meta: dict, spec: dict) -> Violation | None:
    names = [str(_dict(v).get("name") or "") for v in _list(spec.get("volumes"))
             if _dict(v).get("hostPath") is not None]
    if names:
        return Violation("hostPath volumes",
                         f'{_plural("volume", "volumes", len(names))} {_join_quote(names)}')
    return None


def host_ports(_meta: dict, spec: dict) -> Violation | None:
    bad: list[str] = []
    ports: set[str] = set()
    for c in _containers(spec):
        used = [str(p.get("hostPort")) for p in _list(c.get("ports"))
                if isinstance(p, dict) and p.get("hostPort") not in (None, 0)]
        if used:
            bad.append(_name(c))
            ports.update(used)
    if bad:
        return Violation("hostPort", f'{_containers_phrase(bad)} '
                                     f'{_plural("uses", "use", len(bad))} '
                                     f'{_plural("hostPort", "hostPorts", len(ports))} '
                                     f'{", ".join(sorted(ports))}')
    return None


_APPARMOR_ANNOTATION = "container.apparmor.security.beta.kubernetes.io/"
_APPARMOR_TYPES = ("RuntimeDefault", "Localhost")


def app_armor(meta: dict, spec: dict) -> Violation | None:
    setters: list[str] = []
    values: set[str] = set()
    pod_profile = _dict(spec.get("securityContext")).get("appArmorProfile")
    if isinstance(pod_profile, dict) and pod_profile.get("type") not in _APPARMOR_TYPES:
        setters.append("pod")
        values.add(str(pod_profile.get("type") or ""))
    bad: list[str] = []
    for c in _containers(spec):
        profile = _sc(c).get("appArmorProfile")
        if isinstance(profile, dict) and profile.get("type") not in _APPARMOR_TYPES:
            bad.append(_name(c))
            values.add(str(profile.get("type") or ""))
    if bad:
        setters.append(_containers_phrase(bad))
    annotations = sorted(
        f"{k}={_go_quote(str(v))}" for k, v in _dict(meta.get("annotations")).items()
        if k.startswith(_APPARMOR_ANNOTATION)
        and not (v in ("", "runtime/default") or str(v).startswith("localhost/")))
    shown = sorted(values) + annotations
    if annotations:
        setters.append(_plural("annotation", "annotations", len(annotations)))
    if setters:
        return Violation(_plural("forbidden AppArmor profile", "forbidden AppArmor profiles",
                                 len(shown)),
                         f'{" and ".join(setters)} must not set AppArmor profile type to '
                         f"{_join_quote(shown)}")
    return None


_SELINUX_TYPES = ("", "container_t", "container_init_t", "container_kvm_t")


def se_linux(_meta: dict, spec: dict) -> Violation | None:
    setters: list[str] = []
    bad_types: set[str] = set()
    flags = {"user": False, "role": False}

    def valid(opts: dict) -> bool:
        ok = True
        kind = str(opts.get("type") or "")
        if kind not in _SELINUX_TYPES:
            ok = False
            bad_types.add(kind)
        for key in ("user", "role"):
            if opts.get(key):
                ok = False
                flags[key] = True
        return ok

    pod_sc = _dict(spec.get("securityContext"))
    if isinstance(pod_sc.get("seLinuxOptions"), dict) and not valid(pod_sc["seLinuxOptions"]):
        setters.append("pod")
    bad = [_name(c) for c in _containers(spec)
           if isinstance(_sc(c).get("seLinuxOptions"), dict) and not valid(_sc(c)["seLinuxOptions"])]
    if bad:
        setters.append(_containers_phrase(bad))
    if not setters:
        return None
    data: list[str] = []
    if bad_types:  # Kubernetes names user and role only beside a bad type
        data.append(f'{_plural("type", "types", len(bad_types))} {_join_quote(sorted(bad_types))}')
        if flags["user"]:
            data.append("user may not be set")
        if flags["role"]:
            data.append("role may not be set")
    return Violation("seLinuxOptions", f'{" and ".join(setters)} set forbidden '
                                       f'securityContext.seLinuxOptions: {"; ".join(data)}')


def proc_mount(_meta: dict, spec: dict) -> Violation | None:
    bad: list[str] = []
    kinds: set[str] = set()
    for c in _containers(spec):
        value = _sc(c).get("procMount")
        if value is not None and value != "Default":
            bad.append(_name(c))
            kinds.add(str(value))
    if bad:
        return Violation("procMount", f"{_containers_phrase(bad)} must not set "
                                      f"securityContext.procMount to {_join_quote(sorted(kinds))}")
    return None


def _valid_seccomp(profile: dict) -> bool:
    return profile.get("type") in ("RuntimeDefault", "Localhost")


def _seccomp(spec: dict, *, required: bool) -> Violation | None:
    setters: list[str] = []
    values: set[str] = set()
    pod_set = False
    pod_profile = _dict(spec.get("securityContext")).get("seccompProfile")
    if isinstance(pod_profile, dict):
        if _valid_seccomp(pod_profile):
            pod_set = True
        else:
            setters.append("pod")
            values.add(str(pod_profile.get("type") or ""))
    explicit: list[str] = []
    implicit: list[str] = []
    for c in _containers(spec):
        profile = _sc(c).get("seccompProfile")
        if isinstance(profile, dict):
            if not _valid_seccomp(profile):
                explicit.append(_name(c))
                values.add(str(profile.get("type") or ""))
        elif not pod_set:
            implicit.append(_name(c))
    if explicit:
        setters.append(_containers_phrase(explicit))
    if setters:
        return Violation("seccompProfile", f'{" and ".join(setters)} must not set '
                                           f"securityContext.seccompProfile.type to "
                                           f"{_join_quote(sorted(values))}")
    if required and implicit:
        return Violation("seccompProfile", f"pod or {_containers_phrase(implicit)} must set "
                                           'securityContext.seccompProfile.type to '
                                           '"RuntimeDefault" or "Localhost"')
    return None


def seccomp_baseline(_meta: dict, spec: dict) -> Violation | None:
    return _seccomp(spec, required=False)


def seccomp_restricted(_meta: dict, spec: dict) -> Violation | None:
    return _seccomp(spec, required=True)


SAFE_SYSCTLS = frozenset((
    "kernel.shm_rmid_forced", "net.ipv4.ip_local_port_range", "net.ipv4.tcp_syncookies",
    "net.ipv4.ping_group_range", "net.ipv4.ip_unprivileged_port_start",
    "net.ipv4.ip_local_reserved_ports", "net.ipv4.tcp_keepalive_time",
    "net.ipv4.tcp_fin_timeout", "net.ipv4.tcp_keepalive_intvl",
    "net.ipv4.tcp_keepalive_probes"))


def sysctls(_meta: dict, spec: dict) -> Violation | None:
    bad = [str(_dict(s).get("name")) for s in
           _list(_dict(spec.get("securityContext")).get("sysctls"))
           if _dict(s).get("name") not in SAFE_SYSCTLS]
    return Violation("forbidden sysctls", ", ".join(bad)) if bad else None


def allow_privilege_escalation(_meta: dict, spec: dict) -> Violation | None:
    bad = [_name(c) for c in _containers(spec) if _sc(c).get("allowPrivilegeEscalation") is not False]
    if bad:
        return Violation("allowPrivilegeEscalation != false",
                         f"{_containers_phrase(bad)} must set "
                         "securityContext.allowPrivilegeEscalation=false")
    return None


def capabilities_restricted(_meta: dict, spec: dict) -> Violation | None:
    missing_drop: list[str] = []
    adding: list[str] = []
    caps: set[str] = set()
    for c in _containers(spec):
        capabilities = _sc(c).get("capabilities")
        if not isinstance(capabilities, dict):
            missing_drop.append(_name(c))
            continue
        if "ALL" not in _list(capabilities.get("drop")):
            missing_drop.append(_name(c))
        extra = [str(a) for a in _list(capabilities.get("add")) if a != "NET_BIND_SERVICE"]
        if extra:
            adding.append(_name(c))
            caps.update(extra)
    details: list[str] = []
    if missing_drop:
        details.append(f'{_containers_phrase(missing_drop)} must set '
                       'securityContext.capabilities.drop=["ALL"]')
    if adding:
        details.append(f"{_containers_phrase(adding)} must not include "
                       f"{_join_quote(sorted(caps))} in securityContext.capabilities.add")
    return Violation("unrestricted capabilities", "; ".join(details)) if details else None


# Volume types the restricted level allows (everything else is node- or host-backed).
_RESTRICTED_VOLUME_TYPES = ("configMap", "csi", "downwardAPI", "emptyDir", "ephemeral",
                            "persistentVolumeClaim", "projected", "secret")


def restricted_volumes(_meta: dict, spec: dict) -> Violation | None:
    names = sorted({str(_dict(v).get("name") or "") for v in _list(spec.get("volumes"))
                    if not any(_dict(v).get(t) is not None for t in _RESTRICTED_VOLUME_TYPES)})
    if names:
        shown = "[" + " ".join(_go_quote(n) for n in names) + "]"
        return Violation("restricted volume types", f"volumes {shown} have restricted types")
    return None


def run_as_non_root(_meta: dict, spec: dict) -> Violation | None:
    setters: list[str] = []
    pod_value = _dict(spec.get("securityContext")).get("runAsNonRoot")
    if pod_value is False:
        setters.append("pod")
    explicit: list[str] = []
    implicit: list[str] = []
    for c in _containers(spec):
        value = _sc(c).get("runAsNonRoot")
        if value is None:
            if pod_value is not True:
                implicit.append(_name(c))
        elif value is False:
            explicit.append(_name(c))
    if explicit:
        setters.append(_containers_phrase(explicit))
    if setters:
        return Violation("runAsNonRoot != true", f'{" and ".join(setters)} must not set '
                                                 "securityContext.runAsNonRoot=false")
    if implicit:
        return Violation("runAsNonRoot != true", f"pod or {_containers_phrase(implicit)} must "
                                                 "set securityContext.runAsNonRoot=true")
    return None


def run_as_user(_meta: dict, spec: dict) -> Violation | None:
    setters: list[str] = []
    if _is_zero(_dict(spec.get("securityContext")).get("runAsUser")):
        setters.append("pod")
    bad = [_name(c) for c in _containers(spec) if _is_zero(_sc(c).get("runAsUser"))]
    if bad:
        setters.append(_containers_phrase(bad))
    if setters:
        return Violation("runAsUser=0", f'{" and ".join(setters)} must not set runAsUser=0')
    return None


def _is_zero(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value == 0


# In Kubernetes' order (its check files, alphabetically): baseline checks every level
# above privileged runs; "overlapping" baseline checks that a restricted one replaces;
# restricted checks.
BASELINE_CHECKS: tuple[Check, ...] = (app_armor, host_namespaces, host_ports, privileged,
                                      proc_mount, se_linux, sysctls)
OVERLAPPING_BASELINE_CHECKS: tuple[Check, ...] = (capabilities_baseline, host_path_volumes,
                                                  seccomp_baseline)
RESTRICTED_CHECKS: tuple[Check, ...] = (allow_privilege_escalation, capabilities_restricted,
                                        restricted_volumes, run_as_non_root, run_as_user,
                                        seccomp_restricted)


def evaluate(level: str, pod: dict) -> list[Violation]:
    """The checks ``pod`` fails at ``level`` (none at privileged)."""
    if level == PRIVILEGED:
        return []
    meta, spec = _dict(pod.get("metadata")), _dict(pod.get("spec"))
    checks = BASELINE_CHECKS + (OVERLAPPING_BASELINE_CHECKS if level == BASELINE
                                else RESTRICTED_CHECKS)
    return [v for v in (check(meta, spec) for check in checks) if v is not None]


def forbidden_detail(violations: list[Violation]) -> str:
    """``reason (detail), reason (detail)``: Kubernetes' ``AggregateCheckResult``."""
    return ", ".join(f"{v.reason} ({v.detail})" if v.detail else v.reason for v in violations)


def forbidden_reasons(violations: list[Violation]) -> str:
    return ", ".join(v.reason for v in violations)


# ---------------------------------------------------------------------------- plugin

# (group, resource) of the kinds whose pod template is judged (warn and audit only).
POD_CONTROLLERS = frozenset({("apps", "deployments"), ("apps", "replicasets")})


@dataclass(frozen=True)
class PodSecurity:
    """The validating plugin: Pods against their namespace's policy, Namespaces' labels."""

    default: Policy

    def validate(self, attrs: Attributes, txn: Txn) -> None:
        if (attrs.group, attrs.resource) in POD_CONTROLLERS and not attrs.subresource:
            self._pod_controller(attrs, txn)
            return
        if attrs.group:
            return
        if attrs.resource == "namespaces" and not attrs.subresource:
            self._namespace(attrs, txn)
        elif attrs.resource == "pods" and not attrs.subresource:
            self._pod(attrs, txn)

    def _namespace(self, attrs: Attributes, txn: Txn) -> None:
        if attrs.operation not in (CREATE, UPDATE) or attrs.obj is None:
            return
        labels = _dict(_dict(attrs.obj.get("metadata")).get("labels"))
        policy, errors = policy_for(labels, self.default)
        if attrs.operation == UPDATE:
            old_labels = _dict(_dict(_dict(attrs.old).get("metadata")).get("labels"))
            if all(labels.get(k) == old_labels.get(k) for k in set(labels) | set(old_labels)
                   if k.startswith(LABEL_PREFIX)):
                return  # the policy labels did not change: nothing to judge
        if errors:
            raise Invalid("Namespace", attrs.name, errors)
        if attrs.operation == UPDATE:
            old_policy, _ = policy_for(
                _dict(_dict(_dict(attrs.old).get("metadata")).get("labels")), self.default)
            if policy.enforce != old_policy.enforce and policy.enforce.level != PRIVILEGED:
                attrs.warnings.extend(existing_pod_warnings(
                    attrs.name, policy.enforce, txn.list("pods", attrs.name)))

    def _policy(self, attrs: Attributes, txn: Txn) -> Policy:
        namespace = txn.get("namespaces", "", attrs.namespace) or {}
        policy, problems = policy_for(_dict(_dict(namespace.get("metadata")).get("labels")),
                                      self.default)
        if problems:
            log.warning("namespace %s has invalid PodSecurity labels; enforcing %s",
                        attrs.namespace, policy.enforce)
        return policy

    def _pod_controller(self, attrs: Attributes, txn: Txn) -> None:
        """``ValidatePodController``: the template at warn and audit, when it changed."""
        if attrs.operation not in (CREATE, UPDATE) or attrs.obj is None:
            return
        template = _dict(_dict(attrs.obj.get("spec")).get("template"))
        if attrs.operation == UPDATE and \
                template == _dict(_dict(_dict(attrs.old).get("spec")).get("template")):
            return
        policy = self._policy(attrs, txn)
        audited = evaluate(policy.audit.level, template)
        if audited:
            log.info("audit: %s %s/%s would violate PodSecurity %s: %s", attrs.resource,
                     attrs.namespace, attrs.name, policy.audit, forbidden_detail(audited))
        warned = evaluate(policy.warn.level, template)
        if warned:
            attrs.warnings.append(f'would violate PodSecurity "{policy.warn}": '
                                  f"{forbidden_detail(warned)}")

    def _pod(self, attrs: Attributes, txn: Txn) -> None:
        pod = attrs.obj
        if attrs.operation not in (CREATE, UPDATE) or pod is None:
            return
        if attrs.operation == UPDATE and not is_significant_update(pod, attrs.old or {}):
            return
        policy = self._policy(attrs, txn)
        results: dict[LevelVersion, list[Violation]] = {}

        def judged(lv: LevelVersion) -> list[Violation]:
            if lv not in results:
                results[lv] = evaluate(lv.level, pod)
            return results[lv]

        enforced = judged(policy.enforce)
        if enforced:
            raise attrs.forbidden(f'violates PodSecurity "{policy.enforce}": '
                                  f"{forbidden_detail(enforced)}")
        audited = judged(policy.audit)
        if audited:
            log.info("audit: pods %s/%s would violate PodSecurity %s: %s", attrs.namespace,
                     attrs.name, policy.audit, forbidden_detail(audited))
        warned = judged(policy.warn)
        if warned:
            attrs.warnings.append(f'would violate PodSecurity "{policy.warn}": '
                                  f"{forbidden_detail(warned)}")


def is_significant_update(pod: dict, old: dict) -> bool:
    """Whether a pod update is judged again: Kubernetes re-checks only a change of a
    container's image (the only security-relevant spec field an update may change)."""
    spec, old_spec = _dict(pod.get("spec")), _dict(old.get("spec"))
    for key in ("initContainers", "containers"):
        new_list, old_list = _list(spec.get(key)), _list(old_spec.get(key))
        if len(new_list) != len(old_list):
            return True
        if any(_dict(a).get("image") != _dict(b).get("image")
               for a, b in zip(new_list, old_list, strict=True)):
            return True
    return False


def existing_pod_warnings(namespace: str, enforce: LevelVersion, pods: list[dict]) -> list[str]:
    """The warnings of a Namespace update that tightens enforcement over pods it holds."""
    first: dict[str, str] = {}
    counts: dict[str, int] = {}
    for pod in pods:
        violations = evaluate(enforce.level, pod)
        if not violations:
            continue
        reason = forbidden_reasons(violations)
        first.setdefault(reason, str(_dict(pod.get("metadata")).get("name") or ""))
        counts[reason] = counts.get(reason, 0) + 1
    if not first:
        return []
    out = [f'existing pods in namespace "{namespace}" violate the new PodSecurity enforce '
           f'level "{enforce}"']
    for reason, name in first.items():
        others = counts[reason] - 1
        if others:
            out.append(f'{name} (and {others} other {_plural("pod", "pods", others)}): {reason}')
        else:
            out.append(f"{name}: {reason}")
    return out
