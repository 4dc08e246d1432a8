"""pods/proxy and services/proxy: which pod port a request goes to (pure)."""

from __future__ import annotations

import random
from typing import Any

import pytest

from apiserver.errors import BadRequest
from apiserver.nodeproxy import ServiceUnavailable
from apiserver.proxytargets import (
    Backend,
    ProxyPath,
    pod_backend,
    proxy_path,
    service_backend,
    split_scheme_name_port,
)
from componentbase.hopbyhop import relayed_headers


@pytest.mark.parametrize(("ident", "want"), [
    ("web", ("", "web", "")),
    ("web:80", ("", "web", "80")),
    ("web:http", ("", "web", "http")),
    ("https:web:443", ("https", "web", "443")),
    ("http:web:", ("http", "web", "")),
    (":80", None),
    ("ftp:web:21", None),
    ("a:b:c:d", None),
])
def test_split_scheme_name_port(ident: str, want: tuple[str, str, str] | None) -> None:
    assert split_scheme_name_port(ident) == want


@pytest.mark.parametrize(("path", "want"), [
    ("/api/v1/namespaces/default/pods/web/proxy",
     ProxyPath("default", "pods", "", "web", "", "/")),
    ("/api/v1/namespaces/default/pods/web:8080/proxy/",
     ProxyPath("default", "pods", "", "web", "8080", "/")),
    ("/api/v1/namespaces/ns1/services/https:web:443/proxy/a/b/",
     ProxyPath("ns1", "services", "https", "web", "443", "/a/b/")),
    ("/api/v1/namespaces/default/pods/web", None),
    ("/api/v1/namespaces/default/pods/web/log", None),
    ("/api/v1/namespaces/default/configmaps/web/proxy", None),
    ("/apis/apps/v1/namespaces/default/pods/web/proxy", None),
    ("/api/v1/proxy/namespaces/default/pods/web", None),
])
def test_proxy_path(path: str, want: ProxyPath | None) -> None:
    assert proxy_path(path) == want


def test_a_malformed_id_is_a_bad_request() -> None:
    with pytest.raises(BadRequest, match="invalid service proxy id 'ftp:web:21'"):
        proxy_path("/api/v1/namespaces/default/services/ftp:web:21/proxy/")


def pod(*ports: dict[str, Any], node: str | None = "n1", phase: str = "Running"
        ) -> dict[str, Any]:
    return {"metadata": {"name": "web", "namespace": "default"},
            "spec": {"nodeName": node, "containers": [{"name": "c", "ports": list(ports)}]},
            "status": {"phase": phase}}


def target(port: str = "", scheme: str = "", plural: str = "pods") -> ProxyPath:
    return ProxyPath("default", plural, scheme, "web", port, "/")


@pytest.mark.parametrize(("the_pod", "the_target", "want"), [
    (pod({"containerPort": 8080}), target(), Backend("web", "n1", "http", 8080)),
    (pod(), target(), Backend("web", "n1", "http", 80)),
    (pod(), target(scheme="https"), Backend("web", "n1", "https", 443)),
    (pod({"containerPort": 8080}), target("9090"), Backend("web", "n1", "http", 9090)),
    (pod({"name": "metrics", "containerPort": 9100}), target("metrics"),
     Backend("web", "n1", "http", 9100)),
])
def test_pod_backend(the_pod: dict[str, Any], the_target: ProxyPath, want: Backend) -> None:
    assert pod_backend(the_pod, the_target) == want


@pytest.mark.parametrize(("the_pod", "the_target", "message"), [
    (pod(), target("admin"), "pod web has no port 'admin'"),
    (pod(node=None), target(), "pod web does not have a host assigned"),
    (pod(phase="Succeeded"), target(), "pod web is not running"),
])
def test_pod_backend_refusals(the_pod: dict[str, Any], the_target: ProxyPath,
                              message: str) -> None:
    with pytest.raises(BadRequest, match=message):
        pod_backend(the_pod, the_target)


SERVICE = {"metadata": {"name": "web", "namespace": "default"},
           "spec": {"ports": [{"name": "http", "port": 80, "targetPort": 8080},
                              {"name": "metrics", "port": 9000, "targetPort": 9100}]}}


def endpoint(pod_name: str, *, ready: bool | None = True, node: str | None = "n1",
             ref: bool = True) -> dict[str, Any]:
    ep: dict[str, Any] = {"addresses": ["10.244.0.9"], "conditions": {"ready": ready}}
    if node:
        ep["nodeName"] = node
    if ref:
        ep["targetRef"] = {"kind": "Pod", "namespace": "default", "name": pod_name}
    return ep


def slice_of(*endpoints: dict[str, Any]) -> dict[str, Any]:
    return {"metadata": {"name": "web-abc", "labels": {"kubernetes.io/service-name": "web"}},
            "ports": [{"name": "http", "port": 8080}, {"name": "metrics", "port": 9100}],
            "endpoints": list(endpoints)}


@pytest.mark.parametrize(("port", "want_port"), [("http", 8080), ("80", 8080),
                                                 ("metrics", 9100), ("9000", 9100)])
def test_a_service_port_by_name_or_number(port: str, want_port: int) -> None:
    got = service_backend(SERVICE, [slice_of(endpoint("web-1"))], target(port, plural="services"))
    assert got == Backend("web-1", "n1", "http", want_port)


def test_only_ready_endpoints_with_a_pod_and_node_are_picked() -> None:
    slices = [slice_of(endpoint("not-ready", ready=False), endpoint("no-node", node=None),
                       endpoint("no-ref", ref=False), endpoint("web-2"), endpoint("web-3"))]
    picked = {service_backend(SERVICE, slices, target("http", "https", "services"),
                              rng=random.Random(seed)).pod for seed in range(40)}
    assert picked == {"web-2", "web-3"}
    assert service_backend(SERVICE, slices, target("http", "https", "services"),
                           rng=random.Random(1)).scheme == "https"


def test_an_unnamed_single_port_is_the_default() -> None:
    service = {"metadata": {"name": "web"}, "spec": {"ports": [{"port": 80}]}}
    eps = {"ports": [{"port": 8080}], "endpoints": [endpoint("web-1")]}
    assert service_backend(service, [eps], target(plural="services")).port == 8080


@pytest.mark.parametrize(("slices", "port", "message"), [
    ([slice_of(endpoint("web-1"))], "8080", 'no service port "8080" found for service "web"'),
    ([slice_of(endpoint("web-1"))], "", 'no service port "" found for service "web"'),
    ([slice_of(endpoint("web-1", ready=False))], "http",
     'no endpoints available for service "web:http"'),
    ([], "80", 'no endpoints available for service "web:80"'),
])
def test_service_backend_refusals(slices: list[dict[str, Any]], port: str, message: str,
                                  ) -> None:
    with pytest.raises(ServiceUnavailable, match=message) as caught:
        service_backend(SERVICE, slices, target(port, plural="services"))
    assert caught.value.code == 503


def test_hop_by_hop_headers_are_not_relayed() -> None:
    headers = [("Connection", "keep-alive, X-Trace"), ("X-Trace", "1"), ("Keep-Alive", "5"),
               ("Transfer-Encoding", "chunked"), ("Set-Cookie", "a=1"), ("Set-Cookie", "b=2"),
               ("Authorization", "Bearer t"), ("Content-Type", "text/plain")]
    assert relayed_headers(headers, drop=("authorization",)) == [
        ("Set-Cookie", "a=1"), ("Set-Cookie", "b=2"), ("Content-Type", "text/plain")]


def test_the_callers_credentials_never_reach_the_pod() -> None:
    from apiserver.proxies import _request_headers

    scope = {"headers": [(b"authorization", b"Bearer secret"), (b"impersonate-user", b"root"),
                         (b"impersonate-group", b"system:masters"), (b"host", b"api:6443"),
                         (b"connection", b"keep-alive"), (b"accept", b"text/html"),
                         (b"x-forwarded-for", b"1.2.3.4")]}
    assert _request_headers(scope) == [("accept", "text/html"),
                                       ("x-forwarded-for", "1.2.3.4")]
