"""Does this process have what ``--own-netns`` needs? One line saying what's missing.

An agent that makes its own (a container's) network namespace its node creates
``cni0``, veths, routes and iptables rules (CAP_NET_ADMIN), creates pod namespaces
(``ip netns add``/``exec`` mount things: CAP_SYS_ADMIN, and no AppArmor profile that
denies mounts, such as Docker's ``docker-default``) and sets ``net.ipv4.ip_forward``
(``/proc/sys`` writable: Docker mounts it read-only unless ``systempaths=unconfined``).
Without them it would fail deep inside ``ip`` or ``sysctl`` with a traceback; checked
first, the container exits with one line naming what is missing and how to grant it.

``missing`` is pure (tested as a table); ``check`` reads ``/proc`` and probes once.
``python3 -m nodeagent.node.privileges`` runs the same check for an entry script that
must change the namespace before it starts the agent (docker-compose.yml's nodes).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys

# Bit numbers from linux/capability.h.
CAPABILITIES = {"NET_ADMIN": 12, "SYS_ADMIN": 21}
PROC_SYS_PROBE = "/proc/sys/net/ipv4/ip_forward"
APPARMOR_ATTRS = ("/proc/self/attr/apparmor/current", "/proc/self/attr/current")
# Docker's default AppArmor profile denies mount and writes under /proc/sys.
DENYING_APPARMOR = re.compile(r"^docker-default\b.*\(enforce\)")
SYSPATHS = "a writable /proc/sys (systempaths=unconfined)"
ADVICE = ("run it with cap_add: [NET_ADMIN, SYS_ADMIN] and security_opt: "
          "[apparmor=unconfined, systempaths=unconfined] (docker run --cap-add NET_ADMIN "
          "--cap-add SYS_ADMIN --security-opt apparmor=unconfined "
          "--security-opt systempaths=unconfined)")
# docker-compose 1.x sends security_opt to the engine as is, and the engine doesn't know
# systempaths (the docker CLI and compose v2 translate it): remounting works there.
REMOUNT = ("; docker-compose 1.x can't pass systempaths: remount /proc/sys read-write "
           "before starting the agent (mount -o remount,rw /proc/sys), as miniplane's "
           "docker-compose.yml does")


def effective_caps(status: str) -> int | None:
    """The ``CapEff`` mask from ``/proc/self/status`` text, None if absent."""
    m = re.search(r"^CapEff:\s*([0-9a-fA-F]+)\s*$", status, re.MULTILINE)
    return int(m.group(1), 16) if m else None


def missing(*, cap_eff: int | None, proc_sys_writable: bool, apparmor: str = "",
            netns_error: str = "") -> list[str]:
    """What stands in the way, each as the short name the advice line uses."""
    out = [name for name, bit in CAPABILITIES.items()
           if cap_eff is not None and not cap_eff >> bit & 1]
    if not proc_sys_writable:
        out.append(SYSPATHS)
    if DENYING_APPARMOR.match(apparmor.strip()):
        out.append(f"an AppArmor profile that allows mounts (this one: {apparmor.strip()}; "
                   "apparmor=unconfined)")
    if netns_error and not out:
        # Capabilities are there, yet a namespace can't be made: a seccomp profile or
        # another security module refuses it.
        out.append(f"permission to create network namespaces ({netns_error}; "
                   "seccomp=unconfined or a profile allowing unshare)")
    return out


def message(problems: list[str]) -> str:
    """One line: what is missing, then how to grant it."""
    return (f"--own-netns needs privileges this container lacks: {', '.join(problems)}; "
            f"{ADVICE}{REMOUNT if SYSPATHS in problems else ''}")


def _read(path: str) -> str:
    try:
        with open(path) as f:
            return f.read()
    except OSError:
        return ""


def _netns_probe() -> str:
    """Try to make (and drop) a network and mount namespace in a child; '' on success."""
    unshare = shutil.which("unshare")
    if unshare is None:
        return ""  # can't tell: let the real work report
    try:
        proc = subprocess.run([unshare, "--net", "--mount", "true"], capture_output=True,
                              text=True, timeout=10)
    except (OSError, subprocess.SubprocessError) as exc:
        return str(exc)
    if proc.returncode == 0:
        return ""
    return proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else \
        f"unshare exited {proc.returncode}"


def check() -> str | None:
    """One line saying what's missing for ``--own-netns`` here, or None if nothing is."""
    cap_eff = effective_caps(_read("/proc/self/status"))
    apparmor = next((text for path in APPARMOR_ATTRS if (text := _read(path).strip("\0\n "))),
                    "")
    problems = missing(cap_eff=cap_eff, proc_sys_writable=os.access(PROC_SYS_PROBE, os.W_OK),
                       apparmor=apparmor)
    if not problems:
        problems = missing(cap_eff=cap_eff, proc_sys_writable=True, netns_error=_netns_probe())
    return message(problems) if problems else None


def main() -> int:
    """Exit 1 with the one line when something is missing, else 0 silently."""
    problem = check()
    if problem is None:
        return 0
    print(f"mp-nodeagent: error: {problem}", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
