"""ConfigMaps and Secrets on a real mp-apiserver over HTTPS, the way Kubernetes serves them.

Writes go through the whole server (decoding, defaulting, validation, storage): bad
input is a 422 ``Status`` naming the field at fault and leaves nothing changed.
Reads are authorized as in a cluster: ``view`` reads ConfigMaps but no Secret,
``edit`` reads both, and a node agent (its client certificate) reads, by name, only
those its bound pods reference (the Node authorizer). One server serves the module;
each test works in a namespace of its own.
"""

from __future__ import annotations

import base64
from collections.abc import Iterator

import httpx
import pytest

from tests.conftest import ApiServer, wait_until
from tests.integration.callers import Callers, token_file

TOKENS = {"vic": "vic-token-3b9d1f7a", "eda": "eda-token-6c2e8a4f"}
CM = "/api/v1/namespaces/{ns}/configmaps"
SECRET = "/api/v1/namespaces/{ns}/secrets"
MERGE = {"content-type": "application/merge-patch+json"}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ApiServer]:
    work = tmp_path_factory.mktemp("configs")
    api = ApiServer(db_path=work / "state.db", log_path=work / "apiserver.log",
                    extra_args=["--token-auth-file", str(token_file(work / "tokens.csv",
                                                                    TOKENS))])
    try:
        yield api.start()
    finally:
        api.stop()


@pytest.fixture
def callers(server: ApiServer) -> Iterator[Callers]:
    callers = Callers(server)
    try:
        yield callers
    finally:
        callers.close()


@pytest.fixture
def admin(callers: Callers) -> httpx.Client:
    return callers.admin()


def namespace(admin: httpx.Client, name: str) -> str:
    made = admin.post("/api/v1/namespaces", json={"metadata": {"name": name}})
    assert made.status_code == 201, made.text
    return name


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def invalid(resp: httpx.Response) -> list[str]:
    """The fields a 422 names (and that it is one)."""
    assert resp.status_code == 422, resp.text
    body = resp.json()
    assert (body["kind"], body["reason"]) == ("Status", "Invalid")
    return [c["field"] for c in body["details"]["causes"]]


def test_configmap_rules_and_immutability(admin: httpx.Client) -> None:
    ns = namespace(admin, "cm-rules")
    path = CM.format(ns=ns)
    made = admin.post(path, json={"metadata": {"name": "app"}, "data": {"mode": "fast"},
                                  "binaryData": {"blob": "AAH/"}})
    assert made.status_code == 201, made.text
    assert invalid(admin.post(path, json={"metadata": {"name": "bad"},
                                          "data": {"a b": "1", "..x": "2"}})) == [
        "data[a b]", "data[..x]"]
    assert invalid(admin.post(path, json={"metadata": {"name": "bad"}, "data": {"k": "1"},
                                          "binaryData": {"k": "AA=="}})) == ["data[k]"]
    assert invalid(admin.post(path, json={"metadata": {"name": "bad"},
                                          "binaryData": {"k": "not base64"}})) == [
        "binaryData[k]"]
    big = admin.post(path, json={"metadata": {"name": "bad"},
                                 "data": {"k": "x" * ((1 << 20) + 1)}})
    assert invalid(big) == [""] and "must have at most 1048576 bytes" in big.json()["message"]
    assert admin.get(f"{path}/bad").status_code == 404

    frozen = admin.patch(f"{path}/app", json={"immutable": True}, headers=MERGE)
    assert frozen.status_code == 200, frozen.text
    changed = admin.patch(f"{path}/app", json={"data": {"mode": "slow"}}, headers=MERGE)
    assert invalid(changed) == ["data"]
    assert changed.json()["message"] == ('ConfigMap "app" is invalid: data: Forbidden: field '
                                         'is immutable when `immutable` is set')
    assert invalid(admin.patch(f"{path}/app", json={"immutable": False},
                               headers=MERGE)) == ["immutable"]
    labelled = admin.patch(f"{path}/app", json={"metadata": {"labels": {"a": "b"}}},
                           headers=MERGE)
    assert labelled.status_code == 200, labelled.text
    stored = admin.get(f"{path}/app").json()
    assert (stored["data"], stored["immutable"]) == ({"mode": "fast"}, True)
    assert admin.delete(f"{path}/app").status_code == 200  # an immutable one can go


def test_secret_string_data_type_and_base64(admin: httpx.Client) -> None:
    ns = namespace(admin, "secret-rules")
    path = SECRET.format(ns=ns)
    made = admin.post(path, json={"metadata": {"name": "db"},
                                  "data": {"user": b64("old"), "host": b64("db.local")},
                                  "stringData": {"user": "admin", "password": "s3cr3t"}})
    assert made.status_code == 201, made.text
    for answer in (made.json(), admin.get(f"{path}/db").json()):
        assert answer["type"] == "Opaque" and "stringData" not in answer
        assert answer["data"] == {"user": b64("admin"), "host": b64("db.local"),
                                  "password": b64("s3cr3t")}
    updated = admin.patch(f"{path}/db", json={"stringData": {"password": "n3w"}}, headers=MERGE)
    assert updated.status_code == 200, updated.text
    assert updated.json()["data"]["password"] == b64("n3w") and "stringData" not in \
        updated.json()

    bad = admin.post(path, json={"metadata": {"name": "bad"},
                                 "data": {"password": "hunter2!"}})
    assert invalid(bad) == ["data[password]"]
    assert "hunter2" not in bad.text and "illegal base64 data at input byte 7" in bad.text
    assert invalid(admin.post(path, json={"metadata": {"name": "bad"},
                                          "type": "kubernetes.io/tls",
                                          "stringData": {"tls.crt": "c"}})) == ["data[tls.key]"]
    assert invalid(admin.post(path, json={"metadata": {"name": "bad"}, "data": {
        "k": base64.b64encode(b"x" * ((1 << 20) + 1)).decode()}})) == ["data"]
    assert admin.get(f"{path}/bad").status_code == 404

    changed_type = admin.patch(f"{path}/db", json={"type": "kubernetes.io/basic-auth"},
                               headers=MERGE)
    assert invalid(changed_type) == ["type"]
    assert admin.patch(f"{path}/db", json={"immutable": True}, headers=MERGE).status_code == 200
    assert invalid(admin.patch(f"{path}/db", json={"stringData": {"password": "x"}},
                               headers=MERGE)) == ["data"]
    assert admin.get(f"{path}/db").json()["data"]["password"] == b64("n3w")


def test_view_reads_configmaps_but_no_secret_edit_reads_both(admin: httpx.Client,
                                                             callers: Callers) -> None:
    ns = namespace(admin, "secret-readers")
    for user, role in (("vic", "view"), ("eda", "edit")):
        bound = admin.post(f"/apis/rbac.authorization.k8s.io/v1/namespaces/{ns}/rolebindings",
                           json={"metadata": {"name": f"{user}-{role}"},
                                 "roleRef": {"apiGroup": "rbac.authorization.k8s.io",
                                             "kind": "ClusterRole", "name": role},
                                 "subjects": [{"apiGroup": "rbac.authorization.k8s.io",
                                               "kind": "User", "name": user}]})
        assert bound.status_code == 201, bound.text
    assert admin.post(CM.format(ns=ns), json={"metadata": {"name": "settings"},
                                              "data": {"a": "1"}}).status_code == 201
    assert admin.post(SECRET.format(ns=ns), json={"metadata": {"name": "db"},
                                                  "stringData": {"pw": "s3cr3t"}}
                      ).status_code == 201
    viewer, editor = callers.token(TOKENS["vic"]), callers.token(TOKENS["eda"])
    wait_until(lambda: viewer.get(f"{CM.format(ns=ns)}/settings").status_code == 200,
               what="vic's view binding to take effect")

    for url in (f"{SECRET.format(ns=ns)}/db", SECRET.format(ns=ns),
                f"{SECRET.format(ns=ns)}?watch=true&timeoutSeconds=1"):
        refused = viewer.get(url)
        assert refused.status_code == 403, (url, refused.text)
        assert "s3cr3t" not in refused.text and b64("s3cr3t") not in refused.text
    assert viewer.get(f"{SECRET.format(ns=ns)}/db").json()["message"] == (
        'secrets "db" is forbidden: User "vic" cannot get resource "secrets" in API group "" '
        f'in the namespace "{ns}"')
    wait_until(lambda: editor.get(f"{SECRET.format(ns=ns)}/db").status_code == 200,
               what="eda's edit binding to take effect")
    assert editor.get(f"{SECRET.format(ns=ns)}/db").json()["data"] == {"pw": b64("s3cr3t")}


def test_a_node_reads_only_what_its_pods_reference(admin: httpx.Client,
                                                   callers: Callers) -> None:
    ns = namespace(admin, "node-reads")
    for name in ("node-1", "node-2"):
        made = admin.post("/api/v1/nodes", json={"metadata": {"name": name}})
        assert made.status_code in (201, 409), made.text
    for name in ("db", "other", "pull"):
        assert admin.post(SECRET.format(ns=ns), json={"metadata": {"name": name},
                                                      "stringData": {"k": name}}
                          ).status_code == 201
    assert admin.post(CM.format(ns=ns), json={"metadata": {"name": "files"},
                                              "data": {"a": "1"}}).status_code == 201
    mine = {"metadata": {"name": "mine"}, "spec": {
        "nodeName": "node-1", "imagePullSecrets": [{"name": "pull"}],
        "containers": [{"name": "c", "image": "busybox", "env": [
            {"name": "PW", "valueFrom": {"secretKeyRef": {"name": "db", "key": "k"}}}]}],
        "volumes": [{"name": "v", "configMap": {"name": "files"}}]}}
    theirs = {"metadata": {"name": "theirs"}, "spec": {
        "nodeName": "node-2", "containers": [{"name": "c", "image": "busybox"}],
        "volumes": [{"name": "v", "secret": {"secretName": "other"}}]}}
    for pod in (mine, theirs):
        made = admin.post(f"/api/v1/namespaces/{ns}/pods", json=pod)
        assert made.status_code == 201, made.text
    node1 = callers.node("node-1")
    secrets, configmaps = SECRET.format(ns=ns), CM.format(ns=ns)
    wait_until(lambda: node1.get(f"{secrets}/db").status_code == 200,
               what="the Node authorizer to see node-1's pod")

    assert node1.get(f"{secrets}/db").json()["data"] == {"k": b64("db")}
    assert node1.get(f"{secrets}/pull").status_code == 200
    assert node1.get(f"{configmaps}/files").status_code == 200
    by_name = node1.get(secrets, params={"fieldSelector": "metadata.name=db"})
    assert by_name.status_code == 200
    assert [s["metadata"]["name"] for s in by_name.json()["items"]] == ["db"]
    watched = node1.get(secrets, params={"fieldSelector": "metadata.name=db", "watch": "true",
                                         "timeoutSeconds": "1"})
    assert watched.status_code == 200 and '"name":"db"' in watched.text.replace(" ", "")

    refused = node1.get(f"{secrets}/other")  # node-2's pod's Secret
    assert refused.status_code == 403
    assert refused.json()["message"] == (
        'secrets "other" is forbidden: User "system:node:node-1" cannot get resource '
        f'"secrets" in API group "" in the namespace "{ns}": no relationship found between '
        "node 'node-1' and this object")
    assert node1.get(secrets).status_code == 403  # no list of them all
    assert node1.get(secrets, params={"fieldSelector": "metadata.name=other"}
                     ).status_code == 403
    assert node1.patch(f"{secrets}/db", json={"stringData": {"k": "x"}},
                       headers=MERGE).status_code == 403
    assert admin.get(f"{secrets}/db").json()["data"] == {"k": b64("db")}

    # the pod goes: so does node-1's way to its Secret
    assert admin.delete(f"/api/v1/namespaces/{ns}/pods/mine",
                        params={"gracePeriodSeconds": "0"}).status_code == 200
    wait_until(lambda: node1.get(f"{secrets}/db").status_code == 403,
               what="the Node authorizer to forget the deleted pod")
