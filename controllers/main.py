"""``mp-controllers``: every controller in one process, on shared informers.

Wiring only. Flags are checked first (``config``; a bad one is one line on stderr
and exit 2) and the metrics socket is bound before anything else, so a busy port
fails at once. Then the informers list and watch (retrying with backoff while the
API server is away), and once every cache has synced, each controller's workers
start. ``/healthz`` answers from the start, ``/readyz`` once synced. SIGTERM or
SIGINT stops workers and watches and exits 0.

With ``--leader-elect`` (the default, as kube-controller-manager) all of that runs
only while the process holds the Lease (``client.leaderelection``): a standby
waits, ready (``/readyz``) once it has seen who leads. A leader that cannot renew
within the renew deadline ("leader election lost") stops its controllers, informers
and event writes and waits until every one of their tasks has ended, before any
standby may take over; then it rejoins the election as a standby with a fresh
``Term`` (new informers and controllers, nothing cached from the old term), and
leads again, relisting everything, if it wins. kube-controller-manager exits there
instead, for its supervisor to restart it: in Go it cannot be sure every goroutine
of the old term has stopped, while here each term's tasks are owned and awaited; and
not every deployment has a supervisor (``mpctl cluster up`` restarts nothing), so
an API server or database away for longer than the renew deadline would otherwise
leave the cluster with no controllers. The gauge
``miniplane_leader_election_master_status`` drops to 0 at the loss, and ``/readyz``
answers as a standby's until the process leads again. A controller that fails
still exits 1. On SIGTERM the leader stops its controllers first and then releases
the Lease, so a standby takes over at its next attempt.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import socket
import sys
import time
from collections.abc import Callable, Coroutine, Sequence
from typing import Any

from client.backoff import Backoff
from client.config import ClientConfig, ConfigError, load_config
from client.http import AsyncClient
from client.leaderelection import LeaderElector, Outcome, Timing, default_identity
from componentbase.flags import HostPort
from componentbase.startup import fail, setup_logging
from componentbase.tasks import run_until_first_done
from controllers.clusterroleaggregation import ClusterRoleAggregationController
from controllers.config import Config, LeaderElection, parse_args
from controllers.deployment import DeploymentController
from controllers.endpoints import EndpointsController
from controllers.endpointslice import EndpointSliceController
from controllers.events import Recorder
from controllers.garbagecollector import GarbageCollector
from controllers.informers import SharedInformers
from controllers.ipam import CidrSet
from controllers.metrics import Metrics, StatusServer
from controllers.nodeipam import NodeIpamController
from controllers.nodelifecycle import NodeLifecycleController
from controllers.podgc import PodGcController
from controllers.replicaset import ReplicaSetController
from controllers.runtime import Controller
from controllers.scheduler import Scheduler
from controllers.serviceaccount import ServiceAccountsController
from controllers.servicelb import ServiceLBController

log = logging.getLogger("controllers")

# Informers re-deliver every cached object this often, so a reconcile that was
# lost (a bug, a dropped key) is repaired without anyone touching the object.
RESYNC_PERIOD = 600.0

# Watch retries: 0.2 s doubling, capped at 5 s (the client's default cap is 30 s).
# Four watches from one process are no load for a restarting API server, and the
# cap bounds how long the world stays unreconciled after it is back.
WATCH_BACKOFF = Backoff(base=0.2, cap=5.0)
# The event sources kube-scheduler and kube-controller-manager's node lifecycle
# controller report as (kubectl describe's From column); the rest report as
# "mp-controllers".
SCHEDULER_COMPONENT = "default-scheduler"
NODE_LIFECYCLE_COMPONENT = "node-controller"
REPLICASET_COMPONENT = "replicaset-controller"
DEPLOYMENT_COMPONENT = "deployment-controller"
SERVICE_LB_COMPONENT = "service-lb-controller"


def build_controllers(config: Config, client: AsyncClient, informers: SharedInformers,
                      metrics: Metrics, recorder: Recorder) -> list[Controller]:
    """The enabled controllers, registered on ``informers`` (before they start)."""
    chosen = config.controllers
    controllers: list[Controller] = []
    if "endpointslice" in chosen:
        controllers.append(EndpointSliceController(
            client, informers, metrics, max_endpoints=config.max_endpoints_per_slice,
            workers=config.endpointslice_workers))
    if "endpoint" in chosen:
        controllers.append(EndpointsController(client, informers, metrics))
    if "scheduler" in chosen:
        controllers.append(Scheduler(client, informers, metrics,
                                     recorder=recorder.for_component(SCHEDULER_COMPONENT)))
    if "nodeipam" in chosen:
        controllers.append(NodeIpamController(
            client, informers, metrics,
            cidrs=CidrSet(config.cluster_cidr, config.node_cidr_mask_size)))
    if "nodelifecycle" in chosen:
        controllers.append(NodeLifecycleController(
            client, informers, metrics, grace_period=config.node_monitor_grace_period,
            recorder=recorder.for_component(NODE_LIFECYCLE_COMPONENT)))
    if "podgc" in chosen:
        controllers.append(PodGcController(client, informers, metrics))
    if "serviceaccount" in chosen:
        controllers.append(ServiceAccountsController(client, informers, metrics))
    if "clusterrole-aggregation" in chosen:
        controllers.append(ClusterRoleAggregationController(client, informers, metrics))
    if "garbagecollector" in chosen:
        controllers.append(GarbageCollector(client, informers, metrics))
    if "replicaset" in chosen:
        controllers.append(ReplicaSetController(
            client, informers, metrics,
            recorder=recorder.for_component(REPLICASET_COMPONENT)))
    if "deployment" in chosen:
        controllers.append(DeploymentController(
            client, informers, metrics,
            recorder=recorder.for_component(DEPLOYMENT_COMPONENT)))
    if "service-lb" in chosen and config.lb_pool is not None:
        controllers.append(ServiceLBController(
            client, informers, metrics, config.lb_pool,
            recorder=recorder.for_component(SERVICE_LB_COMPONENT)))
    return controllers


class Term:
    """One run of the controllers: its own informers, event recorder and controllers.

    A term runs once. After leadership is lost the next term is built from nothing
    (no cache, no work queue, no event in flight of the old one), as a restarted
    process would start; metrics live on across terms (counters keep counting, the
    controllers' gauges are re-registered by the new ones)."""

    def __init__(self, config: Config, client: AsyncClient, metrics: Metrics) -> None:
        self.informers = SharedInformers(client, resync_period=RESYNC_PERIOD,
                                         backoff=WATCH_BACKOFF)
        self.recorder = Recorder(client, "mp-controllers", wall=time.time)
        self.controllers = build_controllers(config, client, self.informers, metrics,
                                             self.recorder)

    async def run(self, until: asyncio.Event | None) -> None:
        """Informers, then every controller, until one ends, ``until`` is set or this
        is cancelled (leadership ended); a controller's failure is raised. Whichever
        way it ends, every task of the term (workers, watches, event writes) has ended
        when this returns, so nothing of it acts afterwards."""
        self.informers.start()
        try:
            if await run_until_first_done({"sync": self.informers.wait_synced()}, stop=until):
                log.info("controllers running")
                await run_until_first_done({c.name: c.run() for c in self.controllers},
                                           stop=until)
        finally:
            await self.informers.stop()
            await self.recorder.close()


class Terms:
    """The term that runs or will run next: what ``/readyz``, the gauges and the
    elector look at."""

    def __init__(self, make: Callable[[], Term]) -> None:
        self._make = make
        self.current = make()

    def fresh(self) -> Term:
        self.current = self._make()
        return self.current


async def run(config: Config, api: ClientConfig, metrics_socket: socket.socket | None) -> int:
    """Run until SIGTERM/SIGINT (exit status 0), or until a controller fails in a way
    its retries can't cover (1: better a restart than a process missing a job). A
    lost leadership stops the term and starts a standby with a fresh one."""
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    client = AsyncClient(api)
    metrics = Metrics()
    terms = Terms(lambda: Term(config, client, metrics))
    metrics.gauge("miniplane_informers_synced", "1 once every informer has listed.",
                  lambda: 1.0 if terms.current.informers.synced() else 0.0)

    elector = None
    if config.leader_election is not None:
        elector = elector_for(config.leader_election, client, lambda: terms.current.run(None))
        metrics.gauge("miniplane_leader_election_master_status",
                      "1 while this process holds the leader Lease (kube-controller-manager's "
                      "leader_election_master_status).",
                      lambda: 1.0 if elector is not None and elector.is_leader() else 0.0)
    status = StatusServer(metrics.render,
                          readiness=lambda: readiness(elector, terms.current.informers))
    if metrics_socket is not None:
        await status.start(metrics_socket)
        host, port = metrics_socket.getsockname()[:2]
        log.info("serving /metrics, /healthz and /readyz on %s:%d", host, port)
    log.info("mp-controllers starting against %s: %s", ", ".join(api.servers),
             ", ".join(c.name for c in terms.current.controllers) or "no controllers")
    status_code = 0
    try:
        if elector is None:
            await terms.current.run(stop)
        else:
            log.info("leader election: %s/%s as %s", elector.namespace, elector.name,
                     elector.identity)
            while await elector.run(stop) is Outcome.LOST:
                log.error("leader election lost: controllers stopped; rejoining the "
                          "election as a standby")
                terms.fresh()
        log.info("stopping")
    except Exception as exc:
        log.error("a controller failed: %r", exc)
        status_code = 1
    finally:
        await status.stop()
        await client.aclose()
    log.info("stopped")
    return status_code


def elector_for(settings: LeaderElection, client: AsyncClient,
                lead: Callable[[], Coroutine[Any, Any, None]]) -> LeaderElector:
    return LeaderElector(
        client, settings.resource_namespace, settings.resource_name, default_identity(), lead,
        Timing(settings.lease_duration, settings.renew_deadline, settings.retry_period))


def readiness(elector: LeaderElector | None, informers: SharedInformers) -> tuple[bool, str]:
    """Ready: leading (or alone) with synced caches, or a standby that knows the leader."""
    if elector is None or elector.is_leader():
        return informers.synced(), "informers not synced"
    return elector.leader != "", "no leader seen yet"


def bind(listen: HostPort) -> socket.socket:
    """A listening TCP socket on ``listen``; raises OSError naming the address."""
    family = socket.AF_INET6 if ":" in listen.host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((listen.host, listen.port))
        sock.listen(64)
        sock.setblocking(False)
    except OSError as exc:
        sock.close()
        raise OSError(exc.errno, f"cannot listen on {listen}: {exc.strerror or exc}") from exc
    return sock


def _exit_quietly(signum: int, frame: object) -> None:
    raise SystemExit(0)


def main(argv: Sequence[str] | None = None) -> int:
    config = parse_args(argv)
    try:
        api = load_config(server=config.server, kubeconfig=config.kubeconfig)
    except ConfigError as exc:
        return fail("mp-controllers", exc, 2)
    # Until the event loop takes over SIGTERM, it still means "stop cleanly".
    signal.signal(signal.SIGTERM, _exit_quietly)
    # httpx's request lines are chatter, except when asked for debug
    setup_logging(config.log_level, quiet=() if config.log_level == "debug" else ("httpx",))
    sock = None
    if config.metrics_listen is not None:
        try:
            sock = bind(config.metrics_listen)
        except OSError as exc:
            return fail("mp-controllers", exc.strerror or exc, 1)
    code = 0
    try:
        code = asyncio.run(run(config, api, sock))
    except KeyboardInterrupt:
        pass
    finally:
        if sock is not None:
            sock.close()
    return code


if __name__ == "__main__":
    sys.exit(main())
