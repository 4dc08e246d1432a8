"""The one place that runs ``iptables-restore`` and ``iptables-save``.

Both run inside the target network namespace (``ip netns exec NS …``) or, without
one, in the agent's own namespace. Arguments are lists (no shell); the payload goes
on stdin. Errors::

    RuntimeError
     └── IptablesError        the tool could not be run, timed out, or failed
          └── RestoreError    iptables-restore rejected a payload; carries the line
                              number it named, that line and the lines around it

Backends (``--iptables-backend``): ``nft`` runs ``iptables-nft-restore`` (the
kernel's nf_tables, Debian's default), ``legacy`` runs ``iptables-legacy-restore``
(x_tables). Both name their binaries explicitly, so the ``iptables`` alternative
chosen on the host can't silently switch the backend. The payload limits are the
measured ones (see ``LIMITS`` and the README's figures).
"""

from __future__ import annotations

import logging
import re
import shutil
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass

from nodeagent.proxy.plan import Limits

log = logging.getLogger(__name__)

BACKENDS = ("nft", "legacy")
# Chain declarations per payload. nft: iptables-nft 1.8.9's cost grows with the square
# of the chains one restore touches (declared or jumped to: 10,000 cost 2.4 s, 2,000
# 0.1 s), so big syncs go in slices. Measured at 10,000 Services x 5 endpoints, the
# initial sync's restores took 6.9 s in slices of 250 chains, 5.8 s at 500, 5.6 s at
# 1,000, 8.4 s at 2,000, 13 s at 4,000, 27 s at 8,000. legacy: every restore
# re-uploads the whole table, so slicing would only multiply that cost.
LIMITS = {"nft": Limits(max_chains=1000), "legacy": Limits(max_chains=None)}
# Wait up to this long for the xtables lock (legacy serialises every namespace on it).
LOCK_WAIT_SECONDS = 5
TIMEOUT_SECONDS = 300.0  # a restore that takes longer is broken, not slow
_LINE = re.compile(r"(?:line:? (\d+))", re.IGNORECASE)


class IptablesError(RuntimeError):
    """An iptables tool could not be run or failed."""


class RestoreError(IptablesError):
    """``iptables-restore`` rejected a payload; ``line``/``text`` point at the culprit."""

    def __init__(self, message: str, *, line: int | None, text: str, context: str) -> None:
        super().__init__(message)
        self.line = line
        self.text = text
        self.context = context


@dataclass(frozen=True)
class Backend:
    """iptables-restore/-save of one backend, in one network namespace (None: our own)."""

    kind: str
    netns: str | None = None

    def __post_init__(self) -> None:
        if self.kind not in BACKENDS:
            raise ValueError(f"unknown iptables backend {self.kind!r}; "
                             f"expected one of {', '.join(BACKENDS)}")

    @property
    def limits(self) -> Limits:
        return LIMITS[self.kind]

    def _command(self, tool: str, *args: str) -> list[str]:
        binary = f"iptables-{self.kind}-{tool}"
        prefix = ["ip", "netns", "exec", self.netns] if self.netns else []
        return [*prefix, binary, *args]

    def available(self) -> bool:
        return shutil.which(f"iptables-{self.kind}-restore") is not None

    def restore(self, payload: str) -> None:
        """Apply ``payload`` with ``--noflush`` (chains it doesn't name are untouched)."""
        cmd = self._command("restore", "-w", str(LOCK_WAIT_SECONDS), "--noflush")
        result = _run(cmd, payload)
        if result.returncode != 0:
            raise restore_error(payload, result.stderr, backend=self.kind)

    def save(self, tables: Sequence[str] | None = None) -> str:
        """``iptables-save`` of ``tables`` concatenated; None: every table, in one run.

        One run for all tables is what the sync uses: iptables-nft-save reads the
        whole ruleset whatever ``-t`` says, so ``-t filter`` then ``-t nat`` pays
        twice (0.16 s + 0.22 s against 0.24 s at 1,000 Services, measured)."""
        out: list[str] = []
        for table in tables if tables is not None else [None]:
            args = ("-t", table) if table else ()
            result = _run(self._command("save", *args), None)
            if result.returncode != 0:
                raise IptablesError(f"iptables-{self.kind}-save {' '.join(args)} failed: "
                                    f"{result.stderr.strip() or result.returncode}")
            out.append(result.stdout)
        return "".join(out)


def _run(cmd: list[str], stdin: str | None) -> subprocess.CompletedProcess[str]:
    try:
        return subprocess.run(cmd, input=stdin, capture_output=True, text=True,
                              timeout=TIMEOUT_SECONDS, check=False)
    except FileNotFoundError as exc:
        raise IptablesError(f"{cmd[0]} is not installed") from exc
    except subprocess.TimeoutExpired as exc:
        raise IptablesError(f"{' '.join(cmd[:6])} did not finish in {TIMEOUT_SECONDS:.0f}s"
                            ) from exc


def restore_error(payload: str, stderr: str, *, backend: str) -> RestoreError:
    """A ``RestoreError`` for a failed restore: the first line iptables complained about,
    with two lines of context either side (iptables-nft often names the COMMIT line
    of the failing table, which is why the context matters)."""
    lines = payload.splitlines()
    first = next((s for s in stderr.strip().splitlines() if s.strip()), "failed")
    found = _LINE.search(stderr)
    number = int(found.group(1)) if found else None
    if number is None or not 1 <= number <= len(lines):
        return RestoreError(f"iptables-{backend}-restore: {first}", line=None, text="",
                            context="")
    text = lines[number - 1]
    lo, hi = max(1, number - 2), min(len(lines), number + 2)
    context = "\n".join(f"{'>' if n == number else ' '}{n:6d} {lines[n - 1]}"
                        for n in range(lo, hi + 1))
    return RestoreError(f"iptables-{backend}-restore: {first} (line {number}: {text})",
                        line=number, text=text, context=context)
