"""The events a node agent writes about its pods, worded as kubelet words them.

Reasons and messages are kubelet's (``pkg/kubelet/events``), so what people and
tools match on (``--field-selector reason=Unhealthy``, alerts on ``BackOff``) works
unchanged. The source is ``kubelet`` on host ``<node>``: ``kubectl describe``
shows it in the From column, and that is the name users and tooling expect for a
node's pod events (``--field-selector source=kubelet``); the host tells the nodes
apart. The functions are pure; ``PodEvents`` hands them to the shared recorder.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

COMPONENT = "kubelet"

PULLED = "Pulled"
CREATED = "Created"
STARTED = "Started"
KILLING = "Killing"
UNHEALTHY = "Unhealthy"
BACK_OFF = "BackOff"
FAILED = "Failed"
FAILED_MOUNT = "FailedMount"


def pulled(image: str) -> str:
    """Images are recorded, not pulled: kubelet's words for an image it already has."""
    return f'Container image "{image}" already present on machine'


def created(container: str) -> str:
    return f"Created container {container}"


def started(container: str) -> str:
    return f"Started container {container}"


def stopping(container: str) -> str:
    return f"Stopping container {container}"


def liveness_kill(container: str) -> str:
    return f"Container {container} failed liveness probe, will be restarted"


def startup_kill(container: str) -> str:
    return f"Container {container} failed startup probe, will be restarted"


def probe_failed(probe_type: str, output: str) -> str:
    """``probe_type`` is Readiness, Liveness or Startup."""
    return f"{probe_type} probe failed: {output}"


def back_off(container: str, pod: Mapping[str, Any]) -> str:
    """kubelet formats the pod as ``<name>_<namespace>(<uid>)``."""
    m = pod.get("metadata") or {}
    return (f"Back-off restarting failed container {container} in pod "
            f"{m.get('name', '')}_{m.get('namespace') or 'default'}({m.get('uid', '')})")


def failed(error: str) -> str:
    return f"Error: {error}"


def failed_mount(volume: str, error: str) -> str:
    return f'MountVolume.SetUp failed for volume "{volume}" : {error}'


def container_field_path(container: str) -> str:
    """``involvedObject.fieldPath`` of a container event (kubectl's SUBOBJECT)."""
    return f"spec.containers{{{container}}}"


class EventRecorder(Protocol):
    def record(self, obj: Mapping[str, Any], *, kind: str, type_: str, reason: str,
               message: str, api_version: str = "v1", field_path: str = "") -> None: ...


class PodEvents:
    """One pod's event sink; a no-op without a recorder (unit tests, tools)."""

    def __init__(self, recorder: EventRecorder | None) -> None:
        self.recorder = recorder

    def normal(self, pod: Mapping[str, Any], container: str, reason: str, message: str
               ) -> None:
        self._record(pod, container, "Normal", reason, message)

    def warning(self, pod: Mapping[str, Any], container: str, reason: str, message: str
                ) -> None:
        self._record(pod, container, "Warning", reason, message)

    def pod_warning(self, pod: Mapping[str, Any], reason: str, message: str) -> None:
        """About the pod as a whole, not one of its containers (a volume,
        DNSConfigForming)."""
        self._record(pod, "", "Warning", reason, message)

    def _record(self, pod: Mapping[str, Any], container: str, type_: str, reason: str,
                message: str) -> None:
        if self.recorder is not None:
            self.recorder.record(pod, kind="Pod", type_=type_, reason=reason, message=message,
                                 field_path=container_field_path(container) if container
                                 else "")
