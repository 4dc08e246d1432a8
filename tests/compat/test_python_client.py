"""The official ``kubernetes`` Python client against mp-apiserver, unchanged."""

from __future__ import annotations

import json
import threading

import pytest

kubernetes = pytest.importorskip("kubernetes", reason="the test extras bring the kubernetes client")
from kubernetes import client, watch  # noqa: E402
from kubernetes import config as kube_config  # noqa: E402


@pytest.fixture
def api(apiserver):
    """The official client as a user runs it: the server's admin.kubeconfig."""
    config = client.Configuration()
    kube_config.load_kube_config(config_file=apiserver.kubeconfig, client_configuration=config)
    assert config.host == apiserver.url
    with client.ApiClient(config) as api_client:
        yield api_client


def test_services_crud_patch_and_watch(api):
    core = client.CoreV1Api(api)
    body = client.V1Service(
        metadata=client.V1ObjectMeta(generate_name="web-", labels={"app": "web"}),
        spec=client.V1ServiceSpec(selector={"app": "web"},
                                  ports=[client.V1ServicePort(name="http", port=80,
                                                              target_port=8080)]))
    created = core.create_namespaced_service("default", body)
    name = created.metadata.name
    assert name.startswith("web-") and created.spec.cluster_ip.startswith("10.96.")
    assert core.read_namespaced_service(name, "default").spec.ports[0].target_port == 8080
    listed = core.list_namespaced_service("default", label_selector="app=web")
    assert [s.metadata.name for s in listed.items] == [name]

    patched = core.patch_namespaced_service(name, "default",
                                            {"metadata": {"labels": {"tier": "fe"}}})
    assert patched.metadata.labels == {"app": "web", "tier": "fe"}
    ops = [{"op": "replace", "path": "/spec/selector", "value": {"app": "v2"}}]
    assert core.patch_namespaced_service(name, "default", ops).spec.selector == {"app": "v2"}

    rv = listed.metadata.resource_version
    events: list[tuple[str, str]] = []
    stream = watch.Watch().stream(core.list_namespaced_service, "default", resource_version=rv,
                                  allow_watch_bookmarks=True, timeout_seconds=5)
    for event in stream:
        events.append((event["type"], event["object"].metadata.name))
        if len(events) == 2:
            break
    assert events == [("MODIFIED", name), ("MODIFIED", name)]

    core.delete_namespaced_service(name, "default")
    with pytest.raises(client.ApiException) as err:
        core.read_namespaced_service(name, "default")
    assert err.value.status == 404


def test_pods_status_and_graceful_delete(api):
    core = client.CoreV1Api(api)
    pod = client.V1Pod(metadata=client.V1ObjectMeta(name="p1"),
                       spec=client.V1PodSpec(node_name="node-1", containers=[
                           client.V1Container(name="main", image="busybox")]))
    created = core.create_namespaced_pod("default", pod)
    stream = watch.Watch().stream(core.list_namespaced_pod, "default",
                                  resource_version=created.metadata.resource_version,
                                  timeout_seconds=5)
    status = {"status": {"phase": "Running", "podIP": "10.244.1.9",
                         "conditions": [{"type": "Ready", "status": "True"}]}}
    updated = core.patch_namespaced_pod_status("p1", "default", status)
    assert updated.status.phase == "Running" and updated.status.pod_ip == "10.244.1.9"
    event = next(stream)
    assert event["type"] == "MODIFIED" and event["object"].status.phase == "Running"
    stream.close()
    marked = core.delete_namespaced_pod("p1", "default")
    assert marked.metadata.deletion_timestamp is not None
    core.delete_namespaced_pod("p1", "default", grace_period_seconds=0)
    assert core.list_namespaced_pod("default").items == []


def test_endpointslices_and_watch_from_the_start(api):
    discovery = client.DiscoveryV1Api(api)
    body = client.V1EndpointSlice(
        metadata=client.V1ObjectMeta(name="web-1",
                                     labels={"kubernetes.io/service-name": "web"}),
        address_type="IPv4",
        endpoints=[client.V1Endpoint(addresses=["10.244.1.5"],
                                     conditions=client.V1EndpointConditions(ready=True))],
        ports=[client.DiscoveryV1EndpointPort(name="http", port=8080, protocol="TCP")])
    discovery.create_namespaced_endpoint_slice("default", body)
    got = discovery.read_namespaced_endpoint_slice("web-1", "default")
    assert got.endpoints[0].addresses == ["10.244.1.5"] and got.ports[0].port == 8080

    seen: list[str] = []

    def collect() -> None:
        for event in watch.Watch().stream(discovery.list_namespaced_endpoint_slice, "default",
                                          timeout_seconds=5):
            seen.append(f'{event["type"]} {event["object"].metadata.name}')
            if len(seen) == 2:
                return

    t = threading.Thread(target=collect)
    t.start()
    t.join(timeout=1)
    discovery.create_namespaced_endpoint_slice(
        "default", client.V1EndpointSlice(metadata=client.V1ObjectMeta(name="web-2"),
                                          address_type="IPv4", endpoints=[]))
    t.join(timeout=10)
    assert seen == ["ADDED web-1", "ADDED web-2"]


def test_a_service_account_token_lists_only_with_a_binding(api, apiserver):
    """What an in-cluster client does with its mounted token (Configuration with an
    api_key, no certificate): refused without a RoleBinding, served with one."""
    from tests.conftest import wait_until  # noqa: PLC0415

    core, rbac = client.CoreV1Api(api), client.RbacAuthorizationV1Api(api)
    meta = client.V1ObjectMeta
    core.create_namespace(client.V1Namespace(metadata=meta(name="apps")))
    core.create_namespaced_service_account("apps", client.V1ServiceAccount(
        metadata=meta(name="reader")))
    core.create_namespaced_service("apps", client.V1Service(
        metadata=meta(name="db"), spec=client.V1ServiceSpec(ports=[client.V1ServicePort(
            port=5432)])))
    answer = core.create_namespaced_service_account_token(
        "reader", "apps", client.AuthenticationV1TokenRequest(spec=client.V1TokenRequestSpec(
            audiences=["https://kubernetes.default.svc.cluster.local"],
            expiration_seconds=600)))
    assert answer.status.expiration_timestamp is not None

    config = client.Configuration()
    config.host = apiserver.url
    config.ssl_ca_cert = apiserver.ca_file
    config.api_key = {"authorization": answer.status.token}
    config.api_key_prefix = {"authorization": "Bearer"}
    with client.ApiClient(config) as as_reader:
        reader = client.CoreV1Api(as_reader)
        with pytest.raises(client.ApiException) as err:
            reader.list_namespaced_service("apps")
        assert err.value.status == 403
        assert json.loads(err.value.body)["message"] == (
            'services is forbidden: User "system:serviceaccount:apps:reader" cannot list '
            'resource "services" in API group "" in the namespace "apps"')

        rbac.create_namespaced_role_binding("apps", client.V1RoleBinding(
            metadata=meta(name="reader-views"),
            role_ref=client.V1RoleRef(api_group="rbac.authorization.k8s.io",
                                      kind="ClusterRole", name="view"),
            subjects=[client.RbacV1Subject(kind="ServiceAccount", name="reader",
                                           namespace="apps")]))

        def lists() -> list[str] | None:  # the binding reaches the authorizer from the log
            try:
                return [s.metadata.name for s in reader.list_namespaced_service("apps").items]
            except client.ApiException as exc:
                assert exc.status == 403
                return None

        assert wait_until(lists, what="the RoleBinding to take effect") == ["db"]
        # view reads; it does not write, nor read another namespace
        with pytest.raises(client.ApiException) as err:
            reader.delete_namespaced_service("db", "apps")
        assert err.value.status == 403
        with pytest.raises(client.ApiException) as err:
            reader.list_namespaced_service("default")
        assert err.value.status == 403
