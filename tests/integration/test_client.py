"""The HTTP client against a real mp-apiserver: CRUD, paging, typed errors, watch.

The first part needs no server: the pure request builder, the Status → error
mapping and watch-line decoding, as tables.
"""

from __future__ import annotations

import asyncio
import itertools
import ssl
from contextlib import closing
from dataclasses import replace

import httpx
import orjson
import pytest

from apimachinery.kinds import ENDPOINTSLICE, NAMESPACE, NODE, POD, SERVICE
from client.config import ClientConfig
from client.errors import (
    AlreadyExists,
    ApiError,
    BadRequest,
    Conflict,
    ConnectionFailed,
    Expired,
    Forbidden,
    Invalid,
    MethodNotAllowed,
    NotFound,
    ServerError,
    TooManyRequests,
    Unauthorized,
    UnsupportedMediaType,
    error_from_response,
    is_retriable,
    namespace_terminating,
)
from client.http import AsyncClient, Client, RequestBuilder, decode_event, tls_verify
from tests.conftest import admin_config, free_port, wait_until

_names = itertools.count()


def unique(prefix: str) -> str:
    return f"{prefix}-{next(_names)}"


def service(name: str, *, port: int = 80, labels: dict | None = None) -> dict:
    return {"apiVersion": "v1", "kind": "Service",
            "metadata": {"name": name, "labels": labels or {}},
            "spec": {"selector": {"app": name}, "ports": [{"port": port}]}}


def rv(obj: dict) -> int:
    return int(obj["metadata"]["resourceVersion"])


# == pure: request building ==============================================================

build = RequestBuilder(default_namespace="team")


@pytest.mark.parametrize(("req", "method", "path"), [
    (build.get(SERVICE, "web"), "GET", "/api/v1/namespaces/team/services/web"),
    (build.get(SERVICE, "web", "prod"), "GET", "/api/v1/namespaces/prod/services/web"),
    (build.get(NODE, "n1", "ignored"), "GET", "/api/v1/nodes/n1"),
    (build.bind("web-1", "n1"), "POST", "/api/v1/namespaces/team/pods/web-1/binding"),
    (build.list(SERVICE), "GET", "/api/v1/services"),
    (build.list(POD, "prod"), "GET", "/api/v1/namespaces/prod/pods"),
    (build.list(NAMESPACE, "x"), "GET", "/api/v1/namespaces"),
    (build.list(ENDPOINTSLICE, "prod"), "GET",
     "/apis/discovery.k8s.io/v1/namespaces/prod/endpointslices"),
    (build.create(SERVICE, {"metadata": {"name": "a"}}), "POST",
     "/api/v1/namespaces/team/services"),
    (build.create(SERVICE, {"metadata": {"name": "a", "namespace": "obj"}}), "POST",
     "/api/v1/namespaces/obj/services"),
    (build.create(SERVICE, {"metadata": {"name": "a", "namespace": "obj"}}, "arg"), "POST",
     "/api/v1/namespaces/arg/services"),
    (build.create(NODE, {"metadata": {"name": "n"}}), "POST", "/api/v1/nodes"),
    (build.replace(POD, {"metadata": {"name": "p", "namespace": "x"}}, subresource="status"),
     "PUT", "/api/v1/namespaces/x/pods/p/status"),
    (build.patch(SERVICE, "web", {}, subresource="status"), "PATCH",
     "/api/v1/namespaces/team/services/web/status"),
    (build.delete(NAMESPACE, "gone"), "DELETE", "/api/v1/namespaces/gone"),
    (build.watch(SERVICE), "GET", "/api/v1/services"),
])
def test_paths(req, method, path):
    assert (req.method, req.path) == (method, path)


def test_list_and_watch_params_are_kubernetes_spelled():
    req = build.list(SERVICE, label_selector="app=web", field_selector="metadata.name=a",
                     limit=500, continue_="tok", resource_version="7")
    assert req.params == {"labelSelector": "app=web", "fieldSelector": "metadata.name=a",
                          "limit": "500", "continue": "tok", "resourceVersion": "7"}
    req = build.watch(SERVICE, "x", resource_version="12", timeout_seconds=300)
    assert req.params == {"watch": "true", "resourceVersion": "12",
                          "allowWatchBookmarks": "true", "timeoutSeconds": "300"}
    assert "allowWatchBookmarks" not in build.watch(SERVICE, allow_bookmarks=False).params


@pytest.mark.parametrize(("patch_type", "content_type"), [
    ("merge", "application/merge-patch+json"),
    ("json", "application/json-patch+json"),
    ("strategic", "application/strategic-merge-patch+json"),
    ("apply", "application/apply-patch+yaml"),
])
def test_patch_content_types(patch_type, content_type):
    req = build.patch(SERVICE, "web", {"a": 1}, patch_type=patch_type)
    assert req.headers["Content-Type"] == content_type
    assert orjson.loads(req.body) == {"a": 1}


def test_patch_options_and_raw_bodies():
    req = build.patch(SERVICE, "web", "a: 1\n", patch_type="apply", field_manager="mpctl",
                      force=True, dry_run=True)
    assert req.params == {"fieldManager": "mpctl", "force": "true", "dryRun": "All"}
    assert req.body == b"a: 1\n"
    with pytest.raises(ValueError, match="unknown patch_type"):
        build.patch(SERVICE, "web", {}, patch_type="yaml")


def test_delete_sends_options_only_when_given():
    assert build.delete(SERVICE, "a").body is None
    req = build.delete(SERVICE, "a", grace_period_seconds=0, propagation_policy="Background",
                       preconditions={"resourceVersion": "5"})
    assert orjson.loads(req.body) == {"kind": "DeleteOptions", "apiVersion": "v1",
                                      "gracePeriodSeconds": 0,
                                      "propagationPolicy": "Background",
                                      "preconditions": {"resourceVersion": "5"}}


def test_create_dry_run_and_missing_names():
    assert build.create(SERVICE, {"metadata": {"name": "a"}}, dry_run=True).params == \
        {"dryRun": "All"}
    with pytest.raises(ValueError):
        build.replace(SERVICE, {"metadata": {}})


def test_tls_and_token_settings():
    assert tls_verify(ClientConfig(server="http://127.0.0.1:1")) is False
    ctx = tls_verify(ClientConfig(server="https://127.0.0.1:1", insecure=True))
    assert isinstance(ctx, ssl.SSLContext) and ctx.verify_mode == ssl.CERT_NONE
    strict = tls_verify(ClientConfig(server="https://127.0.0.1:1"))
    assert strict.verify_mode == ssl.CERT_REQUIRED and strict.check_hostname
    with Client(ClientConfig(server="http://127.0.0.1:1", token="t0k")) as c:
        assert c._http.headers["Authorization"] == "Bearer t0k"
        assert c._http.headers["Accept"] == "application/json"


# == pure: Status → typed error ==========================================================


def status(code: int, reason: str, message: str = "m", **details) -> dict:
    body = {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
            "message": message, "reason": reason, "code": code}
    if details:
        body["details"] = details
    return body


@pytest.mark.parametrize(("code", "reason", "cls"), [
    (400, "BadRequest", BadRequest),
    (401, "Unauthorized", Unauthorized),
    (403, "Forbidden", Forbidden),
    (404, "NotFound", NotFound),
    (405, "MethodNotAllowed", MethodNotAllowed),
    (409, "AlreadyExists", AlreadyExists),
    (409, "Conflict", Conflict),
    (410, "Expired", Expired),
    (410, "Gone", Expired),
    (415, "UnsupportedMediaType", UnsupportedMediaType),
    (422, "Invalid", Invalid),
    (429, "TooManyRequests", TooManyRequests),
    (500, "InternalError", ServerError),
    (503, "ServiceUnavailable", ServerError),
    (504, "Timeout", ServerError),
    (413, "RequestEntityTooLarge", ApiError),
])
def test_every_status_maps_to_its_class(code, reason, cls):
    body = status(code, reason, "the message")
    for raw in (body, orjson.dumps(body)):
        err = error_from_response(code, raw)
        assert type(err) is cls
        assert (err.code, err.reason, err.message, str(err)) == \
            (code, reason, "the message", "the message")
        assert err.status == body


def test_invalid_carries_causes():
    body = status(422, "Invalid", 'Service "web" is invalid', name="web", kind="Service",
                  causes=[{"reason": "FieldValueInvalid", "message": "Invalid value: 0",
                           "field": "spec.ports[0].port"}])
    err = error_from_response(422, body)
    assert isinstance(err, Invalid)
    assert err.causes == [{"field": "spec.ports[0].port", "message": "Invalid value: 0",
                           "reason": "FieldValueInvalid"}]
    assert err.details["name"] == "web"


def test_foreign_bodies_get_a_synthesized_status():
    err = error_from_response(404, b'{"detail":"Not Found"}')
    assert isinstance(err, NotFound) and err.message == "Not Found"
    assert err.status["kind"] == "Status" and err.status["code"] == 404
    err = error_from_response(502, b"<html>" + b"x" * 1000 + b"</html>")
    assert isinstance(err, ServerError) and err.code == 502
    assert len(err.message) < 300
    assert error_from_response(503, None).message == "ServiceUnavailable"


def test_retry_after_from_details_or_header():
    err = error_from_response(429, status(429, "TooManyRequests", retryAfterSeconds=3))
    assert err.retry_after == 3
    err = error_from_response(503, b"", headers=httpx.Headers({"Retry-After": "2"}))
    assert err.retry_after == 2


def test_error_event_status_code_wins_on_a_200_stream():
    assert isinstance(error_from_response(200, status(410, "Expired")), Expired)


def test_retriable_errors():
    assert is_retriable(ConnectionFailed("x"))
    assert is_retriable(error_from_response(503, None))
    assert is_retriable(error_from_response(429, None))
    assert not is_retriable(error_from_response(409, status(409, "Conflict")))


# == pure: watch lines ====================================================================


def test_decode_event_lines():
    obj = {"metadata": {"name": "a", "resourceVersion": "3"}}
    line = orjson.dumps({"type": "ADDED", "object": obj})
    assert decode_event(line) == {"type": "ADDED", "object": obj}
    assert decode_event(b"") is None and decode_event("  ") is None
    assert decode_event(orjson.dumps({"type": "SURPRISE", "object": {}})) is None
    with pytest.raises(Expired, match="too old"):
        decode_event(orjson.dumps({"type": "ERROR", "object": status(
            410, "Expired", "too old resource version: 1 (5)")}))
    with pytest.raises(ServerError):
        decode_event(orjson.dumps({"type": "ERROR", "object": status(500, "InternalError")}))
    with pytest.raises(ServerError, match="malformed"):
        decode_event(b'{"type": "ADD')


# == against a real server =================================================================


@pytest.fixture
def api(shared_url):
    with Client(admin_config(shared_url)) as c:
        yield c


@pytest.fixture
def ns(api) -> str:
    name = unique("client")
    api.create(NAMESPACE, {"metadata": {"name": name}})
    return name


def test_crud_round_trip(api, ns):
    created = api.create(SERVICE, service("web", labels={"app": "web"}), ns)
    assert created["metadata"]["namespace"] == ns
    assert created["metadata"]["uid"] and created["spec"]["clusterIP"]
    got = api.get(SERVICE, "web", ns)
    assert got["metadata"]["uid"] == created["metadata"]["uid"]

    got["metadata"]["labels"]["tier"] = "fe"
    replaced = api.replace(SERVICE, got)  # namespace from the object
    assert replaced["metadata"]["labels"] == {"app": "web", "tier": "fe"}
    assert rv(replaced) > rv(created)

    merged = api.patch(SERVICE, "web", {"metadata": {"labels": {"tier": None}}}, namespace=ns)
    assert merged["metadata"]["labels"] == {"app": "web"}
    jsonp = api.patch(SERVICE, "web",
                      [{"op": "add", "path": "/metadata/annotations", "value": {"a": "b"}}],
                      namespace=ns, patch_type="json")
    assert jsonp["metadata"]["annotations"] == {"a": "b"}
    strategic = api.patch(SERVICE, "web",
                          {"spec": {"ports": [{"port": 80, "name": "http"},
                                              {"port": 81, "name": "alt"}]}},
                          namespace=ns, patch_type="strategic")
    assert sorted(p["port"] for p in strategic["spec"]["ports"]) == [80, 81]

    listed = api.list(SERVICE, ns)
    assert listed["kind"] == "ServiceList"
    assert [s["metadata"]["name"] for s in listed["items"]] == ["web"]
    assert int(listed["metadata"]["resourceVersion"]) >= rv(strategic)

    api.delete(SERVICE, "web", ns)
    with pytest.raises(NotFound):
        api.get(SERVICE, "web", ns)


def test_default_namespace_comes_from_the_config(shared_url, api, ns):
    with Client(replace(admin_config(shared_url), namespace=ns)) as scoped:
        scoped.create(SERVICE, service("dflt"))
        assert scoped.get(SERVICE, "dflt")["metadata"]["namespace"] == ns
    assert api.get(SERVICE, "dflt", ns)


def test_cluster_scoped_kind_has_no_namespace_in_the_url(api):
    name = unique("node")
    node = api.create(NODE, {"metadata": {"name": name}}, "ignored")
    assert "namespace" not in node["metadata"] or not node["metadata"]["namespace"]
    assert api.get(NODE, name)["metadata"]["name"] == name
    api.delete(NODE, name)


def test_status_subresource(api, ns):
    api.create(POD, {"metadata": {"name": "p"},
                     "spec": {"containers": [{"name": "c", "image": "busybox"}]}}, ns)
    patched = api.patch(POD, "p", {"status": {"phase": "Running"}}, namespace=ns,
                        subresource="status")
    assert patched["status"]["phase"] == "Running"
    current = api.get(POD, "p", ns)
    current["status"]["podIP"] = "10.244.1.5"
    assert api.replace(POD, current, subresource="status")["status"]["podIP"] == "10.244.1.5"


def test_bind_puts_a_pod_on_a_node_once(api, shared_url, ns):
    for name in ("b1", "b2"):
        api.create(POD, {"metadata": {"name": name},
                         "spec": {"containers": [{"name": "c", "image": "busybox"}]}}, ns)
    assert api.bind("b1", "node-a", ns)["status"] == "Success"
    assert api.get(POD, "b1", ns)["spec"]["nodeName"] == "node-a"
    with pytest.raises(Conflict):  # bound already: a scheduler's lost race
        api.bind("b1", "node-b", ns)
    with pytest.raises(NotFound):
        api.bind("nobody", "node-a", ns)

    async def main() -> None:
        async with AsyncClient(admin_config(shared_url)) as client:
            await client.bind("b2", "node-b", ns)

    asyncio.run(main())
    assert api.get(POD, "b2", ns)["spec"]["nodeName"] == "node-b"


def test_dry_run_create_persists_nothing(api, ns):
    api.create(SERVICE, service("dry"), ns, dry_run=True)
    with pytest.raises(NotFound):
        api.get(SERVICE, "dry", ns)


def test_list_selectors_and_all_namespaces(api, ns):
    other = unique("other")
    api.create(NAMESPACE, {"metadata": {"name": other}})
    api.create(SERVICE, service("a", labels={"app": "a"}), ns)
    api.create(SERVICE, service("b", labels={"app": "b"}), ns)
    api.create(SERVICE, service("a", labels={"app": "a"}), other)
    names = {(s["metadata"]["namespace"], s["metadata"]["name"])
             for s in api.list(SERVICE, label_selector="app=a")["items"]}
    assert names == {(ns, "a"), (other, "a")}
    only = api.list(SERVICE, ns, field_selector="metadata.name=b")["items"]
    assert [s["metadata"]["name"] for s in only] == ["b"]


def test_list_all_follows_continue_with_one_snapshot(api, ns):
    for i in range(7):
        api.create(SERVICE, service(f"s{i}"), ns)
    page = api.list(SERVICE, ns, limit=3)
    assert len(page["items"]) == 3 and page["metadata"].get("continue")
    everything = api.list_all(SERVICE, ns, limit=3)
    assert sorted(s["metadata"]["name"] for s in everything["items"]) == \
        [f"s{i}" for i in range(7)]
    assert not everything["metadata"].get("continue")
    assert everything["metadata"]["resourceVersion"]


# -- every typed error the server can produce -------------------------------------------


def test_not_found(api, ns):
    with pytest.raises(NotFound) as err:
        api.get(SERVICE, "missing", ns)
    assert err.value.code == 404 and "missing" in err.value.message
    assert err.value.details.get("name") == "missing"


def test_already_exists(api, ns):
    api.create(SERVICE, service("dup"), ns)
    with pytest.raises(AlreadyExists) as err:
        api.create(SERVICE, service("dup"), ns)
    assert err.value.code == 409 and err.value.reason == "AlreadyExists"


def test_conflict_on_stale_resource_version(api, ns):
    stale = api.create(SERVICE, service("c"), ns)
    api.patch(SERVICE, "c", {"metadata": {"labels": {"x": "1"}}}, namespace=ns)
    with pytest.raises(Conflict) as err:
        api.replace(SERVICE, stale)
    assert err.value.code == 409 and err.value.reason == "Conflict"
    assert not isinstance(err.value, AlreadyExists)


def test_conflict_on_failed_delete_precondition(api, ns):
    obj = api.create(SERVICE, service("pre"), ns)
    with pytest.raises(Conflict):
        api.delete(SERVICE, "pre", ns, preconditions={"resourceVersion": str(rv(obj) - 1)})
    api.delete(SERVICE, "pre", ns, preconditions={"uid": obj["metadata"]["uid"]})


def test_invalid_names_the_field(api, ns):
    with pytest.raises(Invalid) as err:
        api.create(SERVICE, service("bad", port=0), ns)
    assert err.value.code == 422
    assert any(c["field"] == "spec.ports[0].port" for c in err.value.causes)


def test_bad_request_for_a_bad_selector(api, ns):
    with pytest.raises(BadRequest) as err:
        api.list(SERVICE, ns, label_selector="app in (")
    assert err.value.code == 400


def test_unsupported_media_type(api, ns):
    api.create(SERVICE, service("m"), ns)
    with pytest.raises(UnsupportedMediaType) as err:
        api.request("PATCH", SERVICE.item_path("m", ns), content=b"{}",
                    headers={"Content-Type": "text/plain"})
    assert err.value.code == 415


def test_method_not_allowed(api, ns):
    with pytest.raises(MethodNotAllowed) as err:
        api.request("PUT", SERVICE.collection_path(ns), json={})
    assert err.value.code == 405


def test_forbidden_in_a_terminating_namespace(api):
    name = unique("term")
    api.create(NAMESPACE, {"metadata": {"name": name}})
    api.create(SERVICE, service("keep"), name)
    # Add a finalizer so the namespace stays Terminating while we try to create into it.
    api.patch(SERVICE, "keep", {"metadata": {"finalizers": ["test/hold"]}}, namespace=name)
    api.delete(NAMESPACE, name)
    with pytest.raises(Forbidden) as err:
        api.create(SERVICE, service("late"), name)
    assert err.value.code == 403
    # the cause controllers tell from other refusals (RBAC, Pod Security)
    assert namespace_terminating(err.value)
    assert err.value.status["details"]["causes"][0]["field"] == "metadata.namespace"
    api.patch(SERVICE, "keep", {"metadata": {"finalizers": None}}, namespace=name)


def test_connection_refused_is_connection_failed():
    with Client(server=f"http://127.0.0.1:{free_port()}", timeout=2) as dead, \
            pytest.raises(ConnectionFailed) as err:
        dead.get(SERVICE, "x")
    assert err.value.code == 0
    assert isinstance(err.value.__cause__, httpx.ConnectError)


# -- watch -----------------------------------------------------------------------------------


def test_watch_from_a_version_yields_changes_in_order(api, ns):
    start = int(api.list(SERVICE, ns)["metadata"]["resourceVersion"])
    api.create(SERVICE, service("w"), ns)
    api.patch(SERVICE, "w", {"metadata": {"labels": {"v": "2"}}}, namespace=ns)
    api.delete(SERVICE, "w", ns)
    seen = []
    with closing(api.watch(SERVICE, ns, resource_version=str(start), timeout_seconds=5)) as events:
        for event in events:
            if event["type"] != "BOOKMARK":
                seen.append(event)
            if len(seen) == 3:
                break
    assert [e["type"] for e in seen] == ["ADDED", "MODIFIED", "DELETED"]
    versions = [rv(e["object"]) for e in seen]
    assert versions == sorted(versions) and versions[0] > start
    assert seen[2]["object"]["metadata"]["labels"] == {"v": "2"}  # last state on delete


def test_watch_without_version_starts_with_synthetic_adds(api, ns):
    for name in ("x", "y"):
        api.create(SERVICE, service(name), ns)
    with closing(api.watch(SERVICE, ns, timeout_seconds=5)) as events:
        first = [next(events), next(events)]
    assert [e["type"] for e in first] == ["ADDED", "ADDED"]
    assert {e["object"]["metadata"]["name"] for e in first} == {"x", "y"}


def test_watch_ends_when_its_timeout_passes(api, ns):
    events = list(api.watch(SERVICE, ns, resource_version=api.list(SERVICE, ns)["metadata"]
                            ["resourceVersion"], timeout_seconds=1))
    assert all(e["type"] == "BOOKMARK" for e in events)


def test_watch_selector_filters(api, ns):
    start = api.list(SERVICE, ns)["metadata"]["resourceVersion"]
    api.create(SERVICE, service("skip", labels={"app": "no"}), ns)
    api.create(SERVICE, service("take", labels={"app": "yes"}), ns)
    with closing(api.watch(SERVICE, ns, resource_version=start, label_selector="app=yes",
                           timeout_seconds=5)) as events:
        event = next(e for e in events if e["type"] != "BOOKMARK")
    assert event["object"]["metadata"]["name"] == "take"


def test_watch_of_a_compacted_version_raises_expired(make_apiserver):
    server = make_apiserver("--event-retention", "5")
    with Client(admin_config(server.url)) as api:
        api.create(NAMESPACE, {"metadata": {"name": "exp"}})
        start = api.list(SERVICE, "exp")["metadata"]["resourceVersion"]
        for i in range(12):
            api.create(SERVICE, service(f"e{i}"), "exp")

        def expired() -> bool:
            try:
                list(api.watch(SERVICE, "exp", resource_version=start, timeout_seconds=1))
            except Expired as exc:
                assert exc.code == 410
                return True
            return False

        wait_until(expired, timeout=30, what="the event log to be compacted past the start")


def test_killed_server_mid_watch_is_connection_failed(apiserver):
    with Client(admin_config(apiserver.url)) as api:
        start = api.list(SERVICE, "default")["metadata"]["resourceVersion"]
        events = api.watch(SERVICE, "default", resource_version=start, timeout_seconds=60)
        api.create(SERVICE, service("before-kill"), "default")
        assert next(events)["type"] == "ADDED"
        apiserver.kill()
        with pytest.raises(ConnectionFailed):
            for _ in events:
                pass
        events.close()


# -- async client ----------------------------------------------------------------------------


def test_async_client_crud_list_all_and_watch(shared_url, ns):
    async def main() -> list[str]:
        async with AsyncClient(admin_config(shared_url)) as client:
            start = (await client.list(SERVICE, ns))["metadata"]["resourceVersion"]
            await client.create(SERVICE, service("aa"), ns)
            await client.patch(SERVICE, "aa", {"metadata": {"labels": {"k": "v"}}},
                               namespace=ns)
            assert (await client.get(SERVICE, "aa", ns))["metadata"]["labels"] == {"k": "v"}
            for i in range(4):
                await client.create(SERVICE, service(f"p{i}"), ns)
            assert len((await client.list_all(SERVICE, ns, limit=2))["items"]) == 5
            await client.delete(SERVICE, "aa", ns)
            with pytest.raises(NotFound):
                await client.get(SERVICE, "aa", ns)
            types = []
            events = client.watch(SERVICE, ns, resource_version=start, timeout_seconds=5)
            async for event in events:
                if event["object"]["metadata"].get("name") == "aa":
                    types.append(event["type"])
                if len(types) == 3:
                    break
            await events.aclose()
            return types

    assert asyncio.run(main()) == ["ADDED", "MODIFIED", "DELETED"]


def test_async_connection_failure():
    async def main() -> None:
        async with AsyncClient(server=f"http://127.0.0.1:{free_port()}", timeout=2) as client:
            with pytest.raises(ConnectionFailed):
                await client.list(SERVICE)
            with pytest.raises(ConnectionFailed):
                async for _ in client.watch(SERVICE, timeout_seconds=1):
                    pass

    asyncio.run(main())
