"""``mpctl exec`` and ``mpctl logs``: a pod's network namespace and its log files, on this host.

miniplane's pods are host processes, so neither goes through the API server as
kubectl's do: ``exec`` finds the pod's namespace (``mp-<cluster>-pod-<uid8>``, the
node agent's naming) and replaces itself with ``ip netns exec`` there, so the
command gets the pod's resolv.conf, the terminal and its exit status; ``logs``
reads ``<agent state dir>/pods/<uid>/<container>.log``, finding the agent's state
dir in the ``cluster.json`` of the cluster whose API server is in use.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from client.config import KUBECONFIG_ENV

from .cluster import network, state

FOLLOW_POLL = 0.2  # seconds between looks at a followed log file
GONE_CHECK = 2.0  # seconds between checks that a followed pod still exists


class PodIOError(Exception):
    """Printed as ``error: <message>``."""


def container_name(pod: dict[str, Any], wanted: str | None) -> str:
    """The container a command is about: ``-c``, else the only one (kubectl's rule)."""
    names = [c["name"] for c in pod.get("spec", {}).get("containers") or []]
    name = pod["metadata"]["name"]
    if wanted is not None:
        if wanted not in names:
            raise PodIOError(f"container {wanted} is not valid for pod {name}")
        return wanted
    if len(names) == 1:
        return names[0]
    raise PodIOError(f"a container name must be specified for pod {name}, choose one of: "
                     f"[{' '.join(names)}]")


def pod_namespace_suffix(pod: dict[str, Any]) -> str:
    return "-pod-" + pod["metadata"]["uid"].replace("-", "")[:8]


def find_pod_netns(pod: dict[str, Any], namespaces: Iterable[str]) -> str | None:
    suffix = pod_namespace_suffix(pod)
    found = [ns for ns in namespaces if ns.startswith("mp-") and ns.endswith(suffix)]
    return found[0] if len(found) == 1 else None


def host_namespaces() -> list[str]:
    try:
        return network.namespaces()
    except (OSError, subprocess.SubprocessError) as exc:
        raise PodIOError(f"cannot list network namespaces: {exc}") from None


def exec_in_pod(pod: dict[str, Any], container: str | None, command: list[str]) -> None:
    """Replace this process with ``command`` inside the pod's namespace (never returns)."""
    container_name(pod, container)  # validates -c like kubectl does
    name = pod["metadata"]["name"]
    if not command:
        raise PodIOError("you must specify at least one command for the container")
    phase = pod.get("status", {}).get("phase")
    if phase in ("Succeeded", "Failed"):
        raise PodIOError(f"cannot exec into a container in a completed pod; current phase "
                         f"is {phase}")
    if os.geteuid() != 0:
        raise PodIOError("mpctl exec needs root (it enters the pod's network namespace)")
    ns = find_pod_netns(pod, host_namespaces())
    if ns is None:
        node = pod.get("spec", {}).get("nodeName") or "<not scheduled>"
        raise PodIOError(f"pod {name} has no network namespace on this host "
                         f"(node {node}, phase {phase or 'Pending'})")
    sys.stdout.flush()
    try:
        os.execvp("ip", ["ip", "netns", "exec", ns, *command])
    except OSError as exc:
        raise PodIOError(f"cannot run ip netns exec: {exc.strerror}") from None


# --------------------------------------------------------------------------- logs

def cluster_states(kubeconfig: str | None) -> list[state.ClusterState]:
    """Every local cluster's record this mpctl could be talking to.

    The one beside the kubeconfig in use first (``cluster up`` writes both into its
    state dir), then those under ``./.miniplane``.
    """
    dirs: list[Path] = []
    configs = [kubeconfig] if kubeconfig else \
        [p for p in os.environ.get(KUBECONFIG_ENV, "").split(os.pathsep) if p]
    dirs += [Path(c).expanduser().parent for c in configs]
    base = Path(".miniplane")
    if base.is_dir():
        dirs += sorted(d for d in base.iterdir() if d.is_dir())
    found = []
    for d in dirs:
        try:
            st = state.load(d)
        except ValueError:
            continue
        if st is not None:
            found.append(st)
    return found


def log_file(pod: dict[str, Any], container: str, server: str,
             states: list[state.ClusterState]) -> Path:
    node = pod.get("spec", {}).get("nodeName")
    name = pod["metadata"]["name"]
    if not node:
        raise PodIOError(f"pod {name} is not scheduled to a node yet")
    for st in states:
        rec = st.node(node)
        if server.rstrip("/") in {s.rstrip("/") for s in st.server.split(",")} \
                and rec is not None:
            path = Path(rec.state_dir) / "pods" / pod["metadata"]["uid"] / f"{container}.log"
            if path.exists():
                return path
            raise PodIOError(f'container "{container}" in pod "{name}" has not started yet '
                             f"(no {path})")
    raise PodIOError(f"the log of pod {name} is kept by node {node}'s agent, which is not "
                     "part of a local cluster started here (mpctl cluster up)")


def tail_lines(data: bytes, n: int) -> bytes:
    if n < 0:
        return data
    if n == 0:
        return b""
    lines = data.splitlines(keepends=True)
    return b"".join(lines[-n:])


def copy_log(path: Path, *, tail: int, follow: bool, still_there: Callable[[], bool],
             write: Callable[[bytes], None]) -> None:
    """Print the log (its last ``tail`` lines, all if negative), then follow it if asked.

    Following ends when the pod is gone (``still_there``) or on Ctrl-C. A restarted
    container appends to the same file, so following carries on across restarts.
    """
    with open(path, "rb") as f:
        write(tail_lines(f.read(), tail))
        if not follow:
            return
        next_check = time.monotonic() + GONE_CHECK
        while True:
            chunk = f.read()
            if chunk:
                write(chunk)
                continue
            if time.monotonic() >= next_check:
                if not still_there():
                    write(f.read())
                    return
                next_check = time.monotonic() + GONE_CHECK
            time.sleep(FOLLOW_POLL)
