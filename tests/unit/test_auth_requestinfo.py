"""RequestInfo from method, path and query, as Kubernetes' RequestInfoFactory makes it."""

from __future__ import annotations

import pytest

from apiserver.auth.requestinfo import RequestInfo, request_info

R = True

CASES = [
    # method, path, query → verb, resource?, group, version, namespace, resource, sub, name
    ("GET", "/api/v1/namespaces/default/pods", "", ("list", R, "", "v1", "default", "pods", "", "")),
    ("GET", "/api/v1/namespaces/default/pods", "watch=1",
     ("watch", R, "", "v1", "default", "pods", "", "")),
    ("GET", "/api/v1/namespaces/default/pods", "watch=true&resourceVersion=5",
     ("watch", R, "", "v1", "default", "pods", "", "")),
    ("GET", "/api/v1/namespaces/default/pods", "watch=false",
     ("list", R, "", "v1", "default", "pods", "", "")),
    ("GET", "/api/v1/pods", "", ("list", R, "", "v1", "", "pods", "", "")),
    ("GET", "/api/v1/namespaces/default/pods/web", "",
     ("get", R, "", "v1", "default", "pods", "", "web")),
    ("HEAD", "/api/v1/namespaces/default/pods/web", "",
     ("get", R, "", "v1", "default", "pods", "", "web")),
    ("POST", "/api/v1/namespaces/default/pods", "",
     ("create", R, "", "v1", "default", "pods", "", "")),
    ("PUT", "/api/v1/namespaces/default/pods/web/status", "",
     ("update", R, "", "v1", "default", "pods", "status", "web")),
    ("PATCH", "/api/v1/nodes/n1/status", "", ("patch", R, "", "v1", "", "nodes", "status", "n1")),
    ("DELETE", "/api/v1/namespaces/default/pods/web", "",
     ("delete", R, "", "v1", "default", "pods", "", "web")),
    ("DELETE", "/api/v1/namespaces/default/pods", "",
     ("deletecollection", R, "", "v1", "default", "pods", "", "")),
    ("POST", "/api/v1/namespaces/default/pods/web/binding", "",
     ("create", R, "", "v1", "default", "pods", "binding", "web")),
    ("POST", "/api/v1/namespaces/ns1/serviceaccounts/default/token", "",
     ("create", R, "", "v1", "ns1", "serviceaccounts", "token", "default")),
    # a namespace is its own namespace; its status is a subresource, not a resource
    ("GET", "/api/v1/namespaces/team", "", ("get", R, "", "v1", "team", "namespaces", "", "team")),
    ("GET", "/api/v1/namespaces", "", ("list", R, "", "v1", "", "namespaces", "", "")),
    ("PUT", "/api/v1/namespaces/team/finalize", "",
     ("update", R, "", "v1", "team", "namespaces", "finalize", "team")),
    ("GET", "/api/v1/namespaces/team/status", "",
     ("get", R, "", "v1", "team", "namespaces", "status", "team")),
    ("GET", "/apis/discovery.k8s.io/v1/namespaces/default/endpointslices", "",
     ("list", R, "discovery.k8s.io", "v1", "default", "endpointslices", "", "")),
    ("POST", "/apis/rbac.authorization.k8s.io/v1/clusterrolebindings", "",
     ("create", R, "rbac.authorization.k8s.io", "v1", "", "clusterrolebindings", "", "")),
    # the deprecated /watch/ path segment
    ("GET", "/api/v1/watch/namespaces/default/pods/web", "",
     ("watch", R, "", "v1", "default", "pods", "", "web")),
    # a list for one name (kubectl get --watch NAME) is about that name
    ("GET", "/api/v1/namespaces/default/pods", "fieldSelector=metadata.name%3Dweb",
     ("list", R, "", "v1", "default", "pods", "", "web")),
    ("GET", "/api/v1/namespaces/default/pods", "fieldSelector=metadata.name%3D%3Dweb&watch=1",
     ("watch", R, "", "v1", "default", "pods", "", "web")),
    ("GET", "/api/v1/namespaces/default/pods", "fieldSelector=metadata.name%21%3Dweb",
     ("list", R, "", "v1", "default", "pods", "", "")),
    ("GET", "/api/v1/namespaces/default/pods", "fieldSelector=metadata.name%3Dweb,spec.nodeName%3Dn",
     ("list", R, "", "v1", "default", "pods", "", "")),
    # non-resource requests: the method, lower-cased, and the path
    ("GET", "/healthz", "", ("get", False, "", "", "", "", "", "")),
    ("GET", "/metrics", "", ("get", False, "", "", "", "", "", "")),
    ("POST", "/version", "", ("post", False, "", "", "", "", "", "")),
    ("GET", "/api", "", ("get", False, "", "", "", "", "", "")),
    ("GET", "/api/v1", "", ("get", False, "", "", "", "", "", "")),
    ("GET", "/apis/discovery.k8s.io/v1", "", ("get", False, "", "", "", "", "", "")),
    ("GET", "/openapi/v3/api/v1", "", ("get", False, "", "", "", "", "", "")),
]


@pytest.mark.parametrize(("method", "path", "query", "want"), CASES)
def test_request_info(method: str, path: str, query: str, want: tuple) -> None:
    info = request_info(method, path, query)
    got = (info.verb, info.is_resource_request, info.api_group, info.api_version,
           info.namespace, info.resource, info.subresource, info.name)
    assert got == want
    assert info.path == path


def test_qualified_resource_names_the_subresource() -> None:
    assert RequestInfo("update", resource="pods", subresource="status").qualified_resource == \
        "pods/status"
    assert RequestInfo("get", resource="pods").qualified_resource == "pods"
