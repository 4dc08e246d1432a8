"""``DIR/cluster.json``: what a running local cluster is, for ``down``, ``status``, ``logs``.

Written as soon as ``cluster up`` knows anything (before the first namespace) and
rewritten after each process starts, atomically, so that ``down`` finds every pid
even after ``up`` was killed with ``kill -9`` halfway. Each pid is kept with its
start time (``componentbase.procs``): a pid reused by an unrelated process is never
signalled.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from componentbase.files import write_atomic

FILE = "cluster.json"
# Names are host-wide (namespaces are), so each running cluster's state dir is
# also recorded here: ``down --name N`` finds it from any working directory.
REGISTRY = Path("/run/miniplane/clusters")


@dataclass
class ProcessRecord:
    name: str
    pid: int
    start: str | None
    log: str
    metrics: str | None = None  # HOST:PORT of /healthz, /readyz and /metrics


@dataclass
class NodeRecord:
    name: str
    namespace: str
    ip: str
    state_dir: str


@dataclass
class ClusterState:
    name: str
    state_dir: str
    server: str  # the API server URL; with several, a comma-separated list (--server)
    dns: str  # HOST:PORT on loopback, for people on the host (dig -p)
    fabric: str
    dns_fabric_address: str
    storage: str = "sqlite"  # or "postgresql" (a private server, the "postgres" process)
    lb_pool: str = ""  # LoadBalancer addresses (service-lb), reachable from the fabric
    phase: str = "starting"  # starting | running
    up_pid: int | None = None
    up_start: str | None = None
    nodes: list[NodeRecord] = field(default_factory=list)
    processes: list[ProcessRecord] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return _rekey(asdict(self), _to_camel)

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> ClusterState:
        d = _rekey(doc, _to_snake)
        d["nodes"] = [NodeRecord(**n) for n in d.get("nodes") or []]
        d["processes"] = [ProcessRecord(**p) for p in d.get("processes") or []]
        return cls(**d)

    def node(self, name: str) -> NodeRecord | None:
        return next((n for n in self.nodes if n.name == name), None)


def path(state_dir: Path) -> Path:
    return state_dir / FILE


def save(state: ClusterState) -> None:
    target = path(Path(state.state_dir))
    write_atomic(REGISTRY / state.name, (str(Path(state.state_dir).resolve()) + "\n").encode())
    write_atomic(target, (json.dumps(state.to_json(), indent=2) + "\n").encode())


def load(state_dir: Path) -> ClusterState | None:
    """The recorded state, or None when there is none (never started, or down)."""
    try:
        doc = json.loads(path(state_dir).read_text())
        return ClusterState.from_json(doc)
    except FileNotFoundError:
        return None
    except (ValueError, TypeError, KeyError, AttributeError) as exc:
        raise ValueError(f"{path(state_dir)} is not a cluster state file: {exc}") from None


def remove(state: ClusterState) -> None:
    path(Path(state.state_dir)).unlink(missing_ok=True)
    if registered_dir(state.name) == Path(state.state_dir).resolve():
        (REGISTRY / state.name).unlink(missing_ok=True)


def registered_dir(name: str) -> Path | None:
    """The state dir of the running cluster ``name``, wherever it was started from."""
    try:
        return Path((REGISTRY / name).read_text().strip())
    except OSError:
        return None


def _rekey(value: Any, key: Callable[[str], str]) -> Any:
    """``value`` with every dict key, at any depth, renamed by ``key``."""
    if isinstance(value, dict):
        return {key(k): _rekey(v, key) for k, v in value.items()}
    if isinstance(value, list):
        return [_rekey(v, key) for v in value]
    return value


def _to_camel(key: str) -> str:
    head, *rest = key.split("_")
    return head + "".join(w.capitalize() for w in rest)


def _to_snake(key: str) -> str:
    return "".join(f"_{c.lower()}" if c.isupper() else c for c in key)
