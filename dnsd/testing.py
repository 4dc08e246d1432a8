"""A real ``mp-dnsd`` process for integration tests and ``bench/dns.py``.

Not used by the server itself. Lives in the package (as client-go's ``testing``
does) because both the test suite and the benchmark start dnsd the same way:
free ports, wait for ``/readyz``, query with dnspython, stop with SIGTERM and
kill if that doesn't work, so no process outlives its user.
"""

from __future__ import annotations

import contextlib
import signal
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import dns.message
import dns.query
import dns.rdatatype
import httpx

from componentbase import ports
from componentbase.polling import poll

BIN = Path(sys.executable).parent


def free_port() -> int:
    """A port free for both UDP and TCP on 127.0.0.1 (DNS needs both on one number)."""
    return ports.free_port(udp=True)


@dataclass
class DnsdProcess:
    """One mp-dnsd on 127.0.0.1 with its own DNS and metrics ports."""

    api_url: str
    log_path: Path
    extra_args: Sequence[str] = ()
    port: int = field(default_factory=free_port)
    metrics_port: int = field(default_factory=free_port)
    proc: subprocess.Popen[bytes] | None = None
    command_prefix: Sequence[str] = ()  # e.g. ("taskset", "-c", "1") for the benchmark
    kubeconfig: str | None = None  # CA and credentials for the API server

    @property
    def metrics_url(self) -> str:
        return f"http://127.0.0.1:{self.metrics_port}"

    def start(self, *, wait_ready: bool = True, timeout: float = 20.0) -> DnsdProcess:
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                [*self.command_prefix, str(BIN / "mp-dnsd"), "--server", self.api_url,
                 *(["--kubeconfig", self.kubeconfig] if self.kubeconfig else []),
                 "--listen", f"127.0.0.1:{self.port}",
                 "--metrics-listen", f"127.0.0.1:{self.metrics_port}", *self.extra_args],
                stdout=log, stderr=subprocess.STDOUT)
        try:
            poll(self.readyz if wait_ready else self.healthz, timeout=timeout,
                 what=f"mp-dnsd on port {self.port}")
        except BaseException:
            self.stop()
            raise
        return self

    def _status(self, path: str) -> int:
        if self.proc is not None and self.proc.poll() is not None:
            raise RuntimeError(f"mp-dnsd exited with {self.proc.returncode}: "
                               + self.log_path.read_text()[-3000:])
        try:
            return httpx.get(self.metrics_url + path, timeout=1).status_code
        except httpx.HTTPError:
            return 0

    def healthz(self) -> bool:
        return self._status("/healthz") == 200

    def readyz(self) -> bool:
        return self._status("/readyz") == 200

    def metrics(self) -> str:
        return httpx.get(self.metrics_url + "/metrics", timeout=2).text

    def query(self, name: str, qtype: str | int = "A", *, tcp: bool = False,
              timeout: float = 2.0, **make: Any) -> dns.message.Message:
        """Ask this server (UDP unless ``tcp``); ``make`` goes to ``make_query``."""
        rdtype = dns.rdatatype.RdataType.make(qtype)
        query = dns.message.make_query(name, rdtype, **make)
        send = dns.query.tcp if tcp else dns.query.udp
        return send(query, "127.0.0.1", port=self.port, timeout=timeout)

    def stop(self, sig: int = signal.SIGTERM, *, timeout: float = 10.0) -> int | None:
        """Signal, wait, kill if needed; the exit code (None if it wasn't running)."""
        if self.proc is None:
            return None
        proc, self.proc = self.proc, None
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(sig)
            try:
                proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        return proc.returncode
