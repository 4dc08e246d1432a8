"""mp-apiserver as a process: flags, signals, logs."""

from __future__ import annotations

import signal
import subprocess

import pytest

from tests.conftest import BIN


@pytest.mark.parametrize("flags, message", [
    (["--listen", "nope"], "argument --listen: 'nope' is not HOST:PORT"),
    (["--service-cluster-ip-range", "10.0.0.0/33"], "argument --service-cluster-ip-range: "
                                                    "invalid CIDR"),
    (["--service-node-port-range", "40000-30000"], "argument --service-node-port-range: "
                                                   "invalid port range"),
    (["--event-retention", "0"], "argument --event-retention: must be at least 1, got 0"),
    (["--storage-url", "mysql://x"], "argument --storage-url: must be"),
])
def test_bad_flags_exit_2_with_one_line(flags: list[str], message: str, tmp_path):
    proc = subprocess.run([str(BIN / "mp-apiserver"), *flags], capture_output=True, text=True,
                          timeout=30, cwd=tmp_path)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("mp-apiserver: error:")
    assert message in lines[0]
    assert "Traceback" not in proc.stderr


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_stop_signal_is_a_clean_exit(apiserver, sig):
    proc = apiserver.proc
    proc.send_signal(sig)
    assert proc.wait(timeout=15) == 0
    log = apiserver.log_path.read_text()
    assert "stopped at revision" in log and "Traceback" not in log
