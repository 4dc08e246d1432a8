"""Authorization on a real mp-apiserver over HTTPS: RBAC, impersonation, the access
reviews, escalation checks, the Node authorizer's token rule, the bootstrap policy.

Callers authenticate as they would in a cluster (``tests.integration.callers``):
users by static bearer token (``--token-auth-file``), cluster-admin and node agents
by client certificates from the test run's CA, ServiceAccounts by tokens from the
server's own TokenRequest API. One server serves the module; each test works in a
namespace of its own and with users the others do not bind.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import httpx
import pytest

from apiserver.app import Config
from tests.conftest import ApiServer, wait_until
from tests.integration.callers import Callers, token_file

RBAC = "/apis/rbac.authorization.k8s.io/v1"
AUTHZ = "/apis/authorization.k8s.io/v1"
PODS = "/api/v1/namespaces/{ns}/pods"
TOKENS = {"vera": "vera-token-7f3a9c1e", "bob": "bob-token-2d8e4b6a",
          "ann": "ann-token-9c1f5e3d", "tina": "tina-token-4a6b8c0d",
          "lena": "lena-token-6e2b7d9f"}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ApiServer]:
    work = tmp_path_factory.mktemp("authz")
    tokens = token_file(work / "tokens.csv", TOKENS)
    api = ApiServer(db_path=work / "state.db", log_path=work / "apiserver.log",
                    extra_args=["--token-auth-file", str(tokens)])
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


def as_user(callers: Callers, name: str, **headers: str) -> httpx.Client:
    return callers.token(TOKENS[name], **headers)


def namespace(admin: httpx.Client, name: str) -> str:
    made = admin.post("/api/v1/namespaces", json={"metadata": {"name": name}})
    assert made.status_code == 201, made.text
    return name


def pod(name: str, node: str | None = None, sa_name: str | None = None) -> dict:
    spec: dict = {"containers": [{"name": "c", "image": "busybox"}]}
    if node:
        spec["nodeName"] = node
    if sa_name:
        spec["serviceAccountName"] = sa_name
    return {"metadata": {"name": name}, "spec": spec}


def role_binding(ns: str, name: str, role: str, *subjects: dict,
                 kind: str = "ClusterRole") -> dict:
    return {"metadata": {"name": name, "namespace": ns},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": kind, "name": role},
            "subjects": list(subjects)}


def user(name: str) -> dict:
    return {"kind": "User", "apiGroup": "rbac.authorization.k8s.io", "name": name}


def bind(admin: httpx.Client, ns: str, name: str, role: str, *subjects: dict,
         kind: str = "ClusterRole") -> None:
    resp = admin.post(f"{RBAC}/namespaces/{ns}/rolebindings",
                      json=role_binding(ns, name, role, *subjects, kind=kind))
    assert resp.status_code == 201, resp.text


def until(call: Callable[[], httpx.Response], code: int, what: str) -> httpx.Response:
    """Poll ``call`` until it answers ``code``: the authorizer learns of a write from
    the committed log, a moment after the write's own answer (as Kubernetes' RBAC
    informer does)."""
    return wait_until(lambda: (r := call()).status_code == code and r, what=what)


def create(client: httpx.Client, path: str, body: dict) -> dict:
    resp = client.post(path, json=body)
    assert resp.status_code == 201, resp.text
    return resp.json()


RECONCILE_INTERVAL = Config().reconcile_interval


def test_bootstrap_policy_exists_and_is_restored_when_deleted(admin: httpx.Client) -> None:
    names = {r["metadata"]["name"] for r in admin.get(f"{RBAC}/clusterroles").json()["items"]}
    assert {"cluster-admin", "admin", "edit", "view", "system:discovery", "system:basic-user",
            "system:public-info-viewer", "system:node", "system:kube-controller-manager",
            "system:miniplane-dnsd"} <= names
    view = admin.get(f"{RBAC}/clusterroles/view").json()
    assert view["aggregationRule"] and view["rules"], "view is aggregated already at start"
    assert admin.delete(f"{RBAC}/clusterroles/view").status_code == 200
    assert admin.delete(f"{RBAC}/clusterrolebindings/system:node").status_code == 200
    # The server's reconcile loop restores them every reconcile interval (10 s): wait
    # that long and a margin for a loaded machine, not the default 10 s deadline.
    wait_until(lambda: admin.get(f"{RBAC}/clusterroles/view").status_code == 200
               and admin.get(f"{RBAC}/clusterrolebindings/system:node").status_code == 200,
               timeout=RECONCILE_INTERVAL + 15, what="bootstrap policy restored")
    assert admin.get(f"{RBAC}/clusterroles/view").json()["rules"] == view["rules"]


def test_view_can_get_but_not_delete(callers: Callers, admin: httpx.Client) -> None:
    ns = namespace(admin, "view-t")
    create(admin, PODS.format(ns=ns), pod("x"))
    vera = as_user(callers, "vera")
    resp = vera.get(PODS.format(ns=ns) + "/x")
    assert resp.status_code == 403
    assert resp.json()["message"] == ('pods "x" is forbidden: User "vera" cannot get resource '
                                      '"pods" in API group "" in the namespace "view-t"')
    bind(admin, ns, "vera-view", "view", user("vera"))
    until(lambda: vera.get(PODS.format(ns=ns) + "/x"), 200, "vera's binding to take effect")
    assert vera.get(PODS.format(ns=ns)).status_code == 200
    resp = vera.delete(PODS.format(ns=ns) + "/x")
    assert resp.status_code == 403
    body = resp.json()
    assert body["kind"] == "Status" and body["reason"] == "Forbidden" and body["code"] == 403
    assert body["message"] == ('pods "x" is forbidden: User "vera" cannot delete resource '
                               '"pods" in API group "" in the namespace "view-t"')
    assert body["details"] == {"name": "x", "kind": "pods"}
    assert admin.get(PODS.format(ns=ns) + "/x").status_code == 200  # still there
    # view may not write either
    resp = vera.post(PODS.format(ns=ns), json=pod("y"))
    assert resp.status_code == 403
    assert admin.get(PODS.format(ns=ns) + "/y").status_code == 404
    # the binding is in view-t: other namespaces stay closed
    resp = vera.get(PODS.format(ns="kube-system"))
    assert resp.status_code == 403
    assert resp.json()["message"] == ('pods is forbidden: User "vera" cannot list resource '
                                      '"pods" in API group "" in the namespace "kube-system"')


def test_anonymous_and_non_resource_paths(callers: Callers, admin: httpx.Client) -> None:
    anonymous = callers.anonymous()
    resp = anonymous.get("/api/v1/pods")
    assert resp.status_code == 401 and resp.json()["reason"] == "Unauthorized"
    assert anonymous.get("/healthz").status_code == 200
    tina = as_user(callers, "tina")
    resp = tina.get("/metrics")
    assert resp.status_code == 403
    assert resp.json()["message"] == 'forbidden: User "tina" cannot get path "/metrics"'
    assert tina.get("/api/v1").status_code == 200  # discovery: system:authenticated
    assert tina.get("/version").status_code == 200
    assert admin.get("/metrics").status_code == 200  # masters


def test_service_account_needs_a_binding_to_list_pods(callers: Callers,
                                                      admin: httpx.Client) -> None:
    ns = namespace(admin, "apps")
    bot = callers.service_account(ns, "bot")  # a real token from TokenRequest
    resp = bot.get(PODS.format(ns=ns))
    assert resp.status_code == 403
    assert resp.json()["message"] == (
        'pods is forbidden: User "system:serviceaccount:apps:bot" cannot list resource '
        '"pods" in API group "" in the namespace "apps"')
    bind(admin, ns, "bot-view", "view", {"kind": "ServiceAccount", "name": "bot",
                                         "namespace": ns})
    until(lambda: bot.get(PODS.format(ns=ns)), 200, "the binding to take effect")
    assert bot.get(f"/api/v1/namespaces/{ns}/services").status_code == 200
    # view grants nothing Secrets-like (the tokens of other accounts) ...
    resp = bot.post(f"/api/v1/namespaces/{ns}/serviceaccounts/default/token",
                    json={"spec": {}})
    assert resp.status_code == 403
    assert ('cannot create resource "serviceaccounts/token" in API group "" in the '
            'namespace "apps"') in resp.json()["message"]
    # ... and nothing outside its namespace
    assert bot.get(PODS.format(ns="default")).status_code == 403


def test_impersonation_needs_the_verb_and_then_acts_as_that_user(callers: Callers,
                                                                 admin: httpx.Client) -> None:
    ns = namespace(admin, "imp-t")
    bind(admin, ns, "vera-view", "view", user("vera"))
    create(admin, PODS.format(ns=ns), pod("x"))
    bob = as_user(callers, "bob")
    resp = bob.get(PODS.format(ns=ns), headers={"Impersonate-User": "vera"})
    assert resp.status_code == 403
    assert resp.json()["message"] == ('users "vera" is forbidden: User "bob" cannot '
                                      'impersonate resource "users" in API group "" at the '
                                      'cluster scope')
    assert resp.json()["details"] == {"name": "vera", "kind": "users"}
    role = {"metadata": {"name": "impersonate-vera"},
            "rules": [{"apiGroups": [""], "resources": ["users"], "verbs": ["impersonate"],
                       "resourceNames": ["vera"]}]}
    create(admin, f"{RBAC}/clusterroles", role)
    crb = {"metadata": {"name": "bob-impersonates"},
           "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole",
                       "name": "impersonate-vera"}, "subjects": [user("bob")]}
    create(admin, f"{RBAC}/clusterrolebindings", crb)
    as_vera = as_user(callers, "bob", **{"Impersonate-User": "vera"})
    until(lambda: as_vera.get(PODS.format(ns=ns)), 200, "bob's impersonation grant")
    resp = as_vera.delete(PODS.format(ns=ns) + "/x")
    assert resp.status_code == 403
    assert 'User "vera" cannot delete' in resp.json()["message"]
    assert admin.get(PODS.format(ns=ns) + "/x").status_code == 200
    # only vera: another name, or a group on top, is refused
    resp = bob.get(PODS.format(ns=ns), headers={"Impersonate-User": "root"})
    assert resp.status_code == 403
    resp = bob.get(PODS.format(ns=ns), headers={"Impersonate-User": "vera",
                                                 "Impersonate-Group": "system:masters"})
    assert resp.status_code == 403
    assert resp.json()["message"].startswith('groups "system:masters" is forbidden: User "bob"')
    # whoever impersonates is seen as the impersonated user by the reviews too
    resp = as_vera.post(f"{AUTHZ}/selfsubjectaccessreviews", json={
        "spec": {"resourceAttributes": {"verb": "list", "resource": "pods", "namespace": ns}}})
    assert resp.status_code == 201 and resp.json()["status"]["allowed"] is True
    resp = as_vera.post("/apis/authentication.k8s.io/v1/selfsubjectreviews", json={})
    assert resp.json()["status"]["userInfo"]["username"] == "vera"


def test_node_creates_tokens_only_for_service_accounts_of_its_pods(
        callers: Callers, admin: httpx.Client) -> None:
    ns = namespace(admin, "tok-t")
    for sa_name in ("web", "builder"):
        create(admin, f"/api/v1/namespaces/{ns}/serviceaccounts", {"metadata": {"name": sa_name}})
    on2 = create(admin, PODS.format(ns=ns), pod("on-2", "node-2", "web"))
    on1 = create(admin, PODS.format(ns=ns), pod("on-1", "node-1", "builder"))
    node1 = callers.node("node-1")
    token = f"/api/v1/namespaces/{ns}/serviceaccounts/{{}}/token"

    def bound(p: dict) -> dict:
        return {"spec": {"audiences": ["x"], "boundObjectRef": {
            "kind": "Pod", "apiVersion": "v1", "name": p["metadata"]["name"],
            "uid": p["metadata"]["uid"]}}}

    resp = node1.post(token.format("web"), json=bound(on2))
    assert resp.status_code == 403
    assert resp.json()["message"] == (
        'serviceaccounts "web" is forbidden: User "system:node:node-1" cannot create '
        'resource "serviceaccounts/token" in API group "" in the namespace "tok-t": '
        "no relationship found between node 'node-1' and this object")
    # builder is an account of node-1's pod: a token bound to that pod is given ...
    resp = until(lambda: node1.post(token.format("builder"), json=bound(on1)), 201,
                 "the node authorizer to learn of node-1's pod")
    assert resp.json()["status"]["token"]
    # ... one bound to nothing, or to a pod of node-2, is not
    resp = node1.post(token.format("builder"), json={"spec": {"audiences": ["x"]}})
    assert resp.status_code == 403
    assert "node requested token not bound to a pod" in resp.json()["message"]
    # what the system:node role gives: read pods, write its pods' status; not create pods
    assert node1.get(PODS.format(ns=ns)).status_code == 200
    resp = node1.post(PODS.format(ns=ns), json=pod("p"))
    assert resp.status_code == 403
    assert admin.get(PODS.format(ns=ns) + "/p").status_code == 404


def test_self_subject_access_review_answers_allowed_and_denied(callers: Callers,
                                                               admin: httpx.Client) -> None:
    ns = namespace(admin, "ssar-t")
    bind(admin, ns, "tina-view", "view", user("tina"))
    tina = as_user(callers, "tina")
    until(lambda: tina.get(PODS.format(ns=ns)), 200, "tina's binding to take effect")

    def can(verb: str, resource: str, where: str = ns) -> dict:
        resp = tina.post(f"{AUTHZ}/selfsubjectaccessreviews", json={
            "apiVersion": "authorization.k8s.io/v1", "kind": "SelfSubjectAccessReview",
            "spec": {"resourceAttributes": {"verb": verb, "resource": resource,
                                            "namespace": where}}})
        assert resp.status_code == 201, resp.text
        assert resp.json()["kind"] == "SelfSubjectAccessReview"
        return resp.json()["status"]

    assert can("list", "pods")["allowed"] is True
    assert "view" in can("list", "pods")["reason"]
    assert can("delete", "pods")["allowed"] is False
    assert can("list", "pods", where="kube-system")["allowed"] is False
    # a bad body is a Status naming the field
    resp = tina.post(f"{AUTHZ}/selfsubjectaccessreviews", json={"spec": {}})
    assert resp.status_code == 422
    assert resp.json()["details"]["causes"][0]["field"] == "spec.resourceAttributes"
    # create-only
    assert admin.get(f"{AUTHZ}/selfsubjectaccessreviews").status_code == 405
    # SubjectAccessReview asks about someone else, and needs its own permission
    sar = {"spec": {"user": "tina", "resourceAttributes": {"verb": "get", "resource": "pods",
                                                            "namespace": ns}}}
    assert tina.post(f"{AUTHZ}/subjectaccessreviews", json=sar).status_code == 403
    resp = admin.post(f"{AUTHZ}/subjectaccessreviews", json=sar)
    assert resp.status_code == 201 and resp.json()["status"]["allowed"] is True
    # and the rules review lists what tina holds in the namespace
    resp = tina.post(f"{AUTHZ}/selfsubjectrulesreviews", json={"spec": {"namespace": ns}})
    assert resp.status_code == 201
    rules = resp.json()["status"]["resourceRules"]
    assert any("pods" in r["resources"] and "list" in r["verbs"] for r in rules)
    assert not any("delete" in r["verbs"] and "pods" in r["resources"] for r in rules)


def test_protobuf_is_read_only_where_kubectl_needs_it(callers: Callers,
                                                      admin: httpx.Client) -> None:
    """kubectl's ``auth can-i`` body (captured bytes) is answered; protobuf elsewhere
    stays 415 and a broken one is a 400 naming the field."""
    from tests.unit.test_protobuf import (  # noqa: PLC0415
        KUBECTL_CAN_I,
        KUBECTL_ROLEBINDING,
        envelope,
        field,
    )

    proto = {"Content-Type": "application/vnd.kubernetes.protobuf"}
    tina = as_user(callers, "tina")
    resp = tina.post(f"{AUTHZ}/selfsubjectaccessreviews", content=KUBECTL_CAN_I, headers=proto)
    assert resp.status_code == 201, resp.text
    assert resp.json()["spec"]["resourceAttributes"] == {
        "namespace": "default", "verb": "list", "resource": "pods"}
    assert resp.json()["status"]["allowed"] is False
    # what `kubectl create service clusterip web` sends: a kind read only as JSON
    resp = admin.post("/api/v1/namespaces/default/services", headers=proto,
                      content=envelope("Service", field(1, field(1, "web")), "v1"))
    assert resp.status_code == 415 and resp.json()["reason"] == "UnsupportedMediaType"
    assert admin.get("/api/v1/namespaces/default/services/web").status_code == 404
    # a create kubectl sends as protobuf, cut short: 400 naming the kind, nothing stored
    bindings = "/apis/rbac.authorization.k8s.io/v1/namespaces/team/rolebindings"
    resp = admin.post(bindings, content=KUBECTL_ROLEBINDING[:-30], headers=proto)
    assert resp.status_code == 400 and "not a valid RoleBinding" in resp.json()["message"]
    assert admin.get(f"{bindings}/jane-views").status_code == 404
    resp = tina.post(f"{AUTHZ}/selfsubjectaccessreviews", content=KUBECTL_CAN_I[:-20],
                     headers=proto)
    assert resp.status_code == 400 and resp.json()["reason"] == "BadRequest"
    assert "SelfSubjectAccessReview" in resp.json()["message"]


def test_escalation_is_refused(callers: Callers, admin: httpx.Client) -> None:
    ns = namespace(admin, "team")
    bind(admin, ns, "ann-admin", "admin", user("ann"))
    ann = as_user(callers, "ann")
    until(lambda: ann.get(PODS.format(ns=ns)), 200, "ann's binding to take effect")
    # a Role within what admin holds: fine
    ok = {"metadata": {"name": "pod-reader", "namespace": ns},
          "rules": [{"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list"]}]}
    create(ann, f"{RBAC}/namespaces/{ns}/roles", ok)
    # a Role granting what ann does not hold (nodes, everything): refused
    bad = {"metadata": {"name": "all", "namespace": ns},
           "rules": [{"apiGroups": ["*"], "resources": ["*"], "verbs": ["*"]}]}
    resp = ann.post(f"{RBAC}/namespaces/{ns}/roles", json=bad)
    assert resp.status_code == 403
    body = resp.json()
    assert body["message"].startswith(
        'roles.rbac.authorization.k8s.io "all" is forbidden: user "ann" (groups=['
        '"system:authenticated"]) is attempting to grant RBAC permissions not currently held:')
    assert "{APIGroups:[\"*\"], Resources:[\"*\"], Verbs:[\"*\"]}" in body["message"]
    assert admin.get(f"{RBAC}/namespaces/{ns}/roles/all").status_code == 404
    # widening a role by patch is refused as well
    resp = ann.patch(f"{RBAC}/namespaces/{ns}/roles/pod-reader",
                     headers={"Content-Type": "application/merge-patch+json"},
                     json={"rules": [{"apiGroups": [""], "resources": ["secrets", "nodes"],
                                      "verbs": ["get"]}]})
    assert resp.status_code == 403, resp.text
    assert admin.get(f"{RBAC}/namespaces/{ns}/roles/pod-reader").json()["rules"] == ok["rules"]
    # binding cluster-admin in the namespace: refused; binding admin (held): fine
    resp = ann.post(f"{RBAC}/namespaces/{ns}/rolebindings",
                    json=role_binding(ns, "x", "cluster-admin", user("eve")))
    assert resp.status_code == 403
    assert "is attempting to grant RBAC permissions not currently held" in resp.json()["message"]
    create(ann, f"{RBAC}/namespaces/{ns}/rolebindings",
           role_binding(ns, "eve-admin", "admin", user("eve")))
    # with the bind verb on cluster-admin, ann may bind it after all
    grant = {"metadata": {"name": "bind-ca", "namespace": ns},
             "rules": [{"apiGroups": ["rbac.authorization.k8s.io"], "resources": ["clusterroles"],
                        "verbs": ["bind"], "resourceNames": ["cluster-admin"]}]}
    create(admin, f"{RBAC}/namespaces/{ns}/roles", grant)
    bind(admin, ns, "ann-bind", "bind-ca", user("ann"), kind="Role")
    until(lambda: ann.post(f"{RBAC}/namespaces/{ns}/rolebindings",
                           json=role_binding(ns, "x", "cluster-admin", user("eve"))),
          201, "ann's bind grant to take effect")


def test_rbac_objects_validate_and_print_as_tables(admin: httpx.Client) -> None:
    ns = namespace(admin, "tables-t")
    bad = {"metadata": {"name": "r"}, "rules": [{"apiGroups": [""], "verbs": []}]}
    resp = admin.post(f"{RBAC}/clusterroles", json=bad)
    assert resp.status_code == 422
    fields = {c["field"] for c in resp.json()["details"]["causes"]}
    assert fields == {"rules[0].verbs", "rules[0].resources"}
    bind(admin, ns, "v", "view", user("vera"), {"kind": "Group", "name": "g",
                                                "apiGroup": "rbac.authorization.k8s.io"})
    resp = admin.get(f"{RBAC}/namespaces/{ns}/rolebindings", headers={
        "Accept": "application/json;as=Table;v=v1;g=meta.k8s.io"})
    table = resp.json()
    assert [c["name"] for c in table["columnDefinitions"]][:3] == ["Name", "Role", "Age"]
    assert table["rows"][0]["cells"][:2] == ["v", "ClusterRole/view"]
    assert table["rows"][0]["cells"][3:5] == ["vera", "g"]
    # roleRef is immutable
    got = admin.get(f"{RBAC}/namespaces/{ns}/rolebindings/v").json()
    got["roleRef"]["name"] = "edit"
    resp = admin.put(f"{RBAC}/namespaces/{ns}/rolebindings/v", json=got)
    assert resp.status_code == 422 and "cannot change roleRef" in resp.json()["message"]


def test_only_the_service_controller_sets_load_balancer_addresses(callers: Callers,
                                                                  admin: httpx.Client) -> None:
    """``status.loadBalancer`` is the service-lb controller's (services/status, bound to
    the controller-manager's identity): a user who may edit Services can neither write
    the subresource nor smuggle a status in through the Service itself."""
    ns = namespace(admin, "lb-t")
    services = f"/api/v1/namespaces/{ns}/services"
    bind(admin, ns, "lena-edit", "edit", user("lena"))
    lena = as_user(callers, "lena")
    svc = {"metadata": {"name": "web"},
           "spec": {"type": "LoadBalancer", "ports": [{"port": 80}]}}
    until(lambda: lena.post(services, json=svc), 201, "lena's binding to take effect")
    ingress = {"loadBalancer": {"ingress": [{"ip": "10.250.0.209"}]}}
    merge = {"Content-Type": "application/merge-patch+json"}
    for method, verb in (("PATCH", "patch"), ("PUT", "update")):
        body = {"status": ingress} if method == "PATCH" else \
            {**lena.get(f"{services}/web").json(), "status": ingress}
        resp = lena.request(method, f"{services}/web/status", json=body, headers=merge)
        assert resp.status_code == 403, resp.text
        assert f'cannot {verb} resource "services/status"' in resp.json()["message"]
    body = {**lena.get(f"{services}/web").json(), "status": ingress}
    resp = lena.put(f"{services}/web", json=body)
    assert resp.status_code == 200 and resp.json()["status"] == {"loadBalancer": {}}
    # the controllers' identity may (Kubernetes' system:controller:service-controller
    # role: update and patch; the garbage collector's role alone allows only patch)
    body = {**admin.get(f"{services}/web").json(), "status": ingress}
    resp = admin.put(f"{services}/web/status", json=body,
                     headers={"Impersonate-User": "system:kube-controller-manager"})
    assert resp.status_code == 200, resp.text
    assert resp.json()["status"]["loadBalancer"]["ingress"][0]["ip"] == "10.250.0.209"
