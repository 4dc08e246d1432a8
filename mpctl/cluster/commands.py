"""``mpctl cluster up|down|status``: a whole local cluster from one command, and back.

``up`` records everything it makes in ``DIR/cluster.json`` before making it, so
that ``down`` (which trusts only that file and the cluster's exact namespace names)
can undo a crashed or ``kill -9``-ed ``up``. Any failure during ``up`` tears down
what was built and ends with one line naming the log to read.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import signal
import ssl
import sys
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import httpx

from apimachinery import tables
from apimachinery.kinds import NODE, SERVICE
from client.config import ClientConfig, ConfigError, load_config
from client.errors import AlreadyExists, ApiError, ConnectionFailed
from client.http import Client
from componentbase import mounts, ports, postgres
from componentbase.procs import proc_start_time, same_process, wait_gone

from ..tabwriter import format_table
from . import credentials, leader, network, plan, state, storagerecord, supervisor
from .progress import Progress

STEP_TIMEOUT = 60.0  # generous: two cores shared with other jobs
POLL = 0.1


class UpError(RuntimeError):
    """``cluster up`` can't go on; the message is one line."""


def add_commands(sub: Any) -> None:
    """Register ``cluster up|down|status`` under mpctl's ``cluster`` sub-parser."""
    def target(p: argparse.ArgumentParser) -> None:
        p.add_argument("--name", default=None, help="cluster name (default mp)")
        p.add_argument("--state-dir", default=None, metavar="DIR",
                       help="where logs, kubeconfig and cluster.json live "
                            "(default .miniplane/<name>)")

    p = sub.add_parser("up", help="create a local cluster in network namespaces")
    target(p)
    p.add_argument("--nodes", type=int, default=2, metavar="K", help="number of nodes (2)")
    p.add_argument("--zones", default=None, metavar="A,B,...",
                   help="put the nodes in these zones, round robin (each agent labels its "
                        "Node topology.kubernetes.io/zone); default: no zones")
    p.add_argument("--storage", default="sqlite", metavar="sqlite|postgresql",
                   help="the API server's database: a SQLite file (default) or a private "
                        "PostgreSQL server in the state dir (Debian's `postgresql`)")
    p.add_argument("--apiservers", type=int, default=1, metavar="N",
                   help="API server processes on one database (more than 1 needs --storage "
                        "postgresql; then two controller processes, one leading)")
    p.add_argument("--dns-upstream", default=None, metavar="PATH|HOST:PORT|none",
                   help="where dnsd forwards names outside the cluster: a resolv.conf's "
                        f"nameservers (default {plan.HOST_RESOLV_CONF}, the host's; none "
                        "if it has no nameserver), one server, or none (answer REFUSED)")
    p.add_argument("--lb-pool", default=plan.DEFAULT_LB_POOL, metavar="RANGES",
                   help="addresses for LoadBalancer Services, reachable from the fabric "
                        f"namespace (default {plan.DEFAULT_LB_POOL}; 'none' for no pool)")
    p.add_argument("--detach", action="store_true",
                   help="return once the cluster is up and leave it running")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress display")
    p = sub.add_parser("down", help="stop a local cluster and remove its namespaces")
    target(p)
    p = sub.add_parser("status", help="show a local cluster's components and nodes")
    target(p)
    p = sub.add_parser("pki", help="create (or reuse) a cluster's CA and credentials in a "
                       "directory, as `up` does (for the compose deployment)")
    p.add_argument("--dir", required=True, metavar="DIR",
                   help="where: the API server's files at the top, each other "
                        "credential in DIR/<name>/kubeconfig")
    p.add_argument("--server", required=True, metavar="URL",
                   help="the API server's URL in the components' kubeconfigs")
    p.add_argument("--admin-server", default=None, metavar="URL",
                   help="the URL in the admin's kubeconfig (default: --server)")
    p.add_argument("--admin-kubeconfig", default=None, metavar="PATH",
                   help="where the admin's kubeconfig goes (default DIR/admin/kubeconfig)")
    p.add_argument("--apiserver-name", action="append", default=[], metavar="NAME",
                   help="another DNS name in the serving certificate, repeatable")
    p.add_argument("--apiserver-ip", action="append", default=[], metavar="IP",
                   help="another IP address in the serving certificate, repeatable")
    p.add_argument("--node", action="append", default=[], metavar="NAME",
                   help="a node agent's credential, repeatable")
    p.add_argument("--cluster-name", default="miniplane",
                   help="the kubeconfigs' cluster, user and context name")
    p.add_argument("--storage", default=None, metavar="sqlite|postgresql",
                   help="record the API servers' storage in DIR/storage on the first run and "
                        "refuse another one later (one deployment, one storage)")


def resolve_target(args: argparse.Namespace, *, running: bool = True) -> tuple[str, Path]:
    """(name, state dir) from ``--name``/``--state-dir``, the latter's cluster.json wins.

    For a ``running`` cluster (down, status) without ``--state-dir``, the dir it was
    started with is found in the host-wide registry when not in ``./.miniplane``.
    """
    if args.state_dir:
        state_dir = Path(args.state_dir)
        recorded = state.load(state_dir)
        name = args.name or (recorded.name if recorded else "mp")
    else:
        name = plan.check_name(args.name or "mp")
        state_dir = plan.default_state_dir(name)
        registered = state.registered_dir(name) if running else None
        if registered is not None and not state.path(state_dir).exists() \
                and state.path(registered).exists():
            state_dir = registered
    return plan.check_name(name), state_dir


# --------------------------------------------------------------------------- up

def free_port(preferred: int | None = None, *, udp: bool = False) -> int:
    """``preferred`` if free on loopback, else any free port; with ``udp``, free for
    UDP as well as TCP (dnsd serves both on one port). See ``componentbase.ports``."""
    try:
        return ports.free_port(preferred, udp=udp)
    except OSError as exc:
        raise UpError(exc.strerror or str(exc)) from None


def wait_for(check: Callable[[], bool], what: str, log: Path | None = None,
             alive: Callable[[], str | None] | None = None,
             timeout: float = STEP_TIMEOUT) -> None:
    """Poll ``check`` until true; fail early if ``alive`` reports a component gone."""
    deadline = time.monotonic() + timeout
    while True:
        with contextlib.suppress(Exception):
            if check():
                return
        if alive is not None and (gone := alive()):
            raise UpError(gone)
        if time.monotonic() > deadline:
            hint = f"; see {log}" if log else ""
            raise UpError(f"timed out after {timeout:.0f}s waiting for {what}{hint}")
        time.sleep(POLL)


class Up:
    """One run of ``cluster up``: builds, records and (on failure) tears down."""

    def __init__(self, name: str, nodes: int, state_dir: Path, progress: Progress,
                 storage: str = "sqlite", apiservers: int = 1,
                 zones: tuple[str, ...] = (),
                 dns_upstream: str = plan.NO_DNS_UPSTREAM,
                 lb_pool: str = plan.DEFAULT_LB_POOL) -> None:
        self.progress = progress
        taken: set[int] = set()

        def port(preferred: int | None = None, *, udp: bool = False) -> int:
            """A free port no other component of this cluster was given."""
            while (picked := free_port(preferred, udp=udp)) in taken:
                preferred = None
            taken.add(picked)
            return picked

        api_ports = [port(plan.PREFERRED_API_PORT), *(port() for _ in range(apiservers - 1))]
        controllers = ["controllers", "controllers-2"] if apiservers > 1 else ["controllers"]
        ports = {c: port() for c in (*controllers, "dnsd")}
        ports |= {f"node-{i}": port() for i in range(1, nodes + 1)}
        agent_ports = {f"node-{i}": port() for i in range(1, nodes + 1)}
        # an API server's "status socket" is its HTTPS port (cluster status probes /readyz)
        ports |= {plan.numbered("apiserver", i): p for i, p in enumerate(api_ports, start=1)}
        self.spec = plan.ClusterSpec(name=name, nodes=nodes, state_dir=state_dir,
                                     api_port=api_ports[0],
                                     dns_port=port(plan.PREFERRED_DNS_PORT, udp=True),
                                     metrics_ports=ports, storage=storage,
                                     more_api_ports=tuple(api_ports[1:]),
                                     agent_ports=agent_ports, zones=zones,
                                     dns_upstream=dns_upstream, lb_pool=lb_pool)
        self.state = state.ClusterState(
            name=name, state_dir=str(state_dir), server=",".join(self.spec.servers),
            dns=f"127.0.0.1:{self.spec.dns_port}", fabric=self.spec.fabric,
            dns_fabric_address=plan.FABRIC_IP, storage=storage, lb_pool=lb_pool,
            up_pid=os.getpid(),
            up_start=proc_start_time(os.getpid()),
            nodes=[state.NodeRecord(name=n.name, namespace=n.namespace, ip=n.ip,
                                    state_dir=str(n.state_dir.resolve()))
                   for n in self.spec.node_plans()])
        self.client: Client | None = None

    def run(self) -> None:
        spec, p = self.spec, self.progress
        self._prepare()
        pki = spec.pki()
        with p.step(f"CA and credentials in {pki.dir}"):
            credentials.ensure(pki)
        with p.step(f"network: fabric and {spec.nodes} node namespace"
                    + ("s" if spec.nodes > 1 else "")):
            network.build(spec)
        commands = plan.component_commands(spec, supervisor.bin_dir())
        if spec.storage == "postgresql":
            db, commands = commands[0], commands[1:]
            with p.step(f"PostgreSQL, its socket in {spec.postgres_dir}"):
                try:
                    postgres.prepare(spec.postgres_dir)
                    self._start(db)
                    rec = self.state.processes[-1]
                    postgres.wait_ready(spec.postgres_dir, lambda: supervisor.alive(rec))
                    postgres.create_database(spec.postgres_dir)
                except postgres.PostgresError as exc:
                    raise UpError(f"{exc}; see {db.log}") from None
        apis = [c for c in commands if c.name.startswith("apiserver")]
        rest = [c for c in commands if c not in apis]
        with p.step(f"API server{'s' if len(apis) > 1 else ''} on {', '.join(spec.servers)}"):
            for api in apis:
                self._start(api)
            self.client = Client(load_config(server=",".join(spec.servers),
                                             kubeconfig=spec.kubeconfig))
            for api, url in zip(apis, spec.servers, strict=True):
                wait_for(partial(self._api_ready, url), f"{api.name} to be ready", api.log,
                         self._gone)
        upstream = "no upstream DNS" if spec.dns_upstream == plan.NO_DNS_UPSTREAM \
            else f"forwarding to {spec.dns_upstream}"
        with p.step(f"controllers, dnsd ({upstream}) and node agents"):
            for cmd in rest:
                self._start(cmd)
        with p.step("kubernetes and kube-dns Services"):
            self._register_dns()
        with p.step(f"{spec.nodes} node" + ("s" if spec.nodes > 1 else "") + " Ready"):
            cidrs: dict[str, str] = {}
            wait_for(lambda: self._nodes_ready(cidrs), "every node to be Ready",
                     spec.log_path("node-1"), self._gone)
            for argv in plan.fabric_route_commands(spec, cidrs):
                network.run(argv)
        with p.step(f"cluster DNS answering at {plan.DNS_CLUSTER_IP} from the nodes"):
            for node in spec.node_plans():
                wait_for(partial(network.dns_answers, node.namespace, plan.DNS_CLUSTER_IP,
                                 f"kubernetes.default.svc.{plan.CLUSTER_DOMAIN}"),
                    f"kube-dns to answer from {node.name}", spec.log_path("dnsd"), self._gone)
        self.state.phase = "running"
        state.save(self.state)

    def _prepare(self) -> None:
        """Start clean: no state of an earlier run of this name, then record ourselves."""
        d = self.spec.state_dir
        for stale in ("state.db", "state.db-wal", "state.db-shm"):
            (d / stale).unlink(missing_ok=True)
        for stale_dir in ("nodes", "postgres"):
            if (d / stale_dir).is_dir():
                shutil.rmtree(d / stale_dir)
        (d / "logs").mkdir(parents=True, exist_ok=True)
        state.save(self.state)

    def _start(self, cmd: plan.Command) -> None:
        port = self.spec.metrics_ports.get(cmd.name)
        rec = supervisor.start(cmd, f"127.0.0.1:{port}" if port else None)
        self.state.processes.append(rec)
        state.save(self.state)

    def _gone(self) -> str | None:
        for rec in self.state.processes:
            if not supervisor.alive(rec):
                return f"{rec.name} exited during start-up; see {rec.log}"
        return None

    def _api_ready(self, server: str) -> bool:
        return _probe(f"{server}/readyz", self.spec.pki().ca_cert) == "ready"

    def _register_dns(self) -> None:
        assert self.client is not None
        wait_for(lambda: bool(self.client and self.client.get(SERVICE, "kubernetes",
                                                              "default")),
                 "the API server to create the kubernetes Service")
        for kind, obj in plan.kube_dns_objects():
            with contextlib.suppress(AlreadyExists):
                self.client.create(kind, obj, "kube-system")

    def _nodes_ready(self, cidrs: dict[str, str]) -> bool:
        assert self.client is not None
        items = self.client.list(NODE)["items"]
        wanted = {n.name for n in self.spec.node_plans()}
        for node in items:
            name = node["metadata"]["name"]
            if name in wanted and _ready(node) and node.get("spec", {}).get("podCIDR"):
                cidrs[name] = node["spec"]["podCIDR"]
        return set(cidrs) == wanted

    def close(self) -> None:
        if self.client is not None:
            self.client.close()


def next_steps(st: state.ClusterState, seconds: float, detached: bool) -> str:
    kubeconfig = (Path(st.state_dir) / "kubeconfig").resolve()
    pki = (Path(st.state_dir) / "pki").resolve()
    host, port = st.dns.rsplit(":", 1)
    down = f"mpctl cluster down --name {st.name}"
    return "\n".join([
        "",
        f"Cluster {st.name!r} is up: {len(st.nodes)} node{'s' if len(st.nodes) > 1 else ''} "
        f"in {seconds:.1f}s. API server {st.server}, DNS {st.dns}.",
        f"Admin credential: {kubeconfig}; CA and components' credentials: {pki}/",
        "(kept by `down` and reused by the next `up`).",
        "",
        "Try:",
        f"  export KUBECONFIG={kubeconfig}",
        "  mpctl get nodes -o wide",
        "  mpctl apply -f examples/ && mpctl get pods -o wide -w",
        "  mpctl exec client -- curl -s web",
        "  mpctl exec client -- getent hosts web",
        f"  dig @{host} -p {port} +short kubernetes.default.svc.cluster.local",
        f"  mpctl cluster status --name {st.name}",
        *([f"  # a LoadBalancer Service's EXTERNAL-IP (from {st.lb_pool}) answers the fabric:",
           f"  ip netns exec {st.fabric} curl -s http://<EXTERNAL-IP>/"] if st.lb_pool else []),
        "",
        (f"Stop it with: {down}" if detached else
         f"Press Ctrl-C to stop it (or run: {down})."),
        "",
    ])


def cmd_up(args: argparse.Namespace) -> int:
    if (why := network.missing_tools()) is not None:
        raise UpError(why)
    name, state_dir = resolve_target(args, running=False)
    nodes = plan.check_nodes(args.nodes)
    storage = plan.check_storage(args.storage)
    apiservers = plan.check_apiservers(args.apiservers, storage)
    zones = plan.check_zones(args.zones)
    dns_upstream = plan.check_dns_upstream(args.dns_upstream)
    lb_pool = plan.check_lb_pool(args.lb_pool, nodes)
    registered = state.registered_dir(name)
    for d in dict.fromkeys([state_dir.resolve()] + ([registered] if registered else [])):
        with contextlib.suppress(ValueError):
            running = state.load(d)
            if running is not None and any(supervisor.alive(r) for r in running.processes):
                where = state_dir if d == state_dir.resolve() else d
                raise UpError(f"cluster {name!r} is already running (state in {where}); "
                              f"run: mpctl cluster down --name {name}")
    existing = state.load(state_dir)
    leftovers = network.cluster_namespaces(name)
    if leftovers and existing is None:
        raise UpError(f"namespaces of a cluster {name!r} exist but {state_dir} has no "
                      f"cluster.json; another state dir runs it (or run: mpctl cluster "
                      f"down --name {name} --state-dir <its dir>)")
    progress = Progress(quiet=args.quiet)
    if existing is not None:
        with progress.step(f"removing what is left of an earlier {name!r}"):
            teardown(existing)
    up = Up(name, nodes, state_dir.resolve(), progress, storage, apiservers, zones,
            dns_upstream, lb_pool)
    try:
        up.run()
    except BaseException as exc:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        with progress.step("tearing down"):
            teardown(up.state)
        if isinstance(exc, KeyboardInterrupt):
            return 130
        raise
    finally:
        up.close()
    progress.say(next_steps(up.state, progress.elapsed(), args.detach))
    if args.detach:
        return 0
    return _foreground(up.state, progress)


def _foreground(st: state.ClusterState, progress: Progress) -> int:
    """Stay until Ctrl-C/SIGTERM (or ``cluster down`` from elsewhere), then tear down."""
    reported: set[str] = set()
    try:
        while state.load(Path(st.state_dir)) is not None:
            for rec in st.processes:
                if rec.name not in reported and not supervisor.alive(rec):
                    reported.add(rec.name)
                    progress.say(f" ! {rec.name} (pid {rec.pid}) exited; see {rec.log}")
            time.sleep(0.5)
        return 0
    except KeyboardInterrupt:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        with progress.step(f"stopping cluster {st.name!r}"):
            teardown(st)
        return 0


def _ready(node: dict[str, Any]) -> bool:
    """Ready as ``kubectl get nodes`` shows it (a cordoned node is still Ready)."""
    return tables.node_status(node).split(",")[0] == "Ready"


# --------------------------------------------------------------------------- down

def teardown(st: state.ClusterState) -> list[str]:
    """Stop every recorded process (agents first), remove the namespaces and the record."""
    agents = [r for r in st.processes if not plan.is_control_plane(r.name)]
    control = [r for r in st.processes if plan.is_control_plane(r.name)]
    supervisor.stop(agents)
    supervisor.stop(list(reversed(control)))
    removed = network.remove(st.name)
    mounts.unmount_under(Path(st.state_dir))  # pods' UTS namespaces the agents left
    state.remove(st)
    return removed


def cmd_down(args: argparse.Namespace) -> int:
    if (why := network.missing_tools()) is not None:
        raise UpError(why)
    name, state_dir = resolve_target(args)
    st = state.load(state_dir)
    if st is not None and st.name != name:
        raise UpError(f"{state_dir} holds cluster {st.name!r}, not {name!r}")
    existed = network.cluster_namespaces(name)  # a foreground ``up`` may remove them
    if st is not None and st.up_pid and same_process(st.up_pid, st.up_start) \
            and st.up_pid != os.getpid():
        # A foreground ``up`` tears down on SIGTERM: let it, and wait, so that two
        # teardowns never race; ours then finds only what it left (normally nothing).
        os.kill(st.up_pid, signal.SIGTERM)
        wait_gone(st.up_pid, st.up_start, 30)
        st = state.load(state_dir) or st
    if st is None:
        removed = network.remove(name)
        if not removed:
            print(f"cluster {name!r} is not running")
            return 0
    else:
        removed = teardown(st)
    count = len(set(existed) | set(removed))
    print(f"cluster {name!r} stopped; removed {count} namespace{'' if count == 1 else 's'}")
    return 0


# --------------------------------------------------------------------------- status

def _admin_config(st: state.ClusterState) -> ClientConfig:
    """The cluster's own admin credential, whatever KUBECONFIG says."""
    return load_config(server=st.server, kubeconfig=Path(st.state_dir) / "kubeconfig")


def _probe(url: str, ca_file: Path | None = None) -> str:
    """``ready``, or why not; ``ca_file`` verifies an https URL."""
    try:
        verify = ssl.create_default_context(cafile=str(ca_file)) if ca_file else True
        r = httpx.get(url, timeout=1, verify=verify)
    except (httpx.HTTPError, OSError):
        return "not answering"
    return "ready" if r.status_code == 200 else f"not ready ({r.status_code})"


def cmd_status(args: argparse.Namespace) -> int:
    name, state_dir = resolve_target(args)
    st = state.load(state_dir)
    if st is None:
        print(f"cluster {name!r} is not running (no {state.path(state_dir)})")
        return 1
    out = sys.stdout
    out.write(f"cluster {st.name!r} ({st.phase}): API server {st.server}, DNS {st.dns}, "
              f"storage {st.storage}, state {st.state_dir}\n")
    with contextlib.suppress(ConfigError), Client(_admin_config(st), timeout=5) as client:
        out.write(leader.leader_line(client, st.processes) + "\n")
    out.write("\n")
    healthy = True
    rows = [["COMPONENT", "PID", "PROCESS", "HEALTH", "LOG"]]
    for rec in st.processes:
        running = supervisor.alive(rec)
        healthy &= running
        api = rec.name.startswith("apiserver")
        url = f"https://{rec.metrics}/readyz" if api and rec.metrics else \
            f"{st.server.split(',')[0]}/readyz" if api else \
            f"http://{rec.metrics}/readyz" if rec.metrics else None
        ca = Path(st.state_dir) / "pki" / "ca.crt" if api else None
        health = _probe(url, ca) if running and url else "-"
        rows.append([rec.name, str(rec.pid), "running" if running else "exited", health,
                     rec.log])
    out.write(format_table(rows))
    try:
        with Client(_admin_config(st)) as client:
            nodes = client.list(NODE)["items"]
    except (ApiError, ConnectionFailed, ConfigError) as exc:
        out.write(f"nodes: API server not reachable ({exc})\n")
        return 1
    rows = [["NODE", "STATUS", "INTERNAL-IP", "POD-CIDR", "NAMESPACE"]]
    for node in nodes:
        name = node["metadata"]["name"]
        local = st.node(name)
        healthy &= _ready(node)
        rows.append([name, tables.node_status(node), tables.node_address(node, "InternalIP"),
                     node.get("spec", {}).get("podCIDR", tables.NONE),
                     local.namespace if local else "<not local>"])
    out.write("\n" + format_table(rows))
    return 0 if healthy else 1


# --------------------------------------------------------------------------- pki

def cmd_pki(args: argparse.Namespace) -> int:
    """The ``up`` PKI for a deployment ``up`` doesn't run (compose): same plan, same files."""
    pki = plan.pki_plan(Path(args.dir), server=args.server, admin_server=args.admin_server,
                        admin_kubeconfig=Path(args.admin_kubeconfig)
                        if args.admin_kubeconfig else None,
                        nodes=args.node, apiserver_names=args.apiserver_name,
                        apiserver_ips=args.apiserver_ip, cluster_name=args.cluster_name)
    made = None if args.storage is None else storagerecord.claim(pki.dir, args.storage)
    outcome = credentials.ensure(pki)
    for path in outcome.created:
        print(f"created {path}")
    for path in outcome.kept:
        print(f"kept {path}")
    if made is not None:
        print(f"{'created' if made else 'kept'} {storagerecord.path(pki.dir)}")
    return 0
