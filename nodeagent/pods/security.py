"""A container's effective securityContext, and the argv that applies it. Pure.

``effective_security(pod, container)`` merges the pod's ``securityContext`` with the
container's (the container's field wins, as in Kubernetes) into ``Security``, or
raises ``ConfigError`` (the kubelet's ``CreateContainerConfigError``): a bad value,
an unknown capability, or ``runAsNonRoot`` when the container would run as root.

``launch_argv`` is the argv that runs the command that way, with existing tools
and no shell:

    ip netns exec NS                         the pod's network (and a mount namespace)
      nsenter --uts=FILE                     the pod's hostname (its UTS namespace)
      unshare --mount --propagation private  only when there is something to mount:
        python -I -m nodeagent.pods.launch   the mounts (``mount_args``), then exec
      setpriv --reuid --regid --groups|--clear-groups --inh-caps -all
              --ambient-caps -all --bounding-set -all,+… [--no-new-privs]
        env -i -- K=V…                       the container's environment, applied last
          COMMAND ARGS

Everything before ``env`` runs as root with a fixed, minimal environment, so a
pod's ``LD_PRELOAD`` or ``PYTHONPATH`` never reaches a root process; the price is
that the environment appears in ``env``'s argv (``/proc/PID/cmdline``) for the
instant between its exec and the command's.

What a container gets:

- The image's user is unknown here (``image`` is recorded, not pulled), so the
  default user is root (uid 0, gid 0) with Kubernetes' default container
  capability set, not all of root's: no CAP_SYS_ADMIN, CAP_NET_ADMIN,
  CAP_SYS_PTRACE, CAP_DAC_READ_SEARCH, CAP_SYS_MODULE… Root still owns the host's
  files (CAP_DAC_OVERRIDE, CAP_FOWNER are in the default set): only a non-root
  ``runAsUser`` keeps a pod off files it does not own.
- ``runAsUser`` without ``runAsGroup``: the user's primary group from the host's
  passwd database (the host is the image), else 0, as containerd does.
- Supplementary groups: ``supplementalGroups`` plus ``fsGroup``; nothing else (the
  image's /etc/group memberships are not looked up).
- Capabilities are the bounding set. A root container also has them permitted and
  effective (the kernel gives root its bounding set at exec); a non-root one has
  none effective, as in Kubernetes, where ``add`` does not reach non-root users.
- ``privileged``: every capability the agent has, and no_new_privs stays off.
- ``allowPrivilegeEscalation: false`` sets no_new_privs: setuid binaries and file
  capabilities grant nothing.
- ``readOnlyRootFilesystem``: every mount in the container's mount namespace is
  remounted read-only (bind remounts keep nosuid/nodev/noexec; the host's mounts
  are untouched), except /proc, /dev/shm, /dev/pts and /dev/mqueue. /tmp is part
  of the root filesystem here, so it is read-only too, as in Kubernetes without an
  emptyDir. Device nodes in /dev stay usable (a read-only mount does not stop
  writes to a device), and the container's log still works: stdout and stderr are
  files the agent opened before the remount.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

# Linux capabilities in kernel order (bit N is ALL_CAPABILITIES[N]), up to
# CAP_CHECKPOINT_RESTORE (5.9). setpriv skips ones the kernel or the agent lacks.
ALL_CAPABILITIES = (
    "CHOWN", "DAC_OVERRIDE", "DAC_READ_SEARCH", "FOWNER", "FSETID", "KILL", "SETGID",
    "SETUID", "SETPCAP", "LINUX_IMMUTABLE", "NET_BIND_SERVICE", "NET_BROADCAST",
    "NET_ADMIN", "NET_RAW", "IPC_LOCK", "IPC_OWNER", "SYS_MODULE", "SYS_RAWIO",
    "SYS_CHROOT", "SYS_PTRACE", "SYS_PACCT", "SYS_ADMIN", "SYS_BOOT", "SYS_NICE",
    "SYS_RESOURCE", "SYS_TIME", "SYS_TTY_CONFIG", "MKNOD", "LEASE", "AUDIT_WRITE",
    "AUDIT_CONTROL", "SETFCAP", "MAC_OVERRIDE", "MAC_ADMIN", "SYSLOG", "WAKE_ALARM",
    "BLOCK_SUSPEND", "AUDIT_READ", "PERFMON", "BPF", "CHECKPOINT_RESTORE")

# What containerd and CRI-O give a container unless told otherwise.
DEFAULT_CAPABILITIES = frozenset({
    "CHOWN", "DAC_OVERRIDE", "FSETID", "FOWNER", "MKNOD", "NET_RAW", "SETGID", "SETUID",
    "SETFCAP", "SETPCAP", "NET_BIND_SERVICE", "SYS_CHROOT", "KILL", "AUDIT_WRITE"})

# Where in-cluster clients (client-go, the Python client) look for their credentials.
SERVICE_ACCOUNT_MOUNT = "/var/run/secrets/kubernetes.io/serviceaccount"

# Mounts that stay writable under readOnlyRootFilesystem (and their submounts):
# what a container runtime gives every container apart from its root filesystem.
WRITABLE_MOUNTS = ("/proc", "/dev/shm", "/dev/pts", "/dev/mqueue")

MAX_ID = 2**31 - 1  # Kubernetes' limit for uids and gids
DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
# The environment of the root part of a launch: nothing a pod chose.
ROOT_ENV = {"PATH": DEFAULT_PATH}


class ConfigError(ValueError):
    """The container can't be configured (``CreateContainerConfigError``); the message
    is the one the pod's status shows."""


@dataclass(frozen=True)
class Security:
    """How one container runs: identity, capabilities (bounding set), flags."""

    uid: int = 0
    gid: int = 0
    groups: tuple[int, ...] = ()
    capabilities: frozenset[str] = DEFAULT_CAPABILITIES
    no_new_privs: bool = False
    read_only_root: bool = False
    privileged: bool = False


def _id(value: Any, field: str) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_ID:
        raise ConfigError(f"{field}: invalid value {value!r}: must be between 0 and {MAX_ID}")
    return value


def _flag(value: Any, field: str) -> bool | None:
    if value is None or isinstance(value, bool):
        return value
    raise ConfigError(f"{field}: invalid value {value!r}: must be a boolean")


def _context(obj: Mapping[str, Any], field: str) -> Mapping[str, Any]:
    sc = obj.get("securityContext")
    if sc is None:
        return {}
    if not isinstance(sc, Mapping):
        raise ConfigError(f"{field}: must be an object")
    return sc


def capability_name(name: Any, field: str) -> str:
    """``net_admin`` / ``CAP_NET_ADMIN`` / ``NET_ADMIN`` → ``NET_ADMIN``; ``ALL`` stays."""
    if not isinstance(name, str):
        raise ConfigError(f"{field}: invalid value {name!r}: must be a string")
    upper = name.upper()
    if upper.startswith("CAP_"):
        upper = upper[4:]
    if upper != "ALL" and upper not in ALL_CAPABILITIES:
        raise ConfigError(f"{field}: unknown capability {name!r}")
    return upper


def effective_capabilities(capabilities: Mapping[str, Any] | None, *, field: str
                           ) -> frozenset[str]:
    """The default set, then ``add: [ALL]`` → all, ``drop: [ALL]`` → none, then the
    named adds, then the named drops (containerd's order: so ``drop: [ALL]`` with
    ``add: [NET_BIND_SERVICE]`` keeps exactly that one)."""
    caps = dict(capabilities or {})
    add = [capability_name(c, f"{field}.add") for c in caps.get("add") or []]
    drop = [capability_name(c, f"{field}.drop") for c in caps.get("drop") or []]
    result = set(DEFAULT_CAPABILITIES)
    if "ALL" in add:
        result = set(ALL_CAPABILITIES)
    if "ALL" in drop:
        result = set()
    result |= {c for c in add if c != "ALL"}
    result -= {c for c in drop if c != "ALL"}
    return frozenset(result)


def pod_label(pod: Mapping[str, Any]) -> str:
    """The kubelet's ``format.Pod``: ``name_namespace(uid)``."""
    meta = pod.get("metadata") or {}
    return f"{meta.get('name', '')}_{meta.get('namespace', 'default')}({meta.get('uid', '')})"


def effective_security(pod: Mapping[str, Any], container: Mapping[str, Any], *,
                       primary_gid: Callable[[int], int | None] = lambda _uid: None
                       ) -> Security:
    """The container's ``Security``; ``ConfigError`` when it must not start.

    ``primary_gid(uid)`` is the user's group when ``runAsGroup`` is not set (the
    runtime passes a passwd lookup; None means 0).
    """
    name = container.get("name", "")
    psc = _context(pod.get("spec") or {}, "spec.securityContext")
    csc = _context(container, f"container {name}: securityContext")
    where = f"container {name}: securityContext"

    def pick(key: str) -> Any:
        return csc[key] if csc.get(key) is not None else psc.get(key)

    uid = _id(pick("runAsUser"), f"{where}.runAsUser")
    gid = _id(pick("runAsGroup"), f"{where}.runAsGroup")
    non_root = _flag(pick("runAsNonRoot"), f"{where}.runAsNonRoot")
    if non_root:
        if uid == 0:
            raise ConfigError("container's runAsUser breaks non-root policy "
                              f'(pod: "{pod_label(pod)}", container: {name})')
        if uid is None:  # the image's user, which is root here
            raise ConfigError("container has runAsNonRoot and image will run as root "
                              f'(pod: "{pod_label(pod)}", container: {name})')
    uid = uid or 0
    if gid is None:
        gid = primary_gid(uid) or 0
    supplemental = psc.get("supplementalGroups") or []
    if not isinstance(supplemental, Sequence) or isinstance(supplemental, str):
        raise ConfigError("spec.securityContext.supplementalGroups: must be a list")
    groups = {g for i, x in enumerate(supplemental)
              if (g := _id(x, f"spec.securityContext.supplementalGroups[{i}]")) is not None}
    fs_group = _id(psc.get("fsGroup"), "spec.securityContext.fsGroup")
    if fs_group is not None:
        groups.add(fs_group)
    privileged = bool(_flag(csc.get("privileged"), f"{where}.privileged"))
    escalation = _flag(csc.get("allowPrivilegeEscalation"),
                       f"{where}.allowPrivilegeEscalation")
    caps_spec = csc.get("capabilities")
    if caps_spec is not None and not isinstance(caps_spec, Mapping):
        raise ConfigError(f"{where}.capabilities: must be an object")
    caps = (frozenset(ALL_CAPABILITIES) if privileged
            else effective_capabilities(caps_spec, field=f"{where}.capabilities"))
    return Security(uid=uid, gid=gid, groups=tuple(sorted(groups)), capabilities=caps,
                    no_new_privs=escalation is False and not privileged,
                    read_only_root=bool(_flag(csc.get("readOnlyRootFilesystem"),
                                              f"{where}.readOnlyRootFilesystem")),
                    privileged=privileged)


def setpriv_argv(sec: Security) -> list[str]:
    """``setpriv`` with the identity, the capability sets and no_new_privs."""
    groups = (["--groups", ",".join(str(g) for g in sec.groups)] if sec.groups
              else ["--clear-groups"])
    bounding = ",".join(["-all"] + [f"+{c.lower()}" for c in ALL_CAPABILITIES
                                    if c in sec.capabilities])
    argv = ["setpriv", "--reuid", str(sec.uid), "--regid", str(sec.gid), *groups,
            "--inh-caps", "-all", "--ambient-caps", "-all", "--bounding-set", bounding]
    if sec.no_new_privs:
        argv.append("--no-new-privs")
    return argv


def mount_args(sec: Security, *, token_dir: str | None,
               binds: Sequence[tuple[str, str]] = (),
               volumes: Sequence[tuple[str, str]] = ()) -> list[str]:
    """The launch helper's options (empty: no helper, no extra mount namespace);
    ``binds`` are more read-only (source, target) mounts (the pod's /etc files),
    ``volumes`` (source, target) pairs of read-only volume mounts, in order."""
    args: list[str] = []
    for source, target in binds:
        args += ["--bind-ro", source, target]
    if token_dir is not None:
        args += ["--bind-ro", token_dir, SERVICE_ACCOUNT_MOUNT]
    for source, target in volumes:
        args += ["--bind-volume", source, target]
    if sec.read_only_root:
        args.append("--read-only-root")
    return args


def env_argv(env: Mapping[str, str]) -> list[str]:
    """``env -i -- K=V…``: the container's environment, set as the last step. A name
    with ``=`` can't be passed this way (nor set by any exec): it is left out."""
    return ["env", "-i", "--", *(f"{k}={v}" for k, v in env.items() if k and "=" not in k)]


def launch_argv(*, netns: str | None, sec: Security, command: Sequence[str],
                env: Mapping[str, str], token_dir: str | None, python: str,
                binds: Sequence[tuple[str, str]] = (), uts: str | None = None,
                volumes: Sequence[tuple[str, str]] = ()) -> list[str]:
    """The whole argv; see the module docstring for its shape. ``netns`` None: the
    agent's own network namespace; ``uts``: the pod's UTS namespace file to join."""
    argv = ["ip", "netns", "exec", netns] if netns else []
    if uts is not None:
        argv += ["nsenter", f"--uts={uts}", "--"]
    mounts = mount_args(sec, token_dir=token_dir, binds=binds, volumes=volumes)
    if mounts:
        argv += ["unshare", "--mount", "--propagation", "private", "--",
                 python, "-I", "-m", "nodeagent.pods.launch", *mounts, "--"]
    return argv + setpriv_argv(sec) + env_argv(env) + list(command)


# -- the read-only remount, decided from /proc/self/mountinfo ---------------------------

# mount(2) flags a bind remount must repeat, or it would clear them
MS_RDONLY, MS_NOSUID, MS_NODEV, MS_NOEXEC = 1, 2, 4, 8
MS_REMOUNT, MS_BIND = 32, 4096
MS_NOATIME, MS_NODIRATIME, MS_RELATIME, MS_STRICTATIME = 1024, 2048, 1 << 21, 1 << 24
_OPTION_FLAGS = {"ro": MS_RDONLY, "nosuid": MS_NOSUID, "nodev": MS_NODEV,
                 "noexec": MS_NOEXEC, "noatime": MS_NOATIME, "nodiratime": MS_NODIRATIME,
                 "relatime": MS_RELATIME, "strictatime": MS_STRICTATIME}


@dataclass(frozen=True)
class Remount:
    target: str
    flags: int  # always MS_REMOUNT | MS_BIND | MS_RDONLY | the mount's own flags


def _unescape(path: str) -> str:
    return re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), path)


def _under(path: str, top: str) -> bool:
    return path == top or path.startswith(top.rstrip("/") + "/")


def read_only_remounts(mountinfo: str) -> list[Remount]:
    """Every mount that must become read-only for ``readOnlyRootFilesystem``.

    Bind remounts only (``MS_REMOUNT|MS_BIND``): they change the mount in this
    namespace, never the filesystem (a plain ``MS_REMOUNT`` would make the host's
    filesystem read-only). Mounts already read-only and those in ``WRITABLE_MOUNTS``
    are left alone.
    """
    out: dict[str, Remount] = {}
    for line in mountinfo.splitlines():
        fields = line.split()
        if len(fields) < 6:
            continue
        target = _unescape(fields[4])
        options = fields[5].split(",")
        if "ro" in options or any(_under(target, w) for w in WRITABLE_MOUNTS):
            continue
        flags = MS_REMOUNT | MS_BIND | MS_RDONLY
        for opt in options:
            flags |= _OPTION_FLAGS.get(opt, 0)
        out[target] = Remount(target, flags)  # the last (top) mount at a path wins
    return sorted(out.values(), key=lambda r: r.target)
