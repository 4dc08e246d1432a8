"""Admission and request hygiene on a real mp-apiserver: Pod Security, ServiceAccount
defaulting, NodeRestriction of a node's token requests, and which request bodies are
read at all. Requests are cluster-admin's unless a test says who it is."""

from __future__ import annotations

import json
import ssl
from pathlib import Path

import httpx
import pytest

from componentbase import pki
from tests.conftest import ApiServer, session_pki, wait_until
from tests.integration.rest import NS, POD, pod, status_of

ENFORCE = "pod-security.kubernetes.io/enforce"
WARN = "pod-security.kubernetes.io/warn"

RESTRICTED_MESSAGE = (
    'pods "priv" is forbidden: violates PodSecurity "restricted:latest": '
    'privileged (container "main" must not set securityContext.privileged=true), '
    'allowPrivilegeEscalation != false (container "main" must set '
    'securityContext.allowPrivilegeEscalation=false), unrestricted capabilities (container '
    '"main" must set securityContext.capabilities.drop=["ALL"]), runAsNonRoot != true (pod or '
    'container "main" must set securityContext.runAsNonRoot=true), seccompProfile (pod or '
    'container "main" must set securityContext.seccompProfile.type to "RuntimeDefault" or '
    '"Localhost")')


@pytest.fixture
def api(shared_api: ApiServer):
    with shared_api.http(timeout=10) as client:
        yield client


def make_namespace(api: httpx.Client, name: str, labels: dict | None = None) -> None:
    resp = api.post(NS, json={"metadata": {"name": name, "labels": labels or {}}})
    assert resp.status_code == 201, resp.text


def privileged_pod(name: str, ns: str) -> dict:
    body = pod(name, ns=ns)
    body["spec"]["containers"][0]["securityContext"] = {"privileged": True}
    return body


def hardened_pod(name: str, ns: str) -> dict:
    body = pod(name, ns=ns)
    body["spec"]["securityContext"] = {"runAsNonRoot": True, "runAsUser": 1000,
                                       "seccompProfile": {"type": "RuntimeDefault"}}
    body["spec"]["containers"][0]["securityContext"] = {
        "allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}}
    return body


def test_restricted_namespace_refuses_a_privileged_pod_with_kubernetes_message(api):
    make_namespace(api, "ps-restricted", {ENFORCE: "restricted"})
    resp = api.post(POD.format(ns="ps-restricted"), json=privileged_pod("priv", "ps-restricted"))
    assert resp.status_code == 403, resp.text
    st = status_of(resp)
    assert st["reason"] == "Forbidden"
    assert st["message"] == RESTRICTED_MESSAGE
    assert st["details"] == {"name": "priv", "kind": "pods"}
    assert api.get(POD.format(ns="ps-restricted") + "/priv").status_code == 404
    hardened = api.post(POD.format(ns="ps-restricted"),
                        json=hardened_pod("ok", "ps-restricted"))
    assert hardened.status_code == 201, hardened.text


def test_warn_label_answers_with_warning_headers_and_still_creates(api):
    make_namespace(api, "ps-warn", {WARN: "baseline"})
    body = pod("host", ns="ps-warn")
    body["spec"]["hostNetwork"] = True
    resp = api.post(POD.format(ns="ps-warn"), json=body)
    assert resp.status_code == 201, resp.text
    assert resp.headers.get_list("warning") == [
        '299 - "would violate PodSecurity \\"baseline:latest\\": host namespaces (hostNetwork)"']
    plain = api.post(POD.format(ns="ps-warn"), json=pod("plain", ns="ps-warn"))
    assert plain.status_code == 201 and "warning" not in plain.headers


def test_tightening_a_namespace_warns_about_the_pods_it_holds(api):
    make_namespace(api, "ps-tighten")
    assert api.post(POD.format(ns="ps-tighten"),
                    json=privileged_pod("old", "ps-tighten")).status_code == 201
    resp = api.patch(f"{NS}/ps-tighten", json={"metadata": {"labels": {ENFORCE: "baseline"}}},
                     headers={"content-type": "application/merge-patch+json"})
    assert resp.status_code == 200, resp.text
    assert resp.headers.get_list("warning") == [
        '299 - "existing pods in namespace \\"ps-tighten\\" violate the new PodSecurity '
        'enforce level \\"baseline:latest\\""',
        '299 - "old: privileged"']


def test_a_bad_level_label_is_invalid(api):
    resp = api.post(NS, json={"metadata": {"name": "ps-bad", "labels": {ENFORCE: "strict"}}})
    assert resp.status_code == 422, resp.text
    st = status_of(resp)
    assert st["message"] == ('Namespace "ps-bad" is invalid: metadata.labels[pod-security.'
                             'kubernetes.io/enforce]: Invalid value: "strict": must be one of '
                             'privileged, baseline, restricted')
    assert api.get(f"{NS}/ps-bad").status_code == 404


def test_a_new_pod_runs_as_the_default_service_account(api):
    make_namespace(api, "sa-default")
    created = api.post(POD.format(ns="sa-default"), json=pod("p", ns="sa-default")).json()
    assert created["spec"]["serviceAccountName"] == "default"
    named = pod("q", ns="sa-default")
    named["spec"]["serviceAccountName"] = "builder"
    assert api.post(POD.format(ns="sa-default"),
                    json=named).json()["spec"]["serviceAccountName"] == "builder"


def test_default_flag_enforces_baseline_in_unlabelled_namespaces(make_apiserver):
    server = make_apiserver("--pod-security-default", "baseline")
    with server.http(timeout=10) as api:
        make_namespace(api, "plain")
        body = pod("host", ns="plain")
        body["spec"]["hostPID"] = True
        resp = api.post(POD.format(ns="plain"), json=body)
        assert resp.status_code == 403, resp.text
        assert status_of(resp)["message"] == (
            'pods "host" is forbidden: violates PodSecurity "baseline:latest": '
            "host namespaces (hostPID)")
        assert api.post(POD.format(ns="plain"), json=pod("ok", ns="plain")).status_code == 201
        make_namespace(api, "opted-out", {ENFORCE: "privileged"})
        body["metadata"]["namespace"] = "opted-out"
        assert api.post(POD.format(ns="opted-out"), json=body).status_code == 201


# ---------------------------------------------------------------------------- request bodies


@pytest.mark.parametrize("content_type", [
    "text/plain", "text/plain;charset=UTF-8", "application/x-www-form-urlencoded",
    "multipart/form-data; boundary=x", "text/yaml", "*/*"])
def test_bodies_a_browser_can_send_cross_site_are_refused(api, content_type):
    ns = "hyg-" + "".join(ch if ch.isalnum() else "-" for ch in content_type.lower())[:40]
    ns = ns.strip("-")
    make_namespace(api, ns)

    resp = api.post(POD.format(ns=ns), content=json.dumps(pod("evil", ns=ns)),
                    headers={"content-type": content_type, "origin": "http://evil.example"})
    assert resp.status_code == 415, resp.text
    assert status_of(resp)["reason"] == "UnsupportedMediaType"
    assert api.get(POD.format(ns=ns) + "/evil").status_code == 404


def test_a_body_without_type_is_json_for_clients_and_refused_from_browsers(api):

    make_namespace(api, "hyg-untyped")
    path = POD.format(ns="hyg-untyped")
    # httpx sends no Content-Type with bytes content, as the official client does
    assert api.post(path, content=json.dumps(pod("tool", ns="hyg-untyped"))).status_code == 201
    resp = api.post(path, content=json.dumps(pod("page", ns="hyg-untyped")),
                    headers={"origin": "http://evil.example"})
    assert resp.status_code == 415, resp.text
    assert api.get(f"{path}/page").status_code == 404


def test_yaml_bodies_are_read(api):
    make_namespace(api, "hyg-yaml")
    body = ("apiVersion: v1\nkind: Pod\nmetadata:\n  name: y\nspec:\n  containers:\n"
            "  - name: main\n    image: busybox\n")
    resp = api.post(POD.format(ns="hyg-yaml"), content=body,
                    headers={"content-type": "application/yaml"})
    assert resp.status_code == 201, resp.text


def test_delete_options_in_text_plain_are_refused(api):
    make_namespace(api, "hyg-delete")
    assert api.post(POD.format(ns="hyg-delete"), json=pod("d", ns="hyg-delete")).status_code == 201
    resp = api.request("DELETE", POD.format(ns="hyg-delete") + "/d",
                       content='{"gracePeriodSeconds": 0}',
                       headers={"content-type": "text/plain"})
    assert resp.status_code == 415, resp.text
    assert api.get(POD.format(ns="hyg-delete") + "/d").status_code == 200


# ---------------------------------------------------------------------------- NodeRestriction


def node_tls(node: str, tmp: Path) -> ssl.SSLContext:
    """A node agent's credential: a client certificate of the test CA for
    ``system:node:<node>`` in ``system:nodes``, as ``mpctl cluster up`` issues it."""
    d = session_pki().directory
    cert = pki.issue(pki.load(d / "ca.crt", d / "ca.key"),
                     pki.client_identity(f"system:node:{node}", ["system:nodes"]))
    pki.save(cert, tmp / f"{node}.crt", tmp / f"{node}.key")
    ctx = ssl.create_default_context(cafile=str(d / "ca.crt"))
    ctx.load_cert_chain(tmp / f"{node}.crt", tmp / f"{node}.key")
    return ctx


def test_a_node_gets_tokens_only_for_pods_bound_to_it(api, shared_api: ApiServer, tmp_path):
    make_namespace(api, "nr-token")
    sa_path = "/api/v1/namespaces/nr-token/serviceaccounts"
    assert api.post(sa_path, json={"metadata": {"name": "runner"}}).status_code == 201
    uids = {}
    for name, node in (("mine", "node-1"), ("theirs", "node-2")):
        body = pod(name, ns="nr-token", node=node)
        body["spec"]["serviceAccountName"] = "runner"
        made = api.post(POD.format(ns="nr-token"), json=body)
        assert made.status_code == 201, made.text
        uids[name] = made.json()["metadata"]["uid"]

    def token_for(name: str) -> httpx.Response:
        ref = {"kind": "Pod", "apiVersion": "v1", "name": name, "uid": uids[name]}
        return httpx.post(f"{shared_api.url}{sa_path}/runner/token", timeout=10,
                          verify=node_tls("node-1", tmp_path),
                          json={"apiVersion": "authentication.k8s.io/v1",
                                "kind": "TokenRequest", "spec": {"boundObjectRef": ref}})

    # node-1 runs a pod of this ServiceAccount, so the Node authorizer lets it ask (it
    # learns of the pod from its watch: poll); the token is for node-1's own pod
    mine = wait_until(lambda: (r := token_for("mine")).status_code == 201 and r,
                      what="node-1 to get a token for its own pod")
    assert mine.json()["spec"]["boundObjectRef"]["name"] == "mine"
    theirs = token_for("theirs")
    assert theirs.status_code == 403, theirs.text
    assert status_of(theirs)["message"] == (
        'serviceaccounts "runner" is forbidden: node requested token bound to a pod '
        'scheduled on a different node')
