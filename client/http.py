"""The HTTP client for the miniplane (Kubernetes-shaped) API.

One request-building core and two thin senders:

- ``RequestBuilder`` turns a verb on a ``Kind`` into a ``Request`` (method, path,
  query, body, headers). It does no I/O, so URL, namespace and content-type rules
  are tested as plain values.
- Multi-request operations (``list_all`` following ``continue``) are written once
  as *flows*: generators that yield ``Request``\\s and receive decoded bodies (or
  have the request's error thrown into them). ``Client`` drives them with blocking
  calls and ``AsyncClient`` with ``await``.
- ``Client`` (sync, for mpctl and tests) and ``AsyncClient`` (asyncio, for the
  informers and controllers) send requests and map every failure in one place:
  an HTTP error answer becomes the typed error of its ``Status`` body
  (``client.errors``), a transport failure becomes ``ConnectionFailed`` chaining
  the httpx exception.
- With several API servers (``ClientConfig.servers``) both senders walk them the
  same way through ``_Attempt``: a connection failure (or a 503) moves the client
  to the next server and sends the request there if ``client.failover`` says it
  may; that module holds every decision, this one only classifies httpx's errors.

Watch streams are newline-delimited JSON events; ``decode_event`` turns one line
into an event dict and raises the typed error of an ``ERROR`` event (``Expired``
for 410), so a consumer's loop sees only ADDED, MODIFIED, DELETED and BOOKMARK.
"""

from __future__ import annotations

import logging
import socket
import ssl
from collections.abc import AsyncGenerator, Generator, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar, cast

import httpx
import orjson

from apimachinery.kinds import POD, Kind
from client.config import ClientConfig, load_config
from client.errors import ApiError, ConnectionFailed, Expired, ServerError, error_from_response
from client.failover import Failure, Servers, may_resend

log = logging.getLogger(__name__)

USER_AGENT = "miniplane-client/0.1"

PATCH_CONTENT_TYPES = {
    "merge": "application/merge-patch+json",
    "json": "application/json-patch+json",
    "strategic": "application/strategic-merge-patch+json",
    "apply": "application/apply-patch+yaml",
}

WATCH_EVENT_TYPES = frozenset({"ADDED", "MODIFIED", "DELETED", "BOOKMARK"})

# A watch may legitimately be silent for a long time (no writes, bookmarks only
# about once a minute), so its read timeout is the requested watch duration plus
# this margin rather than the client's ordinary request timeout.
WATCH_READ_MARGIN = 30.0

# With several API servers, a connect (TCP and TLS) that hangs, to a server whose
# host is gone or whose accept queue is full, must give up soon enough for the next
# server to be tried within a caller's deadline (a leader renews within 10 s). Only
# then: alone, a slow server is still the only one to wait for.
FAILOVER_CONNECT_TIMEOUT = 3.0


# A server cut off by the network (not killed: nothing resets the connection) is
# noticed by TCP itself, as client-go notices it with HTTP/2 pings: keepalive probes
# on an idle connection (a quiet watch) after 15 s, 3 probes 5 s apart, and at most
# 30 s for sent data to go unacknowledged. A watch then fails in about 30 s instead
# of at its read timeout (minutes), and the client moves to the next server.
KEEPALIVE_IDLE, KEEPALIVE_INTERVAL, KEEPALIVE_PROBES = 15, 5, 3
UNACKNOWLEDGED_LIMIT_MS = 30_000


def socket_options() -> list[tuple[int, int, int]]:
    """The options of every client connection (Linux names; only those this OS has)."""
    options = [(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)]
    for name, value in (("TCP_KEEPIDLE", KEEPALIVE_IDLE), ("TCP_KEEPINTVL", KEEPALIVE_INTERVAL),
                        ("TCP_KEEPCNT", KEEPALIVE_PROBES),
                        ("TCP_USER_TIMEOUT", UNACKNOWLEDGED_LIMIT_MS)):
        if hasattr(socket, name):
            options.append((socket.IPPROTO_TCP, getattr(socket, name), value))
    return options


def request_timeout(timeout: float, servers: int, read: float | None = -1.0) -> httpx.Timeout:
    """The httpx timeouts of a client of ``servers`` API servers (``read``: -1 keeps
    ``timeout``; None waits without limit, as a watch does)."""
    connect = min(timeout, FAILOVER_CONNECT_TIMEOUT) if servers > 1 else timeout
    return httpx.Timeout(timeout, connect=connect, read=timeout if read == -1.0 else read)

T = TypeVar("T")


@dataclass(frozen=True)
class Request:
    """One API request, before it is sent."""

    method: str
    path: str
    params: dict[str, str] = field(default_factory=dict)
    body: bytes | None = None
    headers: dict[str, str] = field(default_factory=dict)


class RequestBuilder:
    """Pure: verbs on kinds → ``Request`` values. Owns the namespace defaults."""

    def __init__(self, default_namespace: str = "default") -> None:
        self.default_namespace = default_namespace

    def namespace_for(self, kind: Kind, namespace: str | None,
                      obj: Mapping[str, Any] | None = None) -> str | None:
        """Namespace of a single-object request: the argument, else the object's
        ``metadata.namespace``, else the configured default; None if cluster-scoped."""
        if not kind.namespaced:
            return None
        if namespace:
            return namespace
        if obj is not None:
            ns: str | None = (obj.get("metadata") or {}).get("namespace")
            if ns:
                return ns
        return self.default_namespace

    def create(self, kind: Kind, obj: Mapping[str, Any], namespace: str | None = None, *,
               dry_run: bool = False) -> Request:
        ns = self.namespace_for(kind, namespace, obj)
        return Request("POST", kind.collection_path(ns), _dry_run({}, dry_run),
                       _json_body(obj), {"Content-Type": "application/json"})

    def get(self, kind: Kind, name: str, namespace: str | None = None) -> Request:
        return Request("GET", kind.item_path(_name(name), self.namespace_for(kind, namespace)))

    def bind(self, name: str, node: str, namespace: str | None = None) -> Request:
        """``POST pods/<name>/binding``: what a scheduler sends to put a Pod on a node."""
        ns = self.namespace_for(POD, namespace)
        binding = {"apiVersion": "v1", "kind": "Binding",
                   "metadata": {"name": _name(name), "namespace": ns},
                   "target": {"apiVersion": "v1", "kind": "Node", "name": _name(node)}}
        return Request("POST", POD.item_path(_name(name), ns, "binding"), {},
                       _json_body(binding), {"Content-Type": "application/json"})

    def list(self, kind: Kind, namespace: str | None = None, *,
             label_selector: str | None = None, field_selector: str | None = None,
             limit: int | None = None, continue_: str | None = None,
             resource_version: str | None = None) -> Request:
        """One page; ``namespace=None`` on a namespaced kind lists all namespaces."""
        params = _selectors(label_selector, field_selector)
        if limit is not None:
            params["limit"] = str(limit)
        if continue_:
            params["continue"] = continue_
        if resource_version is not None:
            params["resourceVersion"] = resource_version
        return Request("GET", kind.collection_path(namespace if kind.namespaced else None),
                       params)

    def replace(self, kind: Kind, obj: Mapping[str, Any], namespace: str | None = None, *,
                subresource: str = "", dry_run: bool = False) -> Request:
        ns = self.namespace_for(kind, namespace, obj)
        name = (obj.get("metadata") or {}).get("name")
        return Request("PUT", kind.item_path(_name(name), ns, subresource),
                       _dry_run({}, dry_run), _json_body(obj),
                       {"Content-Type": "application/json"})

    def patch(self, kind: Kind, name: str, patch: Any, *, namespace: str | None = None,
              patch_type: str = "merge", subresource: str = "",
              field_manager: str | None = None, force: bool | None = None,
              dry_run: bool = False) -> Request:
        try:
            content_type = PATCH_CONTENT_TYPES[patch_type]
        except KeyError:
            raise ValueError(f"unknown patch_type {patch_type!r}; expected one of "
                             f"{', '.join(PATCH_CONTENT_TYPES)}") from None
        params = _dry_run({}, dry_run)
        if field_manager is not None:
            params["fieldManager"] = field_manager
        if force is not None:
            params["force"] = _bool(force)
        body = patch.encode() if isinstance(patch, str) else \
            patch if isinstance(patch, bytes) else _json_body(patch)
        return Request("PATCH",
                       kind.item_path(_name(name), self.namespace_for(kind, namespace),
                                      subresource),
                       params, body, {"Content-Type": content_type})

    def delete(self, kind: Kind, name: str, namespace: str | None = None, *,
               grace_period_seconds: int | None = None, propagation_policy: str | None = None,
               preconditions: Mapping[str, str] | None = None,
               dry_run: bool = False) -> Request:
        """DELETE, with a ``DeleteOptions`` body only when an option is given (the
        Python client sends none, kubectl sends one; the server accepts both)."""
        options: dict[str, Any] = {}
        if grace_period_seconds is not None:
            options["gracePeriodSeconds"] = grace_period_seconds
        if propagation_policy is not None:
            options["propagationPolicy"] = propagation_policy
        if preconditions:
            options["preconditions"] = dict(preconditions)
        if dry_run:
            options["dryRun"] = ["All"]
        body, headers = None, {}
        if options:
            body = _json_body({"kind": "DeleteOptions", "apiVersion": "v1", **options})
            headers = {"Content-Type": "application/json"}
        return Request("DELETE",
                       kind.item_path(_name(name), self.namespace_for(kind, namespace)),
                       {}, body, headers)

    def watch(self, kind: Kind, namespace: str | None = None, *,
              resource_version: str | None = None, label_selector: str | None = None,
              field_selector: str | None = None, timeout_seconds: int | None = None,
              allow_bookmarks: bool = True) -> Request:
        params = {"watch": "true", **_selectors(label_selector, field_selector)}
        if resource_version is not None:
            params["resourceVersion"] = resource_version
        if allow_bookmarks:
            params["allowWatchBookmarks"] = "true"
        if timeout_seconds is not None:
            params["timeoutSeconds"] = str(int(timeout_seconds))
        return Request("GET", kind.collection_path(namespace if kind.namespaced else None),
                       params)


# -- flows: multi-request operations written once for both senders ------------------

Flow = Generator[Request, dict[str, Any], T]


@dataclass(frozen=True)
class Done(Generic[T]):
    """What a finished flow returned."""

    value: T


def advance(flow: Flow[T], answer: dict[str, Any] | ApiError | None = None) -> Request | Done[T]:
    """Step ``flow`` once: start it (no answer), send it a body or throw it an error.

    The next request to send, or ``Done`` with what the flow returned. An error the
    flow does not catch propagates to the caller. Both senders loop over this, so
    they differ only in how they wait for an answer.
    """
    try:
        if answer is None:
            return next(flow)
        if isinstance(answer, ApiError):
            return flow.throw(answer)
        return flow.send(answer)
    except StopIteration as done:
        # what the flow returned; StopIteration.value itself is untyped
        return Done(cast(T, done.value))


def list_all_flow(build: RequestBuilder, kind: Kind, namespace: str | None = None,
                  **options: Any) -> Flow[dict[str, Any]]:
    """Follow ``continue`` tokens; return one List with every item and the first
    page's resourceVersion (all pages share that snapshot).

    If a continue token expires mid-way (410), fall back to one unpaginated list,
    as client-go's pager does, rather than failing a caller that can't resume.
    """
    options.pop("continue_", None)
    first = yield build.list(kind, namespace, **options)
    items = list(first.get("items") or [])
    token = (first.get("metadata") or {}).get("continue")
    while token:
        try:
            page = yield build.list(kind, namespace, **options, continue_=token)
        except Expired:
            log.info("%s: continue token expired while paging; listing without limit",
                     kind.plural)
            full = yield build.list(kind, namespace, **{**options, "limit": None})
            return full
        items.extend(page.get("items") or [])
        token = (page.get("metadata") or {}).get("continue")
    meta = dict(first.get("metadata") or {})
    meta.pop("continue", None)
    meta.pop("remainingItemCount", None)
    return {**first, "metadata": meta, "items": items}


# -- pure helpers shared by both senders ----------------------------------------------


def decode_body(content: bytes) -> dict[str, Any]:
    """A JSON answer's body; an empty body (some DELETEs) is ``{}``."""
    if not content:
        return {}
    try:
        data = orjson.loads(content)
    except orjson.JSONDecodeError as exc:
        raise ServerError(f"server sent a body that is not JSON: {content[:120]!r}",
                          code=500, reason="InternalError") from exc
    if not isinstance(data, dict):
        raise ServerError(f"server sent JSON that is not an object: {content[:120]!r}",
                          code=500, reason="InternalError")
    return data


def decode_event(line: str | bytes) -> dict[str, Any] | None:
    """One watch line → ``{"type", "object"}``; None for blank lines and unknown types.

    An ``ERROR`` event raises the typed error of its Status (``Expired`` for 410),
    because no consumer can continue that stream. A line that is not JSON is a
    broken stream: ``ServerError``, so the caller re-watches from its last version.
    """
    if not line or not line.strip():
        return None
    try:
        event = orjson.loads(line)
    except orjson.JSONDecodeError as exc:
        raise ServerError(f"malformed watch event: {str(line)[:120]!r}", code=500,
                          reason="InternalError") from exc
    if not isinstance(event, dict):
        raise ServerError(f"malformed watch event: {str(line)[:120]!r}", code=500,
                          reason="InternalError")
    kind = event.get("type")
    obj = event.get("object")
    if kind == "ERROR":
        status = obj if isinstance(obj, dict) else None
        code = status.get("code") if status else None
        raise error_from_response(code if isinstance(code, int) else 500, status)
    if kind not in WATCH_EVENT_TYPES or not isinstance(obj, dict):
        log.warning("ignoring watch event of unknown type %r", kind)
        return None
    return event


def _name(name: object) -> str:
    if not name or not isinstance(name, str):
        raise ValueError(f"an object name is required, got {name!r}")
    return name


def _bool(value: bool) -> str:
    return "true" if value else "false"


def _dry_run(params: dict[str, str], dry_run: bool) -> dict[str, str]:
    if dry_run:
        params["dryRun"] = "All"
    return params


def _selectors(label_selector: str | None, field_selector: str | None) -> dict[str, str]:
    params: dict[str, str] = {}
    if label_selector:
        params["labelSelector"] = label_selector
    if field_selector:
        params["fieldSelector"] = field_selector
    return params


def _json_body(obj: Any) -> bytes:
    return orjson.dumps(obj)


def _resolve_config(config: ClientConfig | None, server: str | None) -> ClientConfig:
    if config is None:
        return load_config(server=server)
    return config.with_servers(server) if server else config


def _base_headers(config: ClientConfig) -> dict[str, str]:
    headers = {"Accept": "application/json", "User-Agent": USER_AGENT}
    if config.token:
        headers["Authorization"] = f"Bearer {config.token}"
    return headers


def tls_verify(config: ClientConfig) -> ssl.SSLContext | bool:
    """The httpx ``verify`` value for ``config`` (pass it to a custom transport too,
    which otherwise ignores the client's). Built only for https servers: a context
    loads the CA bundle (tens of ms), wasted on plain http."""
    if not any(server.startswith("https://") for server in config.servers):
        return False
    ctx = ssl.create_default_context(cafile=config.ca_file)
    if config.insecure:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    if config.client_cert:
        ctx.load_cert_chain(config.client_cert, config.client_key)
    return ctx


def _watch_timeout(timeout: float, timeout_seconds: int | None, servers: int) -> httpx.Timeout:
    read = None if timeout_seconds is None else timeout_seconds + WATCH_READ_MARGIN
    return request_timeout(timeout, servers, read)


def _connection_failed(request: Request, base_url: str, exc: Exception) -> ConnectionFailed:
    detail = str(exc) or type(exc).__name__
    return ConnectionFailed(f"{request.method} {base_url}{request.path}: {detail}",
                            attempts=((base_url, detail),))


def transport_failure(exc: httpx.RequestError) -> Failure | None:
    """What an httpx error says about the server: never reached (``UNSENT``), or the
    connection broke once the request may have gone out (``MAYBE_SENT``). None for
    errors that are not the server's (a URL or protocol httpx refuses, a body it
    can't decode, our own connection pool full): another server would fail the
    same way."""
    if isinstance(exc, (httpx.ConnectError, httpx.ConnectTimeout)):
        return Failure.UNSENT
    if isinstance(exc, (httpx.UnsupportedProtocol, httpx.LocalProtocolError,
                        httpx.DecodingError, httpx.TooManyRedirects, httpx.PoolTimeout)):
        return None
    return Failure.MAYBE_SENT


def answer_failure(response: httpx.Response) -> Failure | None:
    """A 503 answer is a server that can't serve now; any other answer is the API's."""
    if response.status_code != 503:
        return None
    return Failure.RETRY_LATER if "retry-after" in response.headers else Failure.UNAVAILABLE


class _Attempt:
    """One request's way over the API servers, shared by both senders (no I/O).

    The sender sends to ``url``; after a transport error it asks
    ``transport_error`` (None: send again, ``url`` is the next server now; else the
    error to raise), after a 503 ``unavailable`` (True: send again), and after any
    other answer it calls ``answered``. Once a stream has started, a broken
    connection is never sent again here: the watch's consumer resumes it.
    """

    def __init__(self, servers: Servers, req: Request) -> None:
        self.req = req
        self.servers = servers
        self.walk = servers.walk(req.method)
        self.streaming = False

    @property
    def url(self) -> str:
        return self.walk.server + self.req.path

    def answered(self) -> None:
        self.walk.succeeded()
        self.streaming = True

    def transport_error(self, exc: httpx.RequestError) -> ConnectionFailed | None:
        failure = transport_failure(exc)
        server = self.walk.server
        if failure is None:
            return _connection_failed(self.req, server, exc)
        why = str(exc) or type(exc).__name__
        if self.streaming:
            self.walk.failed(Failure.MAYBE_SENT, why)
            return self._give_up(f"{self.req.method} {server}{self.req.path}: {why}")
        following = self.walk.failed(failure, why)
        if following is not None:
            log.info("API server %s: %s; trying %s", server, why, following)
            return None
        if len(self.walk.tried) == 1:
            message = f"{self.req.method} {server}{self.req.path}: {why}"
            if self.servers.several and not may_resend(self.req.method, failure):
                message += (" (the connection broke after the request was sent; it may "
                            "have been applied, so it is not sent to another server)")
        else:
            message = f"{self.req.method} {self.req.path}: no API server answered: " + \
                "; ".join(f"{s}: {w}" for s, w in self.walk.tried)
        return self._give_up(message)

    def unavailable(self, response: httpx.Response) -> bool:
        failure = answer_failure(response)
        if failure is None:
            self.answered()
            return False
        server = self.walk.server
        following = self.walk.failed(failure, "503 Service Unavailable")
        if following is None:
            return False
        log.info("API server %s answered 503; trying %s", server, following)
        return True

    def _give_up(self, message: str) -> ConnectionFailed:
        return ConnectionFailed(message, attempts=tuple(self.walk.tried),
                                next_server=self.servers.fresh())


def _raise_for_status(response: httpx.Response) -> None:
    if response.status_code >= 400:
        raise error_from_response(response.status_code, response.content,
                                  headers=response.headers)


def _ad_hoc_request(method: str, path: str, params: Mapping[str, Any] | None, json: Any,
                    content: bytes | str | None, headers: Mapping[str, str] | None) -> Request:
    merged = dict(headers or {})
    body: bytes | None
    if json is not None:
        body = _json_body(json)
        merged.setdefault("Content-Type", "application/json")
    else:
        body = content.encode() if isinstance(content, str) else content
    query = {k: (_bool(v) if isinstance(v, bool) else str(v))
             for k, v in (params or {}).items() if v is not None}
    return Request(method.upper(), path, query, body, merged)


# -- the senders ---------------------------------------------------------------------


class Client:
    """Blocking client: for mpctl, scripts and tests.

    Every method raises a ``client.errors.ApiError`` subclass on failure. Use as a
    context manager, or call ``close()``, to release connections.
    """

    def __init__(self, config: ClientConfig | None = None, *, server: str | None = None,
                 timeout: float = 30.0, transport: httpx.BaseTransport | None = None) -> None:
        self.config = _resolve_config(config, server)
        self.timeout = timeout
        self._build = RequestBuilder(self.config.namespace)
        self.servers = Servers(self.config.servers)
        verify = tls_verify(self.config)
        self._http = httpx.Client(base_url=self.config.server,
                                  timeout=request_timeout(timeout, len(self.config.servers)),
                                  headers=_base_headers(self.config), verify=verify,
                                  transport=transport or httpx.HTTPTransport(
                                      verify=verify, socket_options=socket_options()))

    # plumbing

    def request(self, method: str, path: str, *, params: Mapping[str, Any] | None = None,
                json: Any = None, content: bytes | str | None = None,
                headers: Mapping[str, str] | None = None) -> httpx.Response:
        """Send any request; error answers raise their typed error."""
        return self._send(_ad_hoc_request(method, path, params, json, content, headers))

    def _send(self, req: Request) -> httpx.Response:
        attempt = _Attempt(self.servers, req)
        while True:
            try:
                response = self._http.request(req.method, attempt.url, params=req.params,
                                              content=req.body, headers=req.headers)
            except httpx.RequestError as exc:
                error = attempt.transport_error(exc)
                if error is None:
                    continue
                raise error from exc
            if not attempt.unavailable(response):
                break
        _raise_for_status(response)
        return response

    def _json(self, req: Request) -> dict[str, Any]:
        return decode_body(self._send(req).content)

    def _answer(self, req: Request) -> dict[str, Any] | ApiError:
        try:
            return self._json(req)
        except ApiError as exc:
            return exc

    def _drive(self, flow: Flow[T]) -> T:
        step = advance(flow)
        while isinstance(step, Request):
            step = advance(flow, self._answer(step))
        return step.value

    # verbs

    def create(self, kind: Kind, obj: Mapping[str, Any], namespace: str | None = None, *,
               dry_run: bool = False) -> dict[str, Any]:
        return self._json(self._build.create(kind, obj, namespace, dry_run=dry_run))

    def get(self, kind: Kind, name: str, namespace: str | None = None) -> dict[str, Any]:
        return self._json(self._build.get(kind, name, namespace))

    def bind(self, name: str, node: str, namespace: str | None = None) -> dict[str, Any]:
        """Bind Pod ``name`` to ``node``; the answer is a ``Status`` (Success)."""
        return self._json(self._build.bind(name, node, namespace))

    def list(self, kind: Kind, namespace: str | None = None, *,
             label_selector: str | None = None, field_selector: str | None = None,
             limit: int | None = None, continue_: str | None = None,
             resource_version: str | None = None) -> dict[str, Any]:
        return self._json(self._build.list(
            kind, namespace, label_selector=label_selector, field_selector=field_selector,
            limit=limit, continue_=continue_, resource_version=resource_version))

    def list_all(self, kind: Kind, namespace: str | None = None, **options: Any
                 ) -> dict[str, Any]:
        return self._drive(list_all_flow(self._build, kind, namespace, **options))

    def replace(self, kind: Kind, obj: Mapping[str, Any], namespace: str | None = None, *,
                subresource: str = "", dry_run: bool = False) -> dict[str, Any]:
        return self._json(self._build.replace(kind, obj, namespace, subresource=subresource,
                                              dry_run=dry_run))

    def patch(self, kind: Kind, name: str, patch: Any, *, namespace: str | None = None,
              patch_type: str = "merge", subresource: str = "",
              field_manager: str | None = None, force: bool | None = None,
              dry_run: bool = False) -> dict[str, Any]:
        return self._json(self._build.patch(
            kind, name, patch, namespace=namespace, patch_type=patch_type,
            subresource=subresource, field_manager=field_manager, force=force,
            dry_run=dry_run))

    def delete(self, kind: Kind, name: str, namespace: str | None = None, *,
               grace_period_seconds: int | None = None, propagation_policy: str | None = None,
               preconditions: Mapping[str, str] | None = None,
               dry_run: bool = False) -> dict[str, Any]:
        return self._json(self._build.delete(
            kind, name, namespace, grace_period_seconds=grace_period_seconds,
            propagation_policy=propagation_policy, preconditions=preconditions,
            dry_run=dry_run))

    def watch(self, kind: Kind, namespace: str | None = None, *,
              resource_version: str | None = None, label_selector: str | None = None,
              field_selector: str | None = None, timeout_seconds: int | None = None,
              allow_bookmarks: bool = True) -> Iterator[dict[str, Any]]:
        """Stream events until the server ends the watch.

        A generator: closing it (``close()``, ``with contextlib.closing(...)`` or
        breaking out of a ``for`` loop then dropping it) closes the response.
        """
        req = self._build.watch(kind, namespace, resource_version=resource_version,
                                label_selector=label_selector, field_selector=field_selector,
                                timeout_seconds=timeout_seconds,
                                allow_bookmarks=allow_bookmarks)
        attempt = _Attempt(self.servers, req)
        while True:
            try:
                with self._http.stream(req.method, attempt.url, params=req.params,
                                       timeout=_watch_timeout(self.timeout, timeout_seconds,
                                                              len(self.config.servers))
                                       ) as response:
                    if response.status_code >= 400:
                        response.read()
                        if attempt.unavailable(response):
                            continue
                        _raise_for_status(response)
                    attempt.answered()
                    for line in response.iter_lines():
                        event = decode_event(line)
                        if event is not None:
                            yield event
                return
            except httpx.RequestError as exc:
                error = attempt.transport_error(exc)
                if error is None:
                    continue
                raise error from exc

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


class AsyncClient:
    """asyncio client with the same methods as ``Client``, as coroutines; ``watch`` is
    an async generator (close it with ``aclose()`` or ``contextlib.aclosing``)."""

    def __init__(self, config: ClientConfig | None = None, *, server: str | None = None,
                 timeout: float = 30.0,
                 transport: httpx.AsyncBaseTransport | None = None) -> None:
        self.config = _resolve_config(config, server)
        self.timeout = timeout
        self._build = RequestBuilder(self.config.namespace)
        self.servers = Servers(self.config.servers)
        verify = tls_verify(self.config)
        self._http = httpx.AsyncClient(base_url=self.config.server,
                                       timeout=request_timeout(timeout,
                                                               len(self.config.servers)),
                                       headers=_base_headers(self.config), verify=verify,
                                       transport=transport or httpx.AsyncHTTPTransport(
                                           verify=verify, socket_options=socket_options()))

    # plumbing

    async def request(self, method: str, path: str, *, params: Mapping[str, Any] | None = None,
                      json: Any = None, content: bytes | str | None = None,
                      headers: Mapping[str, str] | None = None) -> httpx.Response:
        """Send any request; error answers raise their typed error."""
        return await self._send(_ad_hoc_request(method, path, params, json, content, headers))

    async def _send(self, req: Request) -> httpx.Response:
        attempt = _Attempt(self.servers, req)
        while True:
            try:
                response = await self._http.request(req.method, attempt.url, params=req.params,
                                                    content=req.body, headers=req.headers)
            except httpx.RequestError as exc:
                error = attempt.transport_error(exc)
                if error is None:
                    continue
                raise error from exc
            if not attempt.unavailable(response):
                break
        _raise_for_status(response)
        return response

    async def _json(self, req: Request) -> dict[str, Any]:
        return decode_body((await self._send(req)).content)

    async def _answer(self, req: Request) -> dict[str, Any] | ApiError:
        try:
            return await self._json(req)
        except ApiError as exc:
            return exc

    async def _drive(self, flow: Flow[T]) -> T:
        step = advance(flow)
        while isinstance(step, Request):
            step = advance(flow, await self._answer(step))
        return step.value

    # verbs

    async def create(self, kind: Kind, obj: Mapping[str, Any], namespace: str | None = None,
                     *, dry_run: bool = False) -> dict[str, Any]:
        return await self._json(self._build.create(kind, obj, namespace, dry_run=dry_run))

    async def get(self, kind: Kind, name: str, namespace: str | None = None) -> dict[str, Any]:
        return await self._json(self._build.get(kind, name, namespace))

    async def bind(self, name: str, node: str, namespace: str | None = None) -> dict[str, Any]:
        """Bind Pod ``name`` to ``node``; the answer is a ``Status`` (Success)."""
        return await self._json(self._build.bind(name, node, namespace))

    async def list(self, kind: Kind, namespace: str | None = None, *,
                   label_selector: str | None = None, field_selector: str | None = None,
                   limit: int | None = None, continue_: str | None = None,
                   resource_version: str | None = None) -> dict[str, Any]:
        return await self._json(self._build.list(
            kind, namespace, label_selector=label_selector, field_selector=field_selector,
            limit=limit, continue_=continue_, resource_version=resource_version))

    async def list_all(self, kind: Kind, namespace: str | None = None, **options: Any
                       ) -> dict[str, Any]:
        return await self._drive(list_all_flow(self._build, kind, namespace, **options))

    async def replace(self, kind: Kind, obj: Mapping[str, Any], namespace: str | None = None,
                      *, subresource: str = "", dry_run: bool = False) -> dict[str, Any]:
        return await self._json(self._build.replace(kind, obj, namespace,
                                                    subresource=subresource, dry_run=dry_run))

    async def patch(self, kind: Kind, name: str, patch: Any, *, namespace: str | None = None,
                    patch_type: str = "merge", subresource: str = "",
                    field_manager: str | None = None, force: bool | None = None,
                    dry_run: bool = False) -> dict[str, Any]:
        return await self._json(self._build.patch(
            kind, name, patch, namespace=namespace, patch_type=patch_type,
            subresource=subresource, field_manager=field_manager, force=force,
            dry_run=dry_run))

    async def delete(self, kind: Kind, name: str, namespace: str | None = None, *,
                     grace_period_seconds: int | None = None,
                     propagation_policy: str | None = None,
                     preconditions: Mapping[str, str] | None = None,
                     dry_run: bool = False) -> dict[str, Any]:
        return await self._json(self._build.delete(
            kind, name, namespace, grace_period_seconds=grace_period_seconds,
            propagation_policy=propagation_policy, preconditions=preconditions,
            dry_run=dry_run))

    async def watch(self, kind: Kind, namespace: str | None = None, *,
                    resource_version: str | None = None, label_selector: str | None = None,
                    field_selector: str | None = None, timeout_seconds: int | None = None,
                    allow_bookmarks: bool = True) -> AsyncGenerator[dict[str, Any], None]:
        """Stream events until the server ends the watch (see ``Client.watch``)."""
        req = self._build.watch(kind, namespace, resource_version=resource_version,
                                label_selector=label_selector, field_selector=field_selector,
                                timeout_seconds=timeout_seconds,
                                allow_bookmarks=allow_bookmarks)
        attempt = _Attempt(self.servers, req)
        while True:
            try:
                async with self._http.stream(
                        req.method, attempt.url, params=req.params,
                        timeout=_watch_timeout(self.timeout, timeout_seconds,
                                               len(self.config.servers))) as response:
                    if response.status_code >= 400:
                        await response.aread()
                        if attempt.unavailable(response):
                            continue
                        _raise_for_status(response)
                    attempt.answered()
                    async for line in response.aiter_lines():
                        event = decode_event(line)
                        if event is not None:
                            yield event
                return
            except httpx.RequestError as exc:
                error = attempt.transport_error(exc)
                if error is None:
                    continue
                raise error from exc

    async def aclose(self) -> None:
        await self._http.aclose()

    async def close(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self._http.aclose()
