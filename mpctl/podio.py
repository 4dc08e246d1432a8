"""``mpctl exec`` and ``mpctl logs``: through the API server, as kubectl's.

``logs`` streams ``GET pods/<name>/log`` (``container``, ``follow``, ``tailLines``…);
``exec`` opens ``pods/<name>/exec`` as a WebSocket speaking ``v5.channel.k8s.io``
(``apimachinery.remotecommand``): stdin (with ``-i``) goes out on channel 0, the
command's stdout and stderr come back on 1 and 2, and its exit status on 3, which
becomes mpctl's exit code. With ``-t`` the local terminal is put in raw mode and
its size sent on channel 4 (again on every SIGWINCH). Both work from any host
that reaches the API server, with the credentials of the kubeconfig in use, and
are authorized as ``get pods/log`` and ``create pods/exec``.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import ssl
import sys
import termios
import threading
import tty
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import quote, urlencode

import httpx
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus
from websockets.sync.client import ClientConnection, connect
from websockets.typing import Subprotocol

from apimachinery import remotecommand as rc
from client.config import ClientConfig
from client.errors import ConnectionFailed, error_from_response
from client.http import USER_AGENT, tls_verify

CONNECT_TIMEOUT = 10.0


class PodIOError(Exception):
    """Printed as ``error: <message>``."""


def container_name(pod: dict[str, Any], wanted: str | None) -> str:
    """The container a command is about: ``-c``, else the default-container
    annotation, else the only one (kubectl's rule)."""
    names = [c["name"] for c in pod.get("spec", {}).get("containers") or []]
    name = pod["metadata"]["name"]
    if wanted is not None:
        if wanted not in names:
            raise PodIOError(f"container {wanted} is not valid for pod {name}")
        return wanted
    default = (pod["metadata"].get("annotations") or {}).get(
        "kubectl.kubernetes.io/default-container")
    if default in names:
        return str(default)
    if len(names) == 1:
        return names[0]
    raise PodIOError(f"a container name must be specified for pod {name}, choose one of: "
                     f"[{' '.join(names)}]")


def pod_path(namespace: str, name: str, subresource: str) -> str:
    return f"/api/v1/namespaces/{quote(namespace, safe='')}/pods/{quote(name, safe='')}/" \
           f"{subresource}"


def _headers(config: ClientConfig) -> dict[str, str]:
    headers = {"User-Agent": USER_AGENT}
    if config.token:
        headers["Authorization"] = f"Bearer {config.token}"
    return headers


# --------------------------------------------------------------------------- logs


def log_params(container: str, *, follow: bool, tail: int, timestamps: bool = False,
               since_seconds: int | None = None, previous: bool = False,
               limit_bytes: int | None = None) -> dict[str, str]:
    """kubectl's query for ``pods/log`` (a negative ``tail``: every line)."""
    params = {"container": container}
    if follow:
        params["follow"] = "true"
    if tail >= 0:
        params["tailLines"] = str(tail)
    if timestamps:
        params["timestamps"] = "true"
    if since_seconds is not None:
        params["sinceSeconds"] = str(since_seconds)
    if previous:
        params["previous"] = "true"
    if limit_bytes is not None:
        params["limitBytes"] = str(limit_bytes)
    return params


def stream_logs(config: ClientConfig, namespace: str, name: str, params: dict[str, str],
                write: Callable[[bytes], None]) -> None:
    """Copy the log to ``write`` as it arrives; an API refusal raises its ``ApiError``."""
    url = config.server.rstrip("/") + pod_path(namespace, name, "log")
    timeout = httpx.Timeout(CONNECT_TIMEOUT, read=None)
    try:
        with httpx.Client(verify=tls_verify(config), headers=_headers(config),
                          timeout=timeout) as http, \
                http.stream("GET", url, params=params) as response:
            if response.status_code != 200:
                raise error_from_response(response.status_code, response.read())
            for chunk in response.iter_raw():
                write(chunk)
    except httpx.HTTPError as exc:
        raise ConnectionFailed(f"GET {url}: {exc}", attempts=((url, str(exc)),)) from None


# --------------------------------------------------------------------------- exec


def exec_url(server: str, namespace: str, name: str, *, container: str,
             command: list[str], stdin: bool, tty: bool) -> str:
    query = [("container", container)] + [("command", c) for c in command]
    query += [("stdin", "true")] if stdin else []
    query += [("stdout", "true")]
    query += [("tty", "true")] if tty else [("stderr", "true")]
    base = server.rstrip("/").replace("https://", "wss://", 1).replace("http://", "ws://", 1)
    return base + pod_path(namespace, name, "exec") + "?" + urlencode(query)


def open_stream(config: ClientConfig, url: str) -> ClientConnection:
    """The WebSocket to the API server; its refusal raises the ``ApiError`` it carries."""
    verify = tls_verify(config)
    context = verify if isinstance(verify, ssl.SSLContext) else None
    try:
        return connect(url, ssl=context if url.startswith("wss://") else None,
                       subprotocols=[Subprotocol(p) for p in rc.PROTOCOLS],
                       additional_headers=_headers(config), open_timeout=CONNECT_TIMEOUT,
                       max_size=None, compression=None)
    except InvalidStatus as exc:
        raise error_from_response(exc.response.status_code,
                                  bytes(exc.response.body or b"")) from None
    except (OSError, InvalidHandshake, TimeoutError) as exc:
        raise ConnectionFailed(f"{url}: {exc}", attempts=((url, str(exc)),)) from None


@contextlib.contextmanager
def raw_terminal(fd: int) -> Iterator[None]:
    """The local terminal in raw mode (keys go to the pod as typed), restored after."""
    saved = termios.tcgetattr(fd)
    try:
        tty.setraw(fd)
        yield
    finally:
        termios.tcsetattr(fd, termios.TCSADRAIN, saved)


def terminal_size_frame() -> bytes:
    size = shutil.get_terminal_size()
    return rc.frame(rc.RESIZE, json.dumps({"Width": size.columns,
                                           "Height": size.lines}).encode())


def run_exec(config: ClientConfig, namespace: str, name: str, *, container: str,
             command: list[str], stdin: bool, tty: bool) -> int:
    """Run ``command`` in the pod; its exit code (1 with a message for an error)."""
    ws = open_stream(config, exec_url(config.server, namespace, name, container=container,
                                      command=command, stdin=stdin, tty=tty))
    use_tty = tty and stdin and os.isatty(0)
    with ws, (raw_terminal(0) if use_tty else contextlib.nullcontext()):
        if stdin:
            threading.Thread(target=_send_stdin, args=(ws,), daemon=True).start()
        if use_tty:
            with contextlib.suppress(ConnectionClosed):
                ws.send(terminal_size_frame())
            signal.signal(signal.SIGWINCH, lambda *_: _send_quietly(ws, terminal_size_frame()))
        status = _copy_output(ws)
    if status is None:
        raise PodIOError("the connection ended without the command's exit status")
    code, error = rc.exit_code(status)
    if error is not None:
        raise PodIOError(error)
    return code


def _send_quietly(ws: ClientConnection, data: bytes) -> None:
    with contextlib.suppress(ConnectionClosed, RuntimeError):
        ws.send(data)


def _send_stdin(ws: ClientConnection) -> None:
    """Local stdin to channel 0; at its end, v5's close signal for stdin."""
    while True:
        try:
            data = os.read(0, 32768)
        except OSError:
            data = b""
        if not data:
            if ws.subprotocol == rc.V5:
                _send_quietly(ws, rc.frame(rc.CLOSE, bytes((rc.STDIN,))))
            return
        try:
            ws.send(rc.frame(rc.STDIN, data))
        except (ConnectionClosed, RuntimeError):
            return


def _copy_output(ws: ClientConnection) -> dict[str, Any] | None:
    status: dict[str, Any] | None = None
    with contextlib.suppress(ConnectionClosed):
        for message in ws:
            data = message if isinstance(message, bytes) else message.encode()
            if not data:
                continue
            channel, payload = rc.parse(data)
            if channel == rc.STDOUT:
                _write(sys.stdout.buffer, payload)
            elif channel == rc.STDERR:
                _write(sys.stderr.buffer, payload)
            elif channel == rc.ERROR and payload:
                with contextlib.suppress(ValueError):
                    status = json.loads(payload)
    return status


def _write(out: Any, data: bytes) -> None:
    out.write(data)
    out.flush()
