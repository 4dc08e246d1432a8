"""Readiness and liveness probes (httpGet, tcpSocket, exec), run from the node namespace.

``ProbeCounter`` is the pure threshold logic (successThreshold/failureThreshold).
``probe_once`` runs one check: TCP and HTTP open their socket inside the node
namespace (``netns.socket_in``) like a kubelet on that node; exec runs the command
inside the pod's namespace with ``ip netns exec``. An unknown handler fails.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from nodeagent.pods.netns import close_quietly, socket_in
from nodeagent.pods.security import ROOT_ENV


@dataclass
class ProbeCounter:
    """Consecutive results → the probe's verdict (None until the first decision)."""

    success_threshold: int = 1
    failure_threshold: int = 3
    result: bool | None = None
    _ok: int = 0
    _bad: int = 0

    def record(self, ok: bool) -> bool | None:
        if ok:
            self._ok, self._bad = self._ok + 1, 0
            if self._ok >= self.success_threshold:
                self.result = True
        else:
            self._bad, self._ok = self._bad + 1, 0
            if self._bad >= self.failure_threshold:
                self.result = False
        return self.result


def probe_timing(probe: Mapping[str, Any]) -> tuple[float, float, float]:
    """(initialDelaySeconds, periodSeconds, timeoutSeconds) with Kubernetes defaults."""
    return (float(probe.get("initialDelaySeconds") or 0),
            float(probe.get("periodSeconds") or 10),
            float(probe.get("timeoutSeconds") or 1))


def resolve_port(port: Any, container: Mapping[str, Any]) -> int:
    if isinstance(port, int) or (isinstance(port, str) and port.isdigit()):
        return int(port)
    for p in container.get("ports") or []:
        if p.get("name") == port:
            return int(p["containerPort"])
    raise ValueError(f"port {port!r} not found in the container")


def _tcp(node_ns: str | None, ip: str, port: int, timeout: float) -> bool:
    sock = socket_in(node_ns)
    try:
        sock.settimeout(timeout)
        sock.connect((ip, port))
        return True
    except OSError:
        return False
    finally:
        close_quietly(sock)


def _http(node_ns: str | None, ip: str, port: int, path: str, host: str | None,
          timeout: float) -> bool:
    sock = socket_in(node_ns)
    try:
        sock.settimeout(timeout)
        sock.connect((ip, port))
        sock.sendall(f"GET {path} HTTP/1.0\r\nHost: {host or ip}:{port}\r\n"
                     "User-Agent: mp-nodeagent-probe\r\n\r\n".encode())
        head = sock.makefile("rb").readline().decode("latin-1").split()
        return len(head) >= 2 and head[1].isdigit() and 200 <= int(head[1]) < 400
    except (TimeoutError, OSError, UnicodeError):
        return False
    finally:
        close_quietly(sock)


async def probe_once(probe: Mapping[str, Any], *, container: Mapping[str, Any],
                     node_ns: str | None, pod_ns: str, pod_ip: str,
                     exec_argv: Callable[[list[str]], list[str]] | None = None) -> bool:
    """One probe attempt; True on success. ``exec_argv`` turns an exec probe's
    command into the argv that runs it as the container (default: plain
    ``ip netns exec``); a ``ValueError`` from it fails the probe."""
    _, _, timeout = probe_timing(probe)
    try:
        if "tcpSocket" in probe:
            h = probe["tcpSocket"]
            port = resolve_port(h.get("port"), container)
            return await asyncio.to_thread(_tcp, node_ns, h.get("host") or pod_ip, port,
                                           timeout)
        if "httpGet" in probe:
            h = probe["httpGet"]
            port = resolve_port(h.get("port"), container)
            return await asyncio.to_thread(_http, node_ns, h.get("host") or pod_ip, port,
                                           h.get("path") or "/", None, timeout)
        if "exec" in probe:
            cmd = list(probe["exec"].get("command") or [])
            if not cmd:
                return False
            argv = exec_argv(cmd) if exec_argv else ["ip", "netns", "exec", pod_ns, *cmd]
            proc = await asyncio.create_subprocess_exec(
                *argv, stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
                env=ROOT_ENV if exec_argv else None,
                start_new_session=True)
            try:
                async with asyncio.timeout(timeout):
                    return await proc.wait() == 0
            except TimeoutError:
                proc.kill()
                await proc.wait()
                return False
    except ValueError:
        return False
    return False
