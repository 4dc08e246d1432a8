"""HTTP verbs on registry resources: decode the request, call the store, encode the answer.

One dispatcher serves every ``/api/...`` and ``/apis/...`` path: the path is
resolved by ``paths.parse_path`` and the resource's behaviour comes from the
registry, so no handler is written per kind. Reads run on a worker thread against
a snapshot; writes are queued to the store's writer and awaited.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import anyio
import orjson
from starlette.datastructures import QueryParams
from starlette.requests import Request
from starlette.responses import Response

from apiserver import (
    decoding,
    listcache,
    managedfields,
    objects,
    openapi,
    propagation,
    protobuf,
    scale,
    tables,
)
from apiserver import patch as patches
from apiserver.auth.authn import Authenticator
from apiserver.auth.filters import Authorization
from apiserver.auth.user import ANONYMOUS_USER, USER_KEY, UserInfo
from apiserver.errors import (
    APIError,
    BadRequest,
    Gone,
    InternalError,
    MethodNotAllowed,
    NotFound,
    RequestTooLarge,
    Unprocessable,
    UnsupportedMediaType,
)
from apiserver.listcache import ListCache
from apiserver.listopts import (
    ListOptions,
    encode_continue,
    expired_continue,
    parse_list_options,
)
from apiserver.metrics import Metrics
from apiserver.paths import Target, parse_path
from apiserver.registry.strategy import Strategy
from apiserver.storage.backend import Backend
from apiserver.watch import Watcher, WatchRequest, require_revision
from apiserver.watchhub import WatchHub
from apiserver.watchresponse import WatchResponse
from apiserver.writes import Caller, Manager, Writes, Written

log = logging.getLogger(__name__)

# Kubernetes' limit on a request body (apiserver MaxRequestBodyBytes).
MAX_BODY_BYTES = 3 * 1024 * 1024
JSON = "application/json"
YAML = "application/yaml"
PATCH_TYPES = {
    "application/json-patch+json": "json",
    "application/merge-patch+json": "merge",
    "application/strategic-merge-patch+json": "strategic",
    "application/apply-patch+yaml": "apply",
    "application/apply-patch+json": "apply",
}


def json_response(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    content = body if isinstance(body, bytes) else orjson.dumps(body)
    return Response(content, status_code=status, media_type=JSON, headers=headers)


def table_response(body: dict) -> Response:
    return Response(orjson.dumps(body), media_type=tables.TABLE_MEDIA_TYPE)


def error_response(err: APIError) -> Response:
    return json_response(err.status(), err.code, err.headers or None)


def list_response(rt: Strategy, meta: dict[str, Any], joined_items: bytes) -> Response:
    """A ``<Kind>List`` around items already encoded and comma-joined."""
    kind = rt.kind
    head = (b'{"kind":"' + kind.kind.encode() + b'List","apiVersion":"'
            + kind.api_version.encode() + b'","metadata":' + orjson.dumps(meta)
            + b',"items":[')
    return json_response(head + joined_items + b"]}")


@dataclass(frozen=True)
class ReviewContext:
    """``registry.strategy.RequestContext``: a review's request, and the server's
    authenticator for the reviews that judge a token."""

    user: UserInfo
    authenticator: Authenticator | None
    store: Backend
    authorization: Authorization | None = None
    namespace: str = ""

    async def authenticate_token(self, token: str,
                                 audiences: Sequence[str] | None) -> UserInfo | None:
        if self.authenticator is None:
            return None
        return await self.authenticator.token_user(token, self.store, audiences)


class Api:
    def __init__(self, store: Backend, hub: WatchHub, writes: Writes, metrics: Metrics,
                 authenticator: Authenticator | None = None,
                 authorization: Authorization | None = None,
                 cache: ListCache | None = None) -> None:
        self.store = store
        self.cache = cache
        self.authorization = authorization
        self.hub = hub
        self.writes = writes
        self.metrics = metrics
        self.authenticator = authenticator
        self.watcher = Watcher(store, hub, cache=cache)

    async def dispatch(self, request: Request) -> Response:
        started = time.perf_counter()
        verb, resource = request.method.lower(), "unknown"
        try:
            target = parse_path(request.scope["path"])
            rt = target.resource if target else None
            if target is None or rt is None:
                raise NotFound("the server could not find the requested resource",
                               details={})
            resource = rt.key
            verb, handler = self._route(request.method, target, rt, request)
            response = await handler()
        except APIError as err:
            response = error_response(err)
        except Exception:  # noqa: BLE001 - a bug must still answer with a Status
            log.exception("unhandled error on %s %s", request.method, request.scope["path"])
            response = error_response(InternalError("an internal error occurred; see the "
                                                    "apiserver log"))
        self.metrics.observe(verb, resource, response.status_code,
                             time.perf_counter() - started)
        return response

    def _route(self, method: str, t: Target, rt: Strategy,
               request: Request) -> tuple[str, Callable[[], Any]]:
        namespaced = rt.kind.namespaced
        if t.name is not None and namespaced and t.namespace is None:
            raise NotFound("the server could not find the requested resource", details={})
        allowed_sub = set(rt.kind.subresources) | set(rt.actions)
        if t.subresource and t.subresource not in allowed_sub:
            raise NotFound("the server could not find the requested resource", details={})
        ns = t.namespace or ""
        if not rt.stored:
            if method == "POST" and t.name is None:
                return "create", lambda: self.review(rt, request, ns)
            raise MethodNotAllowed(f'{method} is not supported on resources of kind '
                                   f'"{rt.kind.kind}": it is create-only')
        q = query(request)
        as_table = tables.table_request(request.headers.get("accept", ""), q) \
            if method == "GET" else None
        if t.name is None:
            if method == "GET":
                opts = parse_list_options(q, rt)
                if opts.watch:
                    return "watch", lambda: self.watch(rt, t.namespace, opts, as_table)
                return "list", lambda: self.list(rt, t.namespace, opts, as_table)
            if method == "POST":
                if namespaced and t.namespace is None:
                    raise MethodNotAllowed(f'create is not supported on the all-namespaces '
                                           f'collection of {rt.kind.plural}; use '
                                           f'/namespaces/<namespace>/{rt.kind.plural}')
                return "create", lambda: self.create(rt, ns, request)
            if method == "DELETE":
                return "deletecollection", lambda: self.delete_collection(rt, t.namespace,
                                                                          request)
        else:
            name, sub = t.name, t.subresource
            if sub == scale.SUBRESOURCE and method in ("GET", "PUT", "PATCH"):
                if method == "GET":
                    return "get", lambda: self.get_scale(rt, ns, name)
                if method == "PUT":
                    return "update", lambda: self.update_scale(rt, ns, name, request)
                return "patch", lambda: self.patch(rt, ns, name, request, sub)
            if method == "GET" and sub in ("", "status"):
                return "get", lambda: self.get(rt, ns, name, as_table)
            if method == "PUT" and sub in ("", "status", "finalize"):
                return "update", lambda: self.update(rt, ns, name, request,
                                                     "" if sub == "finalize" else sub)
            if method == "PATCH" and sub in ("", "status"):
                return "patch", lambda: self.patch(rt, ns, name, request, sub)
            if method == "DELETE" and sub == "":
                return "delete", lambda: self.delete(rt, ns, name, request)
            if method == "POST" and sub in rt.actions:
                return "create", lambda: self.action(rt, sub, ns, name, request)
        raise MethodNotAllowed(f'{method} is not supported on resources of kind "{rt.kind.kind}"'
                               + (f" subresource {t.subresource}" if t.subresource else ""))

    # ------------------------------------------------------------------ reads

    async def get(self, rt: Strategy, ns: str, name: str,
                  as_table: tables.TableRequest | None) -> Response:
        data = await anyio.to_thread.run_sync(self.store.get, rt.key,
                                              ns if rt.kind.namespaced else "", name)
        if data is None:
            raise NotFound.of(rt.kind.plural, name, rt.kind.group)
        if as_table:
            obj = orjson.loads(data)
            return table_response(tables.table(
                rt.kind, [obj], objects.now(),
                resource_version=obj.get("metadata", {}).get("resourceVersion", ""),
                request=as_table))
        return json_response(data.encode())

    async def get_scale(self, rt: Strategy, ns: str, name: str) -> Response:
        """``GET <kind>/<name>/scale``: the owner's replica count as a Scale."""
        data = await anyio.to_thread.run_sync(self.store.get, rt.key,
                                              ns if rt.kind.namespaced else "", name)
        if data is None:
            raise NotFound.of(rt.kind.plural, name, rt.kind.group)
        return json_response(scale.scale_of(orjson.loads(data)))

    async def list(self, rt: Strategy, namespace: str | None, opts: ListOptions,
                   as_table: tables.TableRequest | None = None) -> Response:
        if self.cache is not None and listcache.serves(opts):
            return await self._list_cached(self.cache, rt, namespace, opts, as_table)
        revision, after = await self._list_revision(opts)
        keep = opts.matcher()
        try:
            page = await anyio.to_thread.run_sync(
                lambda: self.store.list(rt.key, namespace, revision=revision, after=after,
                                        limit=opts.limit, keep=keep))
        except Gone as err:
            if opts.continue_from is not None:
                raise expired_continue(opts.continue_from[0], self.store.compacted()) from err
            raise
        meta: dict[str, Any] = {"resourceVersion": str(page.revision)}
        if page.next_key is not None:
            meta["continue"] = encode_continue(page.revision, page.next_key)
        if as_table:
            return table_response(tables.table(
                rt.kind, [orjson.loads(d) for d in page.items], objects.now(),
                resource_version=meta["resourceVersion"], continue_token=meta.get("continue", ""),
                request=as_table))
        return list_response(rt, meta, ",".join(page.items).encode())

    async def _list_cached(self, cache: ListCache, rt: Strategy, namespace: str | None,
                           opts: ListOptions, as_table: tables.TableRequest | None
                           ) -> Response:
        """A list any recent state satisfies, from the watch cache (no limit, no continue)."""
        if opts.resource_version != "0":
            await require_revision(self.hub, int(opts.resource_version or 0))
        keep = opts.matcher()
        if keep is None and not as_table:
            revision, joined = await cache.joined(rt.key, namespace)
            return list_response(rt, {"resourceVersion": str(revision)}, joined)
        page = await cache.page(rt.key, namespace, keep)
        if as_table:
            return table_response(tables.table(
                rt.kind, [orjson.loads(d) for d in page.items], objects.now(),
                resource_version=str(page.revision), request=as_table))
        return list_response(rt, {"resourceVersion": str(page.revision)},
                             ",".join(page.items).encode())

    async def _list_revision(self, opts: ListOptions) -> tuple[int | None, tuple[str, str] | None]:
        """Which revision a list reads, per Kubernetes' resourceVersion rules."""
        if opts.continue_from is not None:
            return opts.continue_from
        rv = opts.resource_version
        if rv in (None, "0"):
            return None, None
        wanted = int(rv)
        await require_revision(self.hub, wanted)
        exact = opts.resource_version_match == "Exact" or (
            opts.resource_version_match is None and opts.limit is not None)
        return (wanted if exact else None), None

    async def watch(self, rt: Strategy, namespace: str | None, opts: ListOptions,
                    as_table: tables.TableRequest | None = None) -> Response:
        req = WatchRequest(rt, namespace, opts, as_table)
        await self.watcher.prepare(req)
        self.metrics.watchers_started += 1
        return WatchResponse(self.watcher.open(req),
                             media_type=tables.TABLE_MEDIA_TYPE if as_table else JSON)

    # ------------------------------------------------------------------ writes

    async def _commit(self, op: Callable, dry_run: bool) -> Any:
        return await asyncio.wrap_future(self.store.submit(op, dry_run=dry_run))

    async def create(self, rt: Strategy, ns: str, request: Request) -> Response:
        decoded = await read_object(request, rt.kind.kind)
        body = decoded.document
        warnings = check_fields(rt, body, field_validation(request), decoded.duplicates)
        manager = field_manager(rt, request, body, "Update")
        who = caller(request)
        obj = await self._commit(self.writes.create(rt, ns, body, manager, who),
                                 dry_run(request))
        return with_warnings(json_response(obj, 201), warnings + who.warnings)

    async def update(self, rt: Strategy, ns: str, name: str, request: Request,
                     subresource: str) -> Response:
        decoded = await read_object(request, replaces=True)
        body = decoded.document
        warnings = check_fields(rt, body, field_validation(request), decoded.duplicates)
        manager = field_manager(rt, request, body, "Update", subresource)
        who = caller(request)
        written: Written = await self._commit(
            self.writes.update(rt, ns, name, body, subresource, manager, who), dry_run(request))
        return with_warnings(json_response(written.obj, 201 if written.created else 200),
                             warnings + who.warnings)

    async def update_scale(self, rt: Strategy, ns: str, name: str,
                           request: Request) -> Response:
        """``PUT <kind>/<name>/scale``: the Scale's replicas become the owner's."""
        decoded = await read_object(request, scale.KIND)
        body = decoded.document
        warnings = check_fields(rt, body, field_validation(request), decoded.duplicates,
                                model=scale.OPENAPI_ROOT)
        manager = field_manager(rt, request, body, "Update", scale.SUBRESOURCE)
        who = caller(request)
        written: Written = await self._commit(
            self.writes.patch(rt, ns, name, lambda old: scale.scaled(old, body, name),
                              scale.SUBRESOURCE, None, manager, who), dry_run(request))
        return with_warnings(json_response(scale.scale_of(written.obj)),
                             warnings + who.warnings)

    async def patch(self, rt: Strategy, ns: str, name: str, request: Request,
                    subresource: str) -> Response:
        flavour = PATCH_TYPES.get(media_type(request))
        if flavour is None:
            raise UnsupportedMediaType(
                f'the body of the request was in an unknown format - accepted media types '
                f'include: {", ".join(PATCH_TYPES)}')
        raw = await read_body(request)
        mode = field_validation(request)
        create_body = None
        if flavour == "apply":
            if not query(request).get("fieldManager"):
                raise BadRequest("PatchOptions.meta.k8s.io \"\" is invalid: fieldManager: "
                                 "Required value: is required for apply patch")
            decoded = await decode_body(YAML, raw)
            document = decoded.document
            if not isinstance(document, dict):
                raise BadRequest("an apply patch must be a single object")
            # its size is judged as stored (``WriteTxn.put``), against the version it replaces
            create_body = document
        else:
            decoded = await decode_body(JSON, raw)
            document = decoded.document
        # A Scale is patched as a Scale (a view of its owner) and written to the owner.
        view = subresource == scale.SUBRESOURCE
        model = scale.OPENAPI_ROOT if view else None
        if create_body is not None:
            warnings = check_fields(rt, create_body, mode, decoded.duplicates, model=model)
        else:  # the patch's own repeated keys; the patched object is checked below
            warnings = check_fields(rt, None, mode, decoded.duplicates, model=model)

        def apply_patch(stored: dict) -> dict:
            old = scale.scale_of(stored) if view else stored
            try:
                if flavour == "json":
                    if not isinstance(document, list):
                        raise patches.PatchError("a JSON patch must be a list of operations",
                                                 malformed=True)
                    patched = patches.json_patch(old, document)
                elif not isinstance(document, dict):
                    raise patches.PatchError("a merge patch must be a JSON object",
                                             malformed=True)
                elif flavour == "merge":
                    patched = patches.merge_patch(old, document)
                else:
                    patched = patches.strategic_merge_patch(rt.patch_schema, old, document)
            except patches.PatchError as exc:
                if exc.malformed:
                    raise BadRequest(str(exc)) from None
                raise Unprocessable(str(exc)) from None
            warnings.extend(check_fields(rt, patched, mode, model=model))
            return scale.scaled(stored, patched, name) if view else patched

        fields_doc = document if isinstance(document, dict) else {}
        manager = field_manager(rt, request, fields_doc,
                                "Apply" if flavour == "apply" else "Update", subresource)
        who = caller(request)
        written: Written = await self._commit(
            self.writes.patch(rt, ns, name, apply_patch, subresource, create_body, manager, who),
            dry_run(request))
        answer = scale.scale_of(written.obj) if view else written.obj
        return with_warnings(json_response(answer, 201 if written.created else 200),
                             warnings + who.warnings)

    async def delete(self, rt: Strategy, ns: str, name: str, request: Request) -> Response:
        options = await delete_options(request)
        who = caller(request)
        result = await self._commit(self.writes.delete(rt, ns, name, options, who),
                                    dry_run(request))
        code = propagation.delete_status(options, result)
        return with_warnings(json_response(result, code), who.warnings)

    async def delete_collection(self, rt: Strategy, namespace: str | None,
                                request: Request) -> Response:
        opts = parse_list_options(query(request), rt)
        options = await delete_options(request)
        page = await anyio.to_thread.run_sync(
            lambda: self.store.list(rt.key, namespace, keep=opts.matcher()))
        items = [orjson.loads(d) for d in page.items]
        who = caller(request)
        for item in items:
            m = item.get("metadata", {})
            try:
                await self._commit(self.writes.delete(rt, m.get("namespace", ""), m["name"],
                                                      options, who), dry_run(request))
            except NotFound:
                continue  # deleted meanwhile: that is what was asked
        body = {"kind": f"{rt.kind.kind}List", "apiVersion": rt.kind.api_version,
                "metadata": {"resourceVersion": str(self.store.revision)}, "items": items}
        return with_warnings(json_response(body), who.warnings)

    async def review(self, rt: Strategy, request: Request, namespace: str) -> Response:
        """A kind that is asked, not stored: its strategy answers with the caller at hand."""
        if rt.reads_no_body:
            await read_body(request)  # whatever it says (kubectl sends protobuf), unread
            body: dict = {}
        else:
            decoded = await read_object(request, rt.kind.kind)
            body = decoded.document
            check_fields(rt, body, field_validation(request), decoded.duplicates)
        ctx = ReviewContext(request.scope.get(USER_KEY, ANONYMOUS_USER), self.authenticator,
                            self.store, self.authorization, namespace)
        return json_response(await rt.review(ctx, body), 201)

    async def action(self, rt: Strategy, subresource: str, ns: str, name: str,
                     request: Request) -> Response:
        body = (await read_object(request, rt.actions[subresource].kind)).document
        who = caller(request)
        result = await self._commit(self.writes.action(rt, subresource, ns, name, body, who),
                                    dry_run(request))
        return with_warnings(json_response(result, 201), who.warnings)


# ---------------------------------------------------------------------- request bodies


async def read_body(request: Request) -> bytes:
    length = request.headers.get("content-length")
    if length and length.isdigit() and int(length) > MAX_BODY_BYTES:
        raise RequestTooLarge(f"the request body is {length} bytes, over the limit of "
                              f"{MAX_BODY_BYTES} bytes")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_BODY_BYTES:
            raise RequestTooLarge(f"the request body is over the limit of {MAX_BODY_BYTES} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def media_type(request: Request) -> str:
    """The request's Content-Type without parameters, lower-cased.

    Absent, it is JSON (as Kubernetes reads it: the official Python client sends
    no type with its JSON bodies) unless the request comes from a browser (it has
    an ``Origin``), where a body without a type is one a page can send cross-site
    without asking first: that is refused like any other unknown type.
    """
    value = request.headers.get("content-type")
    if value is None:
        return "" if "origin" in request.headers else JSON
    return value.split(";")[0].strip().lower()


async def decode_body(content_type: str, raw: bytes, kind: str | None = None,
                      ) -> decoding.Decoded:
    """Decode a JSON or YAML body within ``decoding``'s limits; any other type is a 415.

    A large body is decoded on a worker thread so that it cannot stall the event
    loop (and every other request) while it is read.

    Only types a browser cannot send cross-site without asking first are read
    (no text/plain, no forms), so a web page cannot make a user's browser write.
    Protobuf is read only where ``kind`` (what the endpoint takes) is one kubectl
    sends no other way (``protobuf.KINDS``: the access reviews, TokenRequest, and the
    kinds of kubectl's imperative ``create``: Namespace, ServiceAccount, the RBAC four,
    Deployment, ConfigMap, Secret).
    """
    if content_type == JSON:
        decode, offload = decoding.decode_json, decoding.OFFLOAD_BYTES
    elif content_type == YAML:
        decode, offload = decoding.decode_yaml, (decoding.OFFLOAD_BYTES if decoding.looks_like_json(
            raw) else decoding.OFFLOAD_YAML_BYTES)
    elif content_type == protobuf.MEDIA_TYPE:
        if kind is not None and kind in protobuf.KINDS:
            try:
                return decoding.Decoded(protobuf.decode(raw, kind))
            except protobuf.ProtobufError as exc:
                raise BadRequest(f"the request body is not a valid {kind}: {exc}") from None
        raise UnsupportedMediaType(
            "protobuf request bodies are not supported by miniplane; send JSON "
            "(kubectl apply -f / kubectl create -f do)")
    else:
        raise UnsupportedMediaType(f'the body of the request was in an unknown format - '
                                   f'accepted media types include: {JSON}, {YAML}')
    if len(raw) > offload:
        return await anyio.to_thread.run_sync(decode, raw)
    return decode(raw)


async def read_object(request: Request, kind: str | None = None, *,
                      replaces: bool = False) -> decoding.Decoded:
    """The request's body as an object no larger than an object may be stored; ``kind``
    is the kind the endpoint takes, for the few that may come as protobuf.

    A body that ``replaces`` a stored object is judged by storage instead, against the
    version it replaces: one stored over the limit before there was a limit may be
    rewritten a little larger (``kubectl edit`` removing a finalizer)."""
    content_type = media_type(request)
    raw = await read_body(request)
    decoded = await decode_body(content_type, raw, kind)
    if not isinstance(decoded.document, dict):
        raise BadRequest("the request body must be a JSON object")
    if not replaces:
        decoding.check_object_size(decoded.size)
    return decoded


_NO_QUERY = QueryParams("")


def caller(request: Request) -> Caller:
    """The write's caller: the user authentication put in the scope (never a cookie)."""
    user = request.scope.get(USER_KEY)
    return Caller(user if isinstance(user, UserInfo) else ANONYMOUS_USER)


def query(request: Request) -> QueryParams:
    """The request's query parameters; most writes have none, so skip parsing then."""
    if not request.scope.get("query_string"):
        return _NO_QUERY
    return request.query_params


def field_validation(request: Request) -> str:
    """Ignore, Warn (the default, as in Kubernetes) or Strict."""
    mode = query(request).get("fieldValidation") or "Warn"
    if mode not in ("Ignore", "Warn", "Strict"):
        raise BadRequest(f'fieldValidation must be one of "Ignore", "Warn" or "Strict", '
                         f'got "{mode}"')
    return mode


def check_fields(rt: Strategy, obj: Any, mode: str, duplicates: Sequence[str] = (), *,
                 model: str | None = None) -> list[str]:
    """Drop fields the kind (or ``model``, a subresource's body: Scale) does not have;
    Strict rejects them and keys the body repeats (``duplicates``), Warn reports both,
    Ignore neither (the last of a repeat wins)."""
    unknown = openapi.unknown_fields(model or rt.openapi_root, obj, prune=True)
    if not (unknown or duplicates) or mode == "Ignore":
        return []
    problems = [f'duplicate field "{path}"' for path in duplicates]
    problems += [f'unknown field "{path}"' for path in unknown]
    if mode == "Strict":
        k = rt.kind
        raise BadRequest(f'{k.kind} in version "{k.version}" cannot be handled as a {k.kind}: '
                         f'strict decoding error: {", ".join(problems)}')
    return problems


def field_manager(rt: Strategy, request: Request, doc: dict, operation: str,
                  subresource: str = "") -> Manager | None:
    name = query(request).get("fieldManager")
    if not name:
        return None
    if len(name) > 128:
        raise BadRequest("fieldManager must be at most 128 characters")
    return Manager(name, operation, managedfields.field_set(rt.patch_schema, doc), subresource)


def with_warnings(response: Response, warnings: list[str]) -> Response:
    """Kubernetes' ``Warning: 299 - "text"`` headers, which kubectl prints."""
    for text in warnings:
        quoted = text.replace("\\", "\\\\").replace('"', '\\"')
        response.raw_headers.append((b"warning", f'299 - "{quoted}"'.encode()))
    return response


def dry_run(request: Request) -> bool:
    values = query(request).getlist("dryRun")
    for value in values:
        if value != "All":
            raise BadRequest(f'Invalid dryRun value "{value}": supported value is "All"')
    return bool(values)


async def delete_options(request: Request) -> dict[str, Any]:
    raw = await read_body(request)
    options: dict[str, Any] = {}
    if raw.strip():
        document = (await decode_body(media_type(request), raw)).document
        if not isinstance(document, dict):
            raise BadRequest("DeleteOptions must be a JSON object")
        options.update(document)
    q = query(request)
    if "gracePeriodSeconds" in q:
        try:
            options["gracePeriodSeconds"] = int(q["gracePeriodSeconds"])
        except ValueError:
            raise BadRequest("gracePeriodSeconds must be an integer") from None
    if "propagationPolicy" in q:
        options["propagationPolicy"] = q["propagationPolicy"]
    if "orphanDependents" in q:
        options["orphanDependents"] = _query_bool("orphanDependents", q["orphanDependents"])
    grace = options.get("gracePeriodSeconds")
    if grace is not None and (not isinstance(grace, int) or isinstance(grace, bool)):
        raise BadRequest("gracePeriodSeconds must be an integer")
    propagation.check_options(options)
    return options


def _query_bool(name: str, value: str) -> bool:
    """A boolean query parameter as Go's strconv.ParseBool reads it."""
    if value in ("1", "t", "T", "true", "TRUE", "True"):
        return True
    if value in ("0", "f", "F", "false", "FALSE", "False"):
        return False
    raise BadRequest(f'{name} must be a boolean, got "{value}"')
