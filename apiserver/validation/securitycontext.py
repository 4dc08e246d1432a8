"""Pod and container ``securityContext`` rules (Kubernetes' ``ValidatePodSecurityContext``,
``ValidateSecurityContext``): the types and ranges the node agent and Pod Security
admission rely on, so neither has to guess at a malformed value."""

from __future__ import annotations

from typing import Any

from apiserver.errors import invalid, required
from apiserver.validation.fields import FieldErrors

MAX_ID = 2**31 - 1  # user and group ids: Kubernetes' IsValidUserID / IsValidGroupID
_ID_RANGE = f"must be between 0 and {MAX_ID}, inclusive"
SECCOMP_TYPES = ("Localhost", "RuntimeDefault", "Unconfined")
APPARMOR_TYPES = ("Localhost", "RuntimeDefault", "Unconfined")
PROC_MOUNT_TYPES = ("Default", "Unmasked")


def _id(errs: FieldErrors, value: Any, path: str) -> None:
    number = errs.integer(value, path)
    if number is not None and not 0 <= number <= MAX_ID:
        errs.append(invalid(path, number, _ID_RANGE))


def _common(errs: FieldErrors, sc: dict, path: str) -> None:
    """Fields both levels have."""
    for key in ("runAsUser", "runAsGroup"):
        _id(errs, sc.get(key), f"{path}.{key}")
    errs.boolean(sc.get("runAsNonRoot"), f"{path}.runAsNonRoot")
    _profile(errs, sc.get("seccompProfile"), f"{path}.seccompProfile", SECCOMP_TYPES)
    _profile(errs, sc.get("appArmorProfile"), f"{path}.appArmorProfile", APPARMOR_TYPES)
    options = errs.obj(sc.get("seLinuxOptions"), f"{path}.seLinuxOptions") or {}
    for key in ("user", "role", "type", "level"):
        errs.text(options.get(key), f"{path}.seLinuxOptions.{key}")


def _profile(errs: FieldErrors, value: Any, path: str, types: tuple[str, ...]) -> None:
    profile = errs.obj(value, path)
    if profile is None:
        return
    kind = errs.enum(profile.get("type"), f"{path}.type", types, required=True)
    local = errs.text(profile.get("localhostProfile"), f"{path}.localhostProfile")
    if kind == "Localhost" and not local:
        errs.append(required(f"{path}.localhostProfile",
                             "must be set when the profile type is Localhost"))
    elif kind and kind != "Localhost" and local:
        errs.append(invalid(f"{path}.localhostProfile", local,
                            "can only be set when profile type is Localhost"))


def check_pod_security_context(errs: FieldErrors, value: Any, path: str) -> None:
    sc = errs.obj(value, path)
    if sc is None:
        return
    _common(errs, sc, path)
    _id(errs, sc.get("fsGroup"), f"{path}.fsGroup")
    for i, group in enumerate(errs.seq(sc.get("supplementalGroups"),
                                       f"{path}.supplementalGroups") or ()):
        _id(errs, group, f"{path}.supplementalGroups[{i}]")
    for p, sysctl in errs.items(sc.get("sysctls"), f"{path}.sysctls"):
        errs.required_text(sysctl.get("name"), f"{p}.name")
        errs.text(sysctl.get("value"), f"{p}.value")


def check_container_security_context(errs: FieldErrors, value: Any, path: str) -> None:
    sc = errs.obj(value, path)
    if sc is None:
        return
    _common(errs, sc, path)
    for key in ("privileged", "allowPrivilegeEscalation", "readOnlyRootFilesystem"):
        errs.boolean(sc.get(key), f"{path}.{key}")
    errs.enum(sc.get("procMount"), f"{path}.procMount", PROC_MOUNT_TYPES)
    caps = errs.obj(sc.get("capabilities"), f"{path}.capabilities") or {}
    added = [c for _, c in errs.strings(caps.get("add"), f"{path}.capabilities.add")]
    for _ in errs.strings(caps.get("drop"), f"{path}.capabilities.drop"):
        pass
    if sc.get("allowPrivilegeEscalation") is False:
        if sc.get("privileged") is True:
            errs.append(invalid(path, sc, "cannot set `allowPrivilegeEscalation` to false and "
                                          "`privileged` to true"))
        if "CAP_SYS_ADMIN" in added or "SYS_ADMIN" in added:
            errs.append(invalid(path, sc, "cannot set `allowPrivilegeEscalation` to false and "
                                          "`capabilities.Add` CAP_SYS_ADMIN"))
