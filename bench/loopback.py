"""Loopback plumbing the benchmarks share: a free port and a minimal HTTP/1.1 client.

The API server speaks HTTPS only: ``admin_tls`` reads the CA and cluster-admin's
certificate from the ``admin.kubeconfig`` it makes in its cert dir, and ``Conn.tls``
(set once the server is up) makes every connection a TLS one.

The client is deliberately tiny (keep-alive, Content-Length or chunked bodies,
line-by-line watch streams) so that driving the server costs little of the two
cores it shares with the client.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import json
import os
import signal
import ssl
import subprocess
import sys
import tempfile
from collections.abc import AsyncIterator, Coroutine
from pathlib import Path
from typing import Any

from client.config import read_kubeconfig
from client.http import tls_verify
from componentbase import ports


def run_cleanly(main: Coroutine[Any, Any, None]) -> None:
    """``asyncio.run`` with SIGTERM taken as Ctrl-C, so a stopped benchmark's context
    managers still stop the servers and databases it started (a plain SIGTERM would
    end Python without running them, leaving them behind)."""
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    try:
        asyncio.run(main)
    except KeyboardInterrupt:
        sys.exit(130)


def bench_apiserver():
    """bench/apiserver.py as a module (its module name would shadow the ``apiserver``
    package), for the benches that reuse its namespace and create helpers."""
    spec = importlib.util.spec_from_file_location(
        "bench_apiserver", Path(__file__).resolve().parent / "apiserver.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def free_port() -> int:
    """A loopback port outside the ephemeral range (``componentbase.ports``)."""
    return ports.free_port()


def admin_tls(kubeconfig: str | os.PathLike[str]) -> ssl.SSLContext:
    """The TLS context of a kubeconfig (CA and client certificate); ``ValueError``
    (``client.config.ConfigError``) while the file does not exist yet."""
    verify = tls_verify(read_kubeconfig(kubeconfig))
    assert isinstance(verify, ssl.SSLContext)
    return verify


@contextlib.asynccontextmanager
async def running_apiserver(*extra: str, storage_url: str | None = None
                            ) -> AsyncIterator[tuple[int, str, int]]:
    """A real ``mp-apiserver`` on a free port with a temporary SQLite file (or
    ``storage_url``), ready: yields (port, path of its admin.kubeconfig, pid);
    ``Conn.tls`` is set for it."""
    port = free_port()
    with tempfile.TemporaryDirectory() as tmp:
        proc = subprocess.Popen(
            [str(Path(sys.executable).parent / "mp-apiserver"), "--listen", f"127.0.0.1:{port}",
             "--storage-url", storage_url or f"sqlite:///{tmp}/bench.db",
             "--cert-dir", f"{tmp}/pki", "--log-level", "warning", *extra])
        kubeconfig = f"{tmp}/pki/admin.kubeconfig"
        try:
            for _ in range(400):
                try:
                    Conn.tls = admin_tls(kubeconfig)
                    conn = await Conn.open(port)
                    status, _ = await conn.request("GET", "/readyz")
                    conn.close()
                    if status == 200:
                        break
                except (OSError, ValueError):  # not listening / no kubeconfig yet
                    pass
                await asyncio.sleep(0.05)
            yield port, kubeconfig, proc.pid
        finally:
            proc.terminate()
            proc.wait(timeout=30)


def cpu_seconds(pid: int) -> float:
    """User + system CPU time a running process has used so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class Conn:
    """One keep-alive HTTP/1.1 connection; just enough protocol for the benchmarks."""

    tls: ssl.SSLContext | None = None  # the API server's, as cluster-admin

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    @classmethod
    async def open(cls, port: int) -> Conn:
        return cls(*await asyncio.open_connection(
            "127.0.0.1", port, ssl=cls.tls, server_hostname="127.0.0.1" if cls.tls else None))

    async def request(self, method: str, path: str, body: bytes | dict | None = None,
                      content_type: str = "application/json") -> tuple[int, bytes]:
        """Send one request and read its whole answer (plain or chunked)."""
        data = json.dumps(body).encode() if isinstance(body, dict) else (body or b"")
        head = (f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                f"Content-Type: {content_type}\r\nContent-Length: {len(data)}\r\n\r\n")
        self.writer.write(head.encode() + data)
        status_line = await self.reader.readline()
        if not status_line:
            raise ConnectionResetError("the server closed the connection")
        status = int(status_line.split()[1])
        length, chunked = 0, False
        while True:
            line = await self.reader.readline()
            if line in (b"\r\n", b""):
                break
            key, _, value = line.decode().partition(":")
            if key.lower() == "content-length":
                length = int(value)
            elif key.lower() == "transfer-encoding" and "chunked" in value:
                chunked = True
        if not chunked:
            return status, await self.reader.readexactly(length)
        parts = []
        while True:
            size = int((await self.reader.readline()).strip(), 16)
            if size == 0:
                await self.reader.readline()
                return status, b"".join(parts)
            parts.append(await self.reader.readexactly(size))
            await self.reader.readline()

    async def stream_lines(self, path: str) -> AsyncIterator[bytes]:
        """Send a GET and yield the lines of its chunked body as they arrive."""
        self.writer.write(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode())
        await self.reader.readline()
        while (await self.reader.readline()) not in (b"\r\n", b""):
            pass
        buf = b""
        while True:
            size_line = await self.reader.readline()
            if not size_line:
                return
            size = int(size_line.strip(), 16)
            if size == 0:
                return
            buf += await self.reader.readexactly(size)
            await self.reader.readline()
            while b"\n" in buf:
                line, buf = buf.split(b"\n", 1)
                yield line

    def close(self) -> None:
        self.writer.close()
