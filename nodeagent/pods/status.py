"""Pure pieces of the pod runtime: names, restart decisions, pod status.

``pod_status`` turns what the runtime knows (container records, the pod IP, the
node's readiness) into the ``status`` the agent writes through ``pods/status``.
Conditions keep their ``lastTransitionTime`` while their status is unchanged, so a
rewrite of an unchanged pod is byte-for-byte the same and is skipped.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any


def format_time(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def pod_netns(cluster: str, uid: str) -> str:
    """``mp-<cluster>-pod-<short uid>``: the pod's network namespace."""
    short = uid.replace("-", "")[:8]
    return f"mp-{cluster}-pod-{short}"


def should_restart(policy: str, exit_code: int) -> bool:
    """Whether a container that exited with ``exit_code`` starts again under ``policy``."""
    if policy == "Never":
        return False
    if policy == "OnFailure":
        return exit_code != 0
    return True


def restart_delay(restarts: int, *, base: float, cap: float) -> float:
    """Kubelet's CrashLoopBackOff: base doubling per restart, capped."""
    if restarts <= 0:
        return 0.0
    return min(cap, base * 2 ** (restarts - 1))


@dataclass
class ContainerRecord:
    """What the runtime knows of one container; ``state`` is a Kubernetes state dict."""

    name: str
    image: str = ""
    state: dict[str, Any] | None = None
    last_state: dict[str, Any] | None = None
    restart_count: int = 0
    ready: bool = False
    started: bool = False
    finished: bool = False  # exited and will not restart
    startup_pending: bool = False  # a startupProbe has not succeeded yet


def _condition(kind: str, ok: bool, old: Mapping[str, Mapping], now: str,
               reason: str | None = None) -> dict[str, Any]:
    status = "True" if ok else "False"
    prev = old.get(kind)
    since = prev.get("lastTransitionTime") if prev and prev.get("status") == status else now
    cond: dict[str, Any] = {"type": kind, "status": status, "lastProbeTime": None,
                            "lastTransitionTime": since}
    if reason and not ok:
        cond["reason"] = reason
    return cond


def pod_phase(containers: Sequence[ContainerRecord]) -> str:
    if containers and all(c.finished for c in containers):
        codes = [(c.state or {}).get("terminated", {}).get("exitCode", 1) for c in containers]
        return "Succeeded" if all(code == 0 for code in codes) else "Failed"
    if containers and all(c.started for c in containers):
        return "Running"  # every container has run; some may be restarting
    return "Pending"


def pod_status(*, old_status: Mapping[str, Any], containers: Sequence[ContainerRecord],
               pod_ip: str | None, host_ip: str | None, start_time: str, now: str
               ) -> dict[str, Any]:
    """The pod's new ``status`` (phase, IPs, conditions, containerStatuses)."""
    old = {c.get("type"): c for c in old_status.get("conditions") or []}
    all_ready = bool(containers) and all(c.ready for c in containers)
    phase = pod_phase(containers)
    conditions = [
        _condition("PodScheduled", True, old, now),
        _condition("Initialized", True, old, now),
        _condition("ContainersReady", all_ready, old, now, "ContainersNotReady"),
        _condition("Ready", all_ready and phase == "Running", old, now, "ContainersNotReady"),
    ]
    status: dict[str, Any] = {
        "phase": phase,
        "conditions": conditions,
        "startTime": start_time,
        "containerStatuses": [
            {"name": c.name, "image": c.image, "imageID": "", "ready": c.ready,
             "started": c.started and not c.startup_pending,
             "restartCount": c.restart_count,
             "state": c.state or {"waiting": {"reason": "ContainerCreating"}},
             "lastState": c.last_state or {}}
            for c in containers],
    }
    if host_ip:
        status["hostIP"] = host_ip
        status["hostIPs"] = [{"ip": host_ip}]
    if pod_ip:
        status["podIP"] = pod_ip
        status["podIPs"] = [{"ip": pod_ip}]
    return status
