"""Child processes of a local cluster: start them detached with their logs, stop them by pid.

Each component runs in its own session, so Ctrl-C in the terminal of ``cluster up``
reaches only ``up``, which then stops the components in order (agents first, the
API server last), and ``--detach`` can leave them running after ``up`` exits.
"""

from __future__ import annotations

import shutil
import signal
import subprocess
import sys
from pathlib import Path

from componentbase import postgres
from componentbase.procs import kill_group, proc_start_time, same_process, wait_gone

from .plan import Command
from .state import ProcessRecord

STOP_TIMEOUT = 10.0


def bin_dir() -> Path:
    """Where the ``mp-*`` commands are: beside this Python, else on PATH."""
    here = Path(sys.executable).parent
    if (here / "mp-apiserver").exists():
        return here
    found = shutil.which("mp-apiserver")
    return Path(found).parent if found else here


def start(cmd: Command, metrics: str | None) -> ProcessRecord:
    cmd.log.parent.mkdir(parents=True, exist_ok=True)
    identity = postgres.as_postgres(cmd.as_postgres) if cmd.as_postgres else {}
    with open(cmd.log, "ab") as out:
        proc = subprocess.Popen(cmd.argv, stdin=subprocess.DEVNULL, stdout=out,
                                stderr=subprocess.STDOUT, start_new_session=True,
                                **identity)
    return ProcessRecord(name=cmd.name, pid=proc.pid, start=proc_start_time(proc.pid),
                         log=str(cmd.log), metrics=metrics)


def alive(rec: ProcessRecord) -> bool:
    return same_process(rec.pid, rec.start)


def stop(records: list[ProcessRecord]) -> None:
    """SIGTERM all of them at once, wait, then SIGKILL whatever is left."""
    live = [r for r in records if alive(r)]
    for r in live:
        kill_group(r.pid, signal.SIGTERM)
    for r in live:
        if not wait_gone(r.pid, r.start, STOP_TIMEOUT):
            kill_group(r.pid, signal.SIGKILL)
            wait_gone(r.pid, r.start, STOP_TIMEOUT)
