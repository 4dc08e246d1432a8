"""Startup, readiness and liveness probes (httpGet, tcpSocket, exec), run from the node namespace.

``ProbeCounter`` is the pure threshold logic (successThreshold/failureThreshold).
``probe_once`` runs one check: TCP and HTTP open their socket inside the node
namespace (``netns.socket_in``) like a kubelet on that node; ``httpGet`` sends
kubelet's request (``User-Agent: kube-probe/…``, ``Accept: */*``, the probe's
``httpHeaders``, a ``Host`` among them replacing the default), over TLS without
verifying the certificate for ``scheme: HTTPS``, to ``host`` or the pod IP, the
port by number or by the container's port name. exec runs the command as the
container (or with ``ip netns exec``) and, past ``timeoutSeconds``, fails and kills
its whole process group. ``grpc`` probes are not supported: they fail, saying so.
Each attempt says what it saw as kubelet's prober words it (the exec command's
output, the HTTP status, the dial error): the runtime's ``Unhealthy`` events carry it.
"""

from __future__ import annotations

import asyncio
import errno
import ipaddress
import signal
import socket
import ssl
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from componentbase.procs import kill_group
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


USER_AGENT = "kube-probe/1.30"  # kubelet's, with the version the node reports
GRPC_UNSUPPORTED = "grpc probes are not supported by this node agent (use exec, httpGet or tcpSocket)"

# kubelet reads up to 10 KiB of an exec probe's output; an event message carries
# its first KiB (more would not help a reader of ``kubectl describe``).
MAX_OUTPUT = 10 * 1024
MAX_MESSAGE = 1024


@dataclass(frozen=True)
class ProbeResult:
    """One attempt: passed or not, and what kubelet's prober would report about it."""

    ok: bool
    output: str = ""


def socket_error(exc: OSError) -> str:
    """An ``OSError`` as Go's net package words it (``connect: connection refused``)."""
    if isinstance(exc, TimeoutError) or exc.errno == errno.ETIMEDOUT:
        return "i/o timeout"
    words = {errno.ECONNREFUSED: "connect: connection refused",
             errno.EHOSTUNREACH: "connect: no route to host",
             errno.ENETUNREACH: "connect: network is unreachable",
             errno.ECONNRESET: "read: connection reset by peer"}
    if exc.errno in words:
        return words[exc.errno]
    return (exc.strerror or str(exc)).lower()


def http_failure(status: int | None) -> str | None:
    """kubelet's HTTP verdict: 200-399 pass; otherwise the status it failed with."""
    if status is not None and 200 <= status < 400:
        return None
    if status is None:
        return "HTTP probe failed: malformed response"
    return f"HTTP probe failed with statuscode: {status}"


def output_text(raw: bytes) -> str:
    """An exec probe's output for an event: decoded, trimmed, at most MAX_MESSAGE."""
    text = raw.decode("utf-8", "replace").strip()
    return text if len(text) <= MAX_MESSAGE else text[:MAX_MESSAGE] + "…"


def _tcp(node_ns: str | None, ip: str, port: int, timeout: float) -> ProbeResult:
    sock = socket_in(node_ns)
    try:
        sock.settimeout(timeout)
        sock.connect((ip, port))
        return ProbeResult(True)
    except OSError as exc:
        return ProbeResult(False, f"dial tcp {ip}:{port}: {socket_error(exc)}")
    finally:
        close_quietly(sock)


def http_request(path: str, authority: str, headers: Sequence[Mapping[str, Any]]) -> bytes:
    """kubelet's probe request: its default headers, each replaced by a probe header of
    the same name (``Host`` too); the connection closes after one answer."""
    own = [(str(h.get("name") or ""), str(h.get("value") or "")) for h in headers
           if h.get("name")]
    names = {n.lower() for n, _ in own}
    lines = [f"GET {path if path.startswith('/') else '/' + path} HTTP/1.1"]
    if "host" not in names:
        lines.append(f"Host: {authority}")
    lines += [f"{n}: {v}" for n, v in (("User-Agent", USER_AGENT), ("Accept", "*/*"))
              if n.lower() not in names]
    lines += [f"{n}: {v}" for n, v in own if "\r" not in n + v and "\n" not in n + v]
    lines.append("Connection: close")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1", "replace")


def _tls(sock: socket.socket, host: str) -> socket.socket:
    """TLS as kubelet's prober does it: no certificate verification."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    try:
        ipaddress.ip_address(host)
        name = None
    except ValueError:
        name = host
    return ctx.wrap_socket(sock, server_hostname=name)


def _http(node_ns: str | None, ip: str, port: int, path: str, headers: Sequence[
          Mapping[str, Any]], timeout: float, *, https: bool = False) -> ProbeResult:
    scheme = "https" if https else "http"
    url = f"{scheme}://{ip}:{port}{path}"
    sock = socket_in(node_ns)
    try:
        sock.settimeout(timeout)
        sock.connect((ip, port))
        if https:
            sock = _tls(sock, ip)
        sock.sendall(http_request(path, f"{ip}:{port}", headers))
        head = sock.makefile("rb").readline().decode("latin-1").split()
        status = int(head[1]) if len(head) >= 2 and head[1].isdigit() else None
        failure = http_failure(status)
        return ProbeResult(failure is None, failure or "")
    except TimeoutError:
        return ProbeResult(False, f'Get "{url}": context deadline exceeded '
                                  "(Client.Timeout exceeded while awaiting headers)")
    except OSError as exc:
        return ProbeResult(False, f'Get "{url}": dial tcp {ip}:{port}: {socket_error(exc)}')
    except UnicodeError:
        return ProbeResult(False, http_failure(None) or "")
    finally:
        close_quietly(sock)


async def _read_capped(stream: asyncio.StreamReader) -> bytes:
    """The first MAX_OUTPUT bytes; the rest is read and dropped so the probe never
    blocks on a full pipe."""
    kept = b""
    while chunk := await stream.read(65536):
        if len(kept) < MAX_OUTPUT:
            kept += chunk[:MAX_OUTPUT - len(kept)]
    return kept


async def _exec(argv: list[str], command: list[str], *, timeout: float, root_env: bool
                ) -> ProbeResult:
    proc = await asyncio.create_subprocess_exec(
        *argv, stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
        env=ROOT_ENV if root_env else None, start_new_session=True)
    assert proc.stdout is not None
    try:
        async with asyncio.timeout(timeout):
            output = await _read_capped(proc.stdout)
            code = await proc.wait()
    except TimeoutError:  # the command and whatever it started
        kill_group(proc.pid, signal.SIGKILL)
        await proc.wait()
        return ProbeResult(False, f'command "{" ".join(command)}" timed out')
    return ProbeResult(code == 0, output_text(output))


async def probe_once(probe: Mapping[str, Any], *, container: Mapping[str, Any],
                     node_ns: str | None, pod_ns: str, pod_ip: str,
                     exec_argv: Callable[[list[str]], list[str]] | None = None) -> ProbeResult:
    """One probe attempt. ``exec_argv`` turns an exec probe's command into the argv
    that runs it as the container (default: plain ``ip netns exec``); a
    ``ValueError`` from it fails the probe with its message."""
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
            return await asyncio.to_thread(
                _http, node_ns, h.get("host") or pod_ip, port, h.get("path") or "/",
                h.get("httpHeaders") or [], timeout,
                https=str(h.get("scheme") or "HTTP").upper() == "HTTPS")
        if "exec" in probe:
            cmd = [str(a) for a in probe["exec"].get("command") or []]
            if not cmd:
                return ProbeResult(False, "missing probe command")
            argv = exec_argv(cmd) if exec_argv else ["ip", "netns", "exec", pod_ns, *cmd]
            return await _exec(argv, cmd, timeout=timeout, root_env=exec_argv is not None)
        if "grpc" in probe:
            return ProbeResult(False, GRPC_UNSUPPORTED)
    except ValueError as exc:
        return ProbeResult(False, str(exc))
    except OSError as exc:  # the command could not be started at all
        return ProbeResult(False, str(exc))
    return ProbeResult(False, "missing probe handler")
