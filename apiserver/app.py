"""The FastAPI application: wiring of storage, log follower, watch hub, writes and loops."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass

import anyio
import orjson
from fastapi import FastAPI
from prometheus_client.core import Metric
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.types import Receive, Scope, Send

from apiserver import discovery, health, nodeproxy, openapi, peers, podconnect, proxytargets
from apiserver.admission.plugins import default_chain
from apiserver.auth import policy
from apiserver.auth.authn import Authenticator, is_public_path, unauthorized
from apiserver.auth.authorizer import DEFAULT_MODES
from apiserver.auth.filters import Authorization, Tee, check_request
from apiserver.auth.user import USER_KEY
from apiserver.endpointreconciler import EndpointReconciler
from apiserver.errors import AlreadyExists, APIError, Conflict, NotFound
from apiserver.handlers import Api, error_response, json_response
from apiserver.inflight import InFlight
from apiserver.listcache import ListCache
from apiserver.metrics import Metrics
from apiserver.nodeproxy import KubeletClientConfig, ServiceUnavailable
from apiserver.podconnect import PodConnector
from apiserver.proxies import Proxier
from apiserver.registry.namespace import STRATEGY as NAMESPACES
from apiserver.registry.rbac import CLUSTER_ROLE_BINDINGS, CLUSTER_ROLES
from apiserver.registry.service import STRATEGY as SERVICES
from apiserver.registry.strategy import Strategy
from apiserver.services import ServiceAllocations
from apiserver.storage.backend import Backend
from apiserver.storage.follower import LogFollower
from apiserver.storage.store import CorruptObject, Store
from apiserver.watchhub import DEFAULT_BUFFER, WatchHub
from apiserver.writes import Writes
from componentbase.tasks import cancel_and_wait

log = logging.getLogger(__name__)

SYSTEM_NAMESPACES = ("default", "kube-system", "kube-public", "kube-node-lease")


@dataclass(frozen=True)
class Config:
    storage_url: str = "sqlite:///.miniplane/state.db"
    service_cidr: str = "10.96.0.0/16"
    node_port_range: str = "30000-32767"
    event_retention: int = 10_000
    compaction_interval: float = 5.0
    watch_buffer: int = DEFAULT_BUFFER
    reconcile_interval: float = 10.0
    advertise_address: str = "127.0.0.1"
    port: int = 6443
    # the identity Lease behind the kubernetes Service's endpoints (apiserver/peers.py)
    endpoint_lease_duration: float = 15.0
    endpoint_reconcile_interval: float = 5.0
    authorization_modes: tuple[str, ...] = DEFAULT_MODES
    # enforce level of namespaces without a pod-security.kubernetes.io/enforce label
    pod_security_default: str = "privileged"
    cert_dir: str = ""  # where the CA and keys live ("" when every file was given)
    # serving limits (0: no limit), as kube-apiserver's flags of the same names
    max_requests_inflight: int = 400
    max_mutating_requests_inflight: int = 200
    request_timeout: float = 60.0
    # how to reach node agents (pods/log, exec, attach): apiserver/nodeproxy.py
    kubelet: KubeletClientConfig = KubeletClientConfig()


class State:
    """Everything the running server holds; created in the lifespan, closed at shutdown."""

    def __init__(self, config: Config, authenticator: Authenticator,
                 store: Backend | None = None) -> None:
        self.config = config
        self.store: Backend = store if store is not None else Store(config.storage_url)
        self.allocations = ServiceAllocations(config.service_cidr, config.node_port_range)
        self.allocations.rebuild(self.store.all_objects(SERVICES.key))
        self.hub = WatchHub(self.store.revision, buffer=config.watch_buffer)
        after = self.store.revision
        self.authz = Authorization(config.authorization_modes)
        self.authz.load(self.store)
        # authorization learns of a write before its watchers do; the list cache (fanout)
        # before the hub, so a list never reports a revision its state lacks
        self.list_cache = ListCache(self.store, lambda: self.hub.last_rv)
        self.follower = LogFollower(self.store, Tee([self.authz, self.list_cache, self.hub]),
                                    after=after)
        self.metrics = Metrics()
        self.writes = Writes(self.allocations, authenticator.issuer, default_chain(
            pod_security_default=config.pod_security_default, authorize=self.authz.authorize))
        self.api = Api(self.store, self.hub, self.writes, self.metrics, authenticator,
                       self.authz, self.list_cache)
        self.endpoints = EndpointReconciler(self.store, self.writes, peers.Identity(
            socket.gethostname(), config.advertise_address, config.port),
            duration=config.endpoint_lease_duration,
            interval=config.endpoint_reconcile_interval)
        self.connector = PodConnector(self.store, config.kubelet, lambda: self.authz)
        self.proxier = Proxier(self.store, config.kubelet)
        self.ready = False

    def start(self) -> None:
        """On the event loop: the hub follows the committed log, then writes may begin."""
        self.follower.start()
        self.store.on_batch_failure = lambda: self.allocations.rebuild(
            self.store.all_objects(SERVICES.key))
        self.store.start()

    async def bootstrap(self) -> None:
        """Objects that exist from the first start: system namespaces, the kubernetes Service."""
        for name in SYSTEM_NAMESPACES:
            await self._ensure(NAMESPACES, "", {"metadata": {"name": name}})
        await self.ensure_kubernetes_service()
        await self.reconcile_policy()

    async def reconcile_policy(self) -> None:
        """The bootstrap ClusterRoles and bindings: created when missing, given back what
        they lost (kube-apiserver's bootstrap-roles)."""
        for rt, objs in ((CLUSTER_ROLES, policy.cluster_roles()),
                         (CLUSTER_ROLE_BINDINGS, policy.cluster_role_bindings())):
            for want in objs:
                name = want["metadata"]["name"]
                try:
                    raw = await anyio.to_thread.run_sync(self.store.get, rt.key, "", name)
                except CorruptObject:
                    continue  # logged at start; --check-storage names it
                have = orjson.loads(raw) if raw is not None else None
                new = policy.reconciled(want, have)
                if new is None:
                    continue
                try:
                    if have is None:
                        await asyncio.wrap_future(
                            self.store.submit(self.writes.create(rt, "", new)))
                        log.info("created %s %s", rt.kind.kind, name)
                    else:
                        await asyncio.wrap_future(
                            self.store.submit(self.writes.update(rt, "", name, new)))
                        log.info("reconciled %s %s", rt.kind.kind, name)
                except (AlreadyExists, Conflict, NotFound):
                    pass  # written meanwhile (another server): the next round looks again

    async def ensure_kubernetes_service(self) -> None:
        body = {
            "metadata": {"name": "kubernetes", "namespace": "default",
                         "labels": {"component": "apiserver", "provider": "kubernetes"}},
            "spec": {"type": "ClusterIP", "clusterIP": self.allocations.kubernetes_ip,
                     "ports": [{"name": "https", "port": 443, "protocol": "TCP",
                                "targetPort": self.config.port}]},
        }
        await self._ensure(SERVICES, "default", body)

    async def _ensure(self, rt: Strategy, namespace: str, body: dict) -> None:
        name = body["metadata"]["name"]
        try:
            exists = await anyio.to_thread.run_sync(
                self.store.get, rt.key, namespace if rt.kind.namespaced else "", name)
        except CorruptObject:
            return  # logged at start; --check-storage names it
        if exists is not None:
            return
        try:
            await asyncio.wrap_future(self.store.submit(self.writes.create(rt, namespace, body)))
            log.info("created %s %s", rt.kind.kind, f"{namespace}/{name}" if namespace else name)
        except (AlreadyExists, NotFound):
            pass

    async def compact_forever(self) -> None:
        while True:
            await asyncio.sleep(self.config.compaction_interval)
            try:
                before = self.store.compacted_revision
                target = await asyncio.wrap_future(self.store.compact(self.config.event_retention))
                if target != before:
                    log.debug("compacted event log up to revision %d", target)
            except APIError:
                log.exception("compaction failed")

    async def reconcile_forever(self) -> None:
        while True:
            await asyncio.sleep(self.config.reconcile_interval)
            try:
                await self.bootstrap()
            except APIError:
                log.exception("reconciling system objects failed")

    def render_metrics(self) -> str:
        return self.metrics.render({
            "apiserver_storage_revision": lambda: self.store.revision,
            "apiserver_storage_compacted_revision": lambda: self.store.compacted_revision,
            "apiserver_storage_write_batches": lambda: self.store.batches,
            "apiserver_storage_writes": lambda: self.store.writes,
            "apiserver_watchers": lambda: self.hub.watchers,
            "apiserver_watch_streams_cut": lambda: self.hub.cut,
            "apiserver_service_cluster_ips_used": lambda: self.allocations.ips.used(),
            "apiserver_service_node_ports_used": lambda: self.allocations.ports.used(),
        })


def create_app(config: Config, authenticator: Authenticator,
               store: Backend | None = None,
               collectors: Sequence[Callable[[], Iterable[Metric]]] = ()) -> ResourceFastPath:
    """The ASGI app; ``authenticator`` (``Authenticator.from_options``) judges every request;
    ``store``, when given, is the storage ``main`` already opened and checked;
    ``collectors`` add to ``/metrics`` (the server's connection counts)."""
    state_box: dict[str, State] = {}
    inflight = InFlight(config.max_requests_inflight, config.max_mutating_requests_inflight,
                        config.request_timeout)

    @contextlib.asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        state = State(config, authenticator, store)
        state_box["state"] = state
        for collect in (inflight.collect, *collectors):
            state.metrics.registry.collector(collect)
        loop = asyncio.get_running_loop()
        state.start()
        # what stored Services hold, claimed in the database (one from before claims)
        await asyncio.wrap_future(state.store.submit(state.allocations.adopt))
        # A long watch would hold a graceful shutdown for its whole timeout: end them first.
        app.state.end_watches = lambda: loop.call_soon_threadsafe(state.hub.close_all)
        await state.bootstrap()
        try:
            await state.endpoints.reconcile()
        except APIError:  # the next round tries again; serving need not wait for it
            log.exception("reconciling the kubernetes Service's endpoints failed")
        tasks = [asyncio.create_task(state.compact_forever()),
                 asyncio.create_task(state.reconcile_forever()),
                 asyncio.create_task(state.endpoints.run())]
        state.ready = True
        log.info("serving at revision %d, storage %s", state.store.revision, config.storage_url)
        try:
            yield
        finally:
            state.ready = False
            await cancel_and_wait(tasks)
            await state.endpoints.withdraw()
            state.hub.close_all()
            await state.list_cache.close()
            await anyio.to_thread.run_sync(state.store.close)
            await state.follower.stop()
            log.info("stopped at revision %d", state.store.revision)

    app = FastAPI(lifespan=lifespan, openapi_url=None, docs_url=None, redoc_url=None)

    livez, readyz, healthz = health_checks(state_box)

    async def version(_request: Request) -> Response:
        return json_response(discovery.SERVER_VERSION)

    async def metrics(_request: Request) -> Response:
        return PlainTextResponse(state_box["state"].render_metrics(),
                                 media_type="text/plain; version=0.0.4")

    async def api_root(request: Request) -> Response:
        return json_response(discovery.api_versions(request.headers.get("host", "")))

    async def apis_root(_request: Request) -> Response:
        return json_response(discovery.api_group_list())

    async def core_v1(_request: Request) -> Response:
        return json_response(discovery.api_resource_list("", "v1"))

    async def group_version(request: Request) -> Response:
        doc = discovery.api_resource_list(request.path_params["group"],
                                          request.path_params["version"])
        if doc is None:
            return error_response(NotFound("the server could not find the requested resource"))
        return json_response(doc)

    async def openapi_index(_request: Request) -> Response:
        return json_response(openapi.v3_index())

    async def openapi_core(request: Request) -> Response:
        return json_response(openapi.v3_document("", request.path_params["version"]))

    async def openapi_group(request: Request) -> Response:
        doc = openapi.v3_document(request.path_params["group"], request.path_params["version"])
        if doc is None:
            return error_response(NotFound("the server could not find the requested resource"))
        return json_response(doc)

    for path, endpoint in (("/openapi/v3", openapi_index),
                           ("/openapi/v3/api/{version}", openapi_core),
                           ("/openapi/v3/apis/{group}/{version}", openapi_group),
                           ("/healthz", healthz.root), ("/livez", livez.root),
                           ("/readyz", readyz.root), ("/healthz/{check}", healthz.one),
                           ("/livez/{check}", livez.one), ("/readyz/{check}", readyz.one),
                           ("/version", version), ("/metrics", metrics), ("/api", api_root),
                           ("/apis", apis_root), ("/api/v1", core_v1),
                           ("/apis/{group}/{version}", group_version)):
        app.add_api_route(path, endpoint, methods=["GET"])
    return ResourceFastPath(app, state_box, authenticator, inflight)


def health_checks(state_box: dict[str, State]
                  ) -> tuple[health.Checks, health.Checks, health.Checks]:
    """/livez's, /readyz's and (deprecated, as /livez) /healthz's checks
    (``apiserver.health`` says which belongs where)."""

    def on_state(judge: Callable[[State], Awaitable[str | None]]) -> health.Check:
        async def check() -> str | None:
            state = state_box.get("state")
            return "the server has not started" if state is None else await judge(state)
        return check

    async def writer(state: State) -> str | None:
        return None if state.store.writer_alive else "the storage writer thread is not running"

    async def follower(state: State) -> str | None:
        return None if state.follower.alive else "the log follower is not running"

    async def storage(state: State) -> str | None:
        return await state.store.health.check()

    async def shutdown(state: State) -> str | None:
        return None if state.ready else "the server is starting or shutting down"

    live = [("ping", health.ping), ("storage-writer", on_state(writer)),
            ("log-follower", on_state(follower))]
    ready = [*live, ("storage", on_state(storage)), ("shutdown", on_state(shutdown))]
    return (health.Checks("livez", live), health.Checks("readyz", ready),
            health.Checks("healthz", live))


class ResourceFastPath:
    """The ASGI entry point: every HTTP request is authenticated here, then resource
    paths go straight to ``Api.dispatch``.

    Every object read and write goes through here; skipping FastAPI's routing and
    middleware stack more than doubles requests per second on a small machine.
    Everything else (discovery, health, version, metrics, the lifespan) is FastAPI's.
    """

    def __init__(self, app: FastAPI, state_box: dict[str, State],
                 authenticator: Authenticator, inflight: InFlight | None = None) -> None:
        self.app = app
        self.state_box = state_box
        self.authenticator = authenticator
        self.inflight = inflight or InFlight(0, 0, Config.request_timeout)

    def end_watches(self) -> None:
        """Close every watch stream (at a stop signal, so shutdown need not wait for them)."""
        end = getattr(self.app.state, "end_watches", None)
        if end is not None:
            end()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "websocket":
            await self.websocket(scope, receive, send)
            return
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        state = self.state_box.get("state")
        try:
            # 1. authentication: who is asking (401 for bad credentials, and for
            #    system:anonymous anywhere but the public health and version paths)
            user = await self.authenticator.authenticate(
                scope, state.store if state is not None else None)
            if user.is_anonymous and not is_public_path(scope["path"]):
                raise unauthorized()
            scope[USER_KEY] = user
            # 2. impersonation (which may replace scope[USER_KEY]), then authorization
            info = check_request(scope, state.authz if state is not None else _NOBODY)
            connect = podconnect.connect_target(scope["path"]) if state is not None else None
            if connect is not None and state is not None and connect[1].websocket:
                state.connector.check_create(scope, info)
            proxied = proxytargets.proxy_path(scope["path"]) if state is not None else None
            # 3. load shedding (429), kube-apiserver's max-in-flight filter
            slot = self.inflight.admit(scope, scope[USER_KEY])
        except APIError as err:
            await error_response(err)(scope, receive, send)
            return
        try:
            if connect is not None and state is not None:  # served by the node's agent
                try:
                    await state.connector.serve_http(scope, receive, send, *connect)
                except APIError as err:
                    await error_response(err)(scope, receive, send)
                return
            if proxied is not None and state is not None:  # pods/proxy, services/proxy
                try:
                    await state.proxier.serve(scope, receive, send, proxied)
                except APIError as err:
                    await error_response(err)(scope, receive, send)
                return
            if state is not None and _is_resource_path(scope["path"]):
                api = state.api
                try:
                    response = await self.inflight.bounded(
                        slot, scope, lambda: api.dispatch(Request(scope, receive)))
                except APIError as err:  # a bad ?timeout= (400), the request timeout (504)
                    response = error_response(err)
                await response(scope, receive, send)
                return
            await self.app(scope, receive, send)
        finally:
            slot.release()


    async def websocket(self, scope: Scope, receive: Receive, send: Send) -> None:
        """A WebSocket: authenticated and authorized as a GET of its path; only the
        agent-served subresources (``podconnect``) accept one."""
        state = self.state_box.get("state")
        try:
            if state is None:
                raise ServiceUnavailable("the server is starting")
            user = await self.authenticator.authenticate(scope, state.store)
            if user.is_anonymous:
                raise unauthorized()
            scope[USER_KEY] = user
            info = check_request(scope, state.authz)
            connect = podconnect.connect_target(scope["path"])
            if connect is None:
                raise NotFound("the server could not find the requested resource")
            if connect[1].websocket:
                state.connector.check_create(scope, info)
            await state.connector.serve_websocket(scope, receive, send, *connect)
        except APIError as err:
            await nodeproxy.deny_websocket(send, err)


# Before the server has state (startup), only system:masters pass.
_NOBODY = Authorization()


def _is_resource_path(path: str) -> bool:
    """``/api/v1/<...>`` and ``/apis/<g>/<v>/<...>``, not the discovery documents above them."""
    parts = path.strip("/").split("/")
    return (parts[0] == "api" and len(parts) > 2) or (parts[0] == "apis" and len(parts) > 3)
