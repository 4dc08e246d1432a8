"""RBAC rule matching, covering, the index, the chain, the Node authorizer, the bootstrap
policy and impersonation, as pure functions and small in-memory objects."""

from __future__ import annotations

import pytest

from apimachinery.rbac import aggregated_rules
from apiserver.auth import policy, rbac
from apiserver.auth.authorizer import Chain, Decision, forbidden
from apiserver.auth.filters import Authorization, impersonate, impersonated
from apiserver.auth.node import NodeAuthorizer, PodIndex
from apiserver.auth.requestinfo import RequestInfo, request_info
from apiserver.auth.user import ANONYMOUS_USER, UserInfo, service_account_user
from apiserver.errors import BadRequest, Forbidden

rule = rbac.rule


def res(verb: str, resource: str, *, group: str = "", sub: str = "", name: str = "",
        ns: str = "") -> RequestInfo:
    return RequestInfo(verb, is_resource_request=True, api_group=group, resource=resource,
                       subresource=sub, name=name, namespace=ns)


def url(verb: str, path: str) -> RequestInfo:
    return RequestInfo(verb, path=path)


MATCH = [
    (rule(["get"], [""], ["pods"]), res("get", "pods"), True),
    (rule(["get"], [""], ["pods"]), res("list", "pods"), False),
    (rule(["*"], [""], ["pods"]), res("delete", "pods"), True),
    (rule(["get"], ["*"], ["pods"]), res("get", "pods", group="x.io"), True),
    (rule(["get"], [""], ["pods"]), res("get", "pods", group="x.io"), False),
    (rule(["get"], [""], ["*"]), res("get", "services"), True),
    # a subresource is its own resource: pods does not grant pods/status
    (rule(["get"], [""], ["pods"]), res("get", "pods", sub="status"), False),
    (rule(["get"], [""], ["pods/status"]), res("get", "pods", sub="status"), True),
    (rule(["get"], [""], ["*/status"]), res("get", "nodes", sub="status"), True),
    (rule(["get"], [""], ["*/status"]), res("get", "nodes"), False),
    (rule(["get"], [""], ["*"]), res("get", "pods", sub="log"), True),
    # resourceNames: only named requests match
    (rule(["get"], [""], ["pods"], ["web"]), res("get", "pods", name="web"), True),
    (rule(["get"], [""], ["pods"], ["web"]), res("get", "pods", name="db"), False),
    (rule(["list"], [""], ["pods"], ["web"]), res("list", "pods"), False),
    # non-resource URLs, with a trailing *
    (rule(["get"], urls=["/healthz"]), url("get", "/healthz"), True),
    (rule(["get"], urls=["/healthz"]), url("get", "/healthz/etcd"), False),
    (rule(["get"], urls=["/healthz*"]), url("get", "/healthz/etcd"), True),
    (rule(["get"], urls=["/apis/*"]), url("get", "/apis/x/v1"), True),
    (rule(["get"], urls=["/apis/*"]), url("get", "/apis"), False),
    (rule(["get"], urls=["*"]), url("get", "/metrics"), True),
    (rule(["get"], urls=["/metrics"]), url("post", "/metrics"), False),
    # a resource rule never matches a path, a URL rule never a resource
    (rule(["get"], ["*"], ["*"]), url("get", "/metrics"), False),
    (rule(["get"], urls=["*"]), res("get", "pods"), False),
]


@pytest.mark.parametrize(("r", "info", "allowed"), MATCH)
def test_rule_allows(r: rbac.PolicyRule, info: RequestInfo, allowed: bool) -> None:
    assert rbac.rule_allows(r, info) is allowed


def test_policy_rule_from_json_ignores_wrong_types() -> None:
    r = rbac.PolicyRule.of({"verbs": ["get", 3], "apiGroups": "", "resources": ["pods"]})
    assert r == rule(["get"], [], ["pods"])


COVERS = [
    ([rule(["*"], ["*"], ["*"])], [rule(["get", "delete"], [""], ["pods"])], []),
    ([rule(["get"], [""], ["pods"])], [rule(["get"], [""], ["pods"])], []),
    ([rule(["get"], [""], ["pods"])], [rule(["get", "delete"], [""], ["pods"])],
     [rule(["delete"], [""], ["pods"])]),
    # a wildcard is only covered by a wildcard
    ([rule(["get", "list"], [""], ["pods"])], [rule(["*"], [""], ["pods"])],
     [rule(["*"], [""], ["pods"])]),
    ([rule(["get"], [""], ["pods/*"])], [rule(["get"], [""], ["pods/log"])], []),
    ([rule(["get"], [""], ["*/log"])], [rule(["get"], [""], ["pods/log"])], []),
    ([rule(["get"], [""], ["pods"], ["a"])], [rule(["get"], [""], ["pods"])],
     [rule(["get"], [""], ["pods"])]),
    ([rule(["get"], [""], ["pods"])], [rule(["get"], [""], ["pods"], ["a"])], []),
    ([rule(["get"], urls=["/api/*"])], [rule(["get"], urls=["/api/v1"])], []),
    ([rule(["get"], urls=["/api"])], [rule(["get"], urls=["/metrics"])],
     [rule(["get"], urls=["/metrics"])]),
]


@pytest.mark.parametrize(("owner", "wanted", "missing"), COVERS)
def test_uncovered(owner: list, wanted: list, missing: list) -> None:
    assert rbac.uncovered(owner, wanted) == missing


def test_describe_rule_as_kubernetes_prints_it() -> None:
    assert rbac.describe_rule(rule(["delete"], [""], ["pods"])) == \
        '{APIGroups:[""], Resources:["pods"], Verbs:["delete"]}'
    assert rbac.describe_rule(rule(["get"], urls=["/metrics"])) == \
        '{NonResourceURLs:["/metrics"], Verbs:["get"]}'


# --------------------------------------------------------------------------- the index

def _crb(name: str, role: str, *subjects: dict) -> dict:
    return {"metadata": {"name": name}, "roleRef": {"kind": "ClusterRole", "name": role},
            "subjects": list(subjects)}


def _rb(ns: str, name: str, kind: str, role: str, *subjects: dict) -> dict:
    return {"metadata": {"namespace": ns, "name": name},
            "roleRef": {"kind": kind, "name": role}, "subjects": list(subjects)}


def _role(name: str, *rules: rbac.PolicyRule, ns: str = "") -> dict:
    meta = {"name": name, **({"namespace": ns} if ns else {})}
    return {"metadata": meta, "rules": [r.to_dict() for r in rules]}


READER = _role("reader", rule(["get", "list"], [""], ["pods"]))
ALICE = UserInfo("alice", ("devs", "system:authenticated"))


def _index() -> rbac.RBACIndex:
    index = rbac.RBACIndex()
    index.replace({
        rbac.CLUSTER_ROLES: [READER],
        rbac.ROLES: [_role("deleter", rule(["delete"], [""], ["pods"]), ns="team")],
        rbac.CLUSTER_ROLE_BINDINGS: [_crb("devs-read", "reader", {"kind": "Group",
                                                                  "name": "devs"})],
        rbac.ROLE_BINDINGS: [
            _rb("team", "alice-delete", "Role", "deleter", {"kind": "User", "name": "alice"}),
            _rb("team", "sa-read", "ClusterRole", "reader",
                {"kind": "ServiceAccount", "name": "bot"}),
        ],
    })
    return index


def test_rbac_allows_through_a_group_binding_anywhere() -> None:
    authz = rbac.RBACAuthorizer(_index())
    verdict = authz.authorize(ALICE, res("list", "pods", ns="other"))
    assert verdict.allowed
    assert verdict.reason == 'RBAC: allowed by ClusterRoleBinding "devs-read" of ' \
                             'ClusterRole "reader"'


def test_a_role_binding_counts_only_in_its_namespace() -> None:
    authz = rbac.RBACAuthorizer(_index())
    assert authz.authorize(ALICE, res("delete", "pods", ns="team", name="x")).allowed
    assert not authz.authorize(ALICE, res("delete", "pods", ns="other", name="x")).allowed
    assert not authz.authorize(ALICE, res("delete", "pods", name="x")).allowed


def test_a_service_account_subject_defaults_to_the_binding_namespace() -> None:
    authz = rbac.RBACAuthorizer(_index())
    bot = service_account_user("team", "bot")
    assert authz.authorize(bot, res("list", "pods", ns="team")).allowed
    assert not authz.authorize(bot, res("list", "pods", ns="other")).allowed
    assert not authz.authorize(service_account_user("other", "bot"),
                               res("list", "pods", ns="team")).allowed


def test_index_follows_deletes_and_changes() -> None:
    index = _index()
    authz = rbac.RBACAuthorizer(index)
    index.apply(rbac.CLUSTER_ROLE_BINDINGS, "", "devs-read", None)
    assert not authz.authorize(ALICE, res("list", "pods", ns="other")).allowed
    index.apply(rbac.CLUSTER_ROLE_BINDINGS, "", "devs-read",
                _crb("devs-read", "reader", {"kind": "User", "name": "alice"}))
    assert authz.authorize(ALICE, res("list", "pods", ns="other")).allowed
    index.apply(rbac.CLUSTER_ROLES, "", "reader", _role("reader", rule(["get"], [""], ["pods"])))
    assert not authz.authorize(ALICE, res("list", "pods", ns="other")).allowed


def test_a_binding_to_a_missing_role_says_so() -> None:
    index = _index()
    index.apply(rbac.CLUSTER_ROLES, "", "reader", None)
    verdict = rbac.RBACAuthorizer(index).authorize(ALICE, res("list", "pods", ns="x"))
    assert verdict.decision is Decision.NO_OPINION
    assert verdict.reason == 'RBAC: clusterroles.rbac.authorization.k8s.io "reader" not found'


def test_rules_for_lists_cluster_and_namespace_rules() -> None:
    rules, errors = _index().rules_for(ALICE, "team")
    assert rule(["delete"], [""], ["pods"]) in rules
    assert rule(["get", "list"], [""], ["pods"]) in rules
    assert errors == []


# --------------------------------------------------------------------------- the chain

def test_masters_bypass_and_nobody_deciding_is_a_denial() -> None:
    chain = Chain([rbac.RBACAuthorizer(rbac.RBACIndex())])
    admin = UserInfo("kubernetes-admin", ("system:masters",))
    assert chain.authorize(admin, res("delete", "nodes", name="n")).allowed
    assert not chain.authorize(ALICE, res("delete", "nodes", name="n")).allowed


FORBIDDEN = [
    (res("delete", "pods", name="x", ns="default"),
     'pods "x" is forbidden: User "alice" cannot delete resource "pods" in API group "" in '
     'the namespace "default"', {"name": "x", "kind": "pods"}),
    (res("list", "pods", ns="default"),
     'pods is forbidden: User "alice" cannot list resource "pods" in API group "" in the '
     'namespace "default"', {"kind": "pods"}),
    (res("list", "nodes"),
     'nodes is forbidden: User "alice" cannot list resource "nodes" in API group "" at the '
     'cluster scope', {"kind": "nodes"}),
    (res("create", "clusterroles", group="rbac.authorization.k8s.io"),
     'clusterroles.rbac.authorization.k8s.io is forbidden: User "alice" cannot create '
     'resource "clusterroles" in API group "rbac.authorization.k8s.io" at the cluster scope',
     {"kind": "clusterroles", "group": "rbac.authorization.k8s.io"}),
    (res("patch", "nodes", sub="status", name="n2"),
     'nodes "n2" is forbidden: User "alice" cannot patch resource "nodes/status" in API '
     'group "" at the cluster scope', {"name": "n2", "kind": "nodes"}),
    (url("get", "/metrics"), 'forbidden: User "alice" cannot get path "/metrics"', None),
]


@pytest.mark.parametrize(("info", "message", "details"), FORBIDDEN)
def test_forbidden_is_worded_as_kubernetes(info: RequestInfo, message: str,
                                           details: dict | None) -> None:
    status = forbidden(ALICE, info).status()
    assert status["code"] == 403 and status["reason"] == "Forbidden"
    assert status["message"] == message
    assert status.get("details") == details


def test_forbidden_appends_the_reason() -> None:
    err = forbidden(ALICE, res("get", "pods", ns="a"), "RBAC: x not found")
    assert err.message.endswith('in the namespace "a": RBAC: x not found')


# --------------------------------------------------------------------------- node authorizer

def _pod(ns: str, name: str, node: str | None, sa: str | None = None) -> dict:
    spec: dict = {}
    if node:
        spec["nodeName"] = node
    if sa:
        spec["serviceAccountName"] = sa
    return {"metadata": {"namespace": ns, "name": name}, "spec": spec}


NODE1 = UserInfo("system:node:node-1", ("system:nodes", "system:authenticated"))


def test_node_may_create_tokens_only_for_service_accounts_of_its_pods() -> None:
    pods = PodIndex()
    pods.replace([_pod("a", "p1", "node-1", "builder"), _pod("a", "p2", "node-2", "web"),
                  _pod("a", "p3", None, "pending")])
    node = NodeAuthorizer(pods)
    token = res("create", "serviceaccounts", sub="token", ns="a", name="builder")
    assert node.authorize(NODE1, token).allowed
    other = res("create", "serviceaccounts", sub="token", ns="a", name="web")
    verdict = node.authorize(NODE1, other)
    assert not verdict.allowed
    assert verdict.reason == "no relationship found between node 'node-1' and this object"
    assert not node.authorize(NODE1, res("create", "serviceaccounts", sub="token", ns="a",
                                         name="pending")).allowed
    # the pod moves away (deleted): the relationship goes with it
    pods.apply("a", "p1", None)
    assert not node.authorize(NODE1, token).allowed
    # other users and other requests: no opinion
    assert node.authorize(ALICE, token).decision is Decision.NO_OPINION
    assert node.authorize(NODE1, res("get", "pods", ns="a")).decision is Decision.NO_OPINION


def test_the_default_service_account_counts() -> None:
    pods = PodIndex()
    pods.apply("a", "p", _pod("a", "p", "node-1"))
    assert NodeAuthorizer(pods).authorize(
        NODE1, res("create", "serviceaccounts", sub="token", ns="a", name="default")).allowed


# --------------------------------------------------------------------------- policy

def _policy_authz() -> Authorization:
    authz = Authorization()
    authz.index.replace({rbac.CLUSTER_ROLES: policy.cluster_roles(),
                         rbac.CLUSTER_ROLE_BINDINGS: policy.cluster_role_bindings()})
    return authz


def test_bootstrap_aggregates_view_into_edit_into_admin() -> None:
    roles = {r["metadata"]["name"]: r for r in policy.cluster_roles()}
    view = [rbac.PolicyRule.of(r) for r in roles["view"]["rules"]]
    edit = [rbac.PolicyRule.of(r) for r in roles["edit"]["rules"]]
    admin = [rbac.PolicyRule.of(r) for r in roles["admin"]["rules"]]
    assert rbac.rules_allow(view, res("list", "pods", ns="x"))
    assert not rbac.rules_allow(view, res("delete", "pods", ns="x", name="p"))
    assert not rbac.rules_allow(view, res("get", "secrets", ns="x", name="s"))
    assert rbac.rules_allow(edit, res("delete", "pods", ns="x", name="p"))
    assert rbac.rules_allow(edit, res("list", "pods", ns="x"))
    assert not rbac.rules_allow(edit, res("create", "rolebindings",
                                          group="rbac.authorization.k8s.io", ns="x"))
    assert rbac.rules_allow(admin, res("create", "rolebindings",
                                       group="rbac.authorization.k8s.io", ns="x"))
    assert rbac.rules_allow(admin, res("delete", "pods", ns="x", name="p"))


@pytest.mark.parametrize(("user", "info", "allowed"), [
    (UserInfo("u", ("system:authenticated",)), url("get", "/api/v1"), True),
    (UserInfo("u", ("system:authenticated",)), url("get", "/metrics"), False),
    (ANONYMOUS_USER, url("get", "/healthz"), True),
    (ANONYMOUS_USER, url("get", "/version"), True),
    (ANONYMOUS_USER, url("get", "/api"), False),
    (UserInfo("u", ("system:authenticated",)),
     res("create", "selfsubjectaccessreviews", group="authorization.k8s.io"), True),
    (NODE1, res("patch", "nodes", sub="status", name="node-1"), True),
    (NODE1, res("update", "pods", sub="status", ns="a", name="p"), True),
    (NODE1, res("create", "pods", ns="a"), False),
    (NODE1, res("get", "secrets", ns="a", name="s"), False),
    # a node's tokens come from the Node authorizer, never from its role
    (NODE1, res("create", "serviceaccounts", sub="token", ns="a", name="x"), False),
    (UserInfo("system:kube-controller-manager", ("system:authenticated",)),
     res("create", "pods", sub="binding", ns="a", name="p"), True),
    (UserInfo("system:kube-controller-manager", ("system:authenticated",)),
     res("create", "serviceaccounts", ns="a"), True),
    (UserInfo("system:kube-controller-manager", ("system:authenticated",)),
     res("create", "services", ns="a"), False),
    # the node lifecycle controller watches node Leases, and writes none
    (UserInfo("system:kube-controller-manager", ("system:authenticated",)),
     res("watch", "leases", group="coordination.k8s.io", ns="kube-node-lease"), True),
    (UserInfo("system:kube-controller-manager", ("system:authenticated",)),
     res("list", "leases", group="coordination.k8s.io", ns="kube-node-lease"), True),
    (UserInfo("system:kube-controller-manager", ("system:authenticated",)),
     res("update", "leases", group="coordination.k8s.io", ns="kube-node-lease", name="n1"),
     False),
    (UserInfo("system:miniplane-dnsd", ("system:authenticated",)),
     res("watch", "endpointslices", group="discovery.k8s.io"), True),
    (UserInfo("system:miniplane-dnsd", ("system:authenticated",)),
     res("update", "services", ns="a", name="s"), False),
])
def test_bootstrap_bindings(user: UserInfo, info: RequestInfo, allowed: bool) -> None:
    assert _policy_authz().authorize(user, info).allowed is allowed


def test_reconcile_restores_what_a_bootstrap_object_lost() -> None:
    want = next(r for r in policy.cluster_roles() if r["metadata"]["name"] == "system:node")
    assert policy.reconciled(want, None) is want
    assert policy.reconciled(want, want) is None
    trimmed = {**want, "rules": want["rules"][1:]}
    assert policy.reconciled(want, trimmed)["rules"][-1] == want["rules"][0]
    extra = {**want, "rules": [*want["rules"], {"verbs": ["get"], "apiGroups": [""],
                                                "resources": ["configmaps"]}]}
    assert policy.reconciled(want, extra) is None  # additions are kept
    pinned = {**trimmed, "metadata": {**want["metadata"], "annotations": {
        "rbac.authorization.kubernetes.io/autoupdate": "false"}}}
    assert policy.reconciled(want, pinned) is None


def test_aggregation_selects_by_label_in_name_order_once() -> None:
    agg = {"metadata": {"name": "agg"}, "aggregationRule": {"clusterRoleSelectors": [
        {"matchLabels": {"x": "true"}}]}}
    a = {"metadata": {"name": "b", "labels": {"x": "true"}}, "rules": [{"verbs": ["get"]}]}
    b = {"metadata": {"name": "a", "labels": {"x": "true"}},
         "rules": [{"verbs": ["list"]}, {"verbs": ["get"]}]}
    c = {"metadata": {"name": "c"}, "rules": [{"verbs": ["delete"]}]}
    assert aggregated_rules(agg, [a, b, c, agg]) == [{"verbs": ["list"]}, {"verbs": ["get"]}]
    assert aggregated_rules(c, [a]) is None


# --------------------------------------------------------------------------- impersonation

def test_impersonation_needs_the_verb() -> None:
    authz = _policy_authz()
    bob = UserInfo("bob", ("system:authenticated",))
    with pytest.raises(Forbidden) as exc:
        impersonate(bob, [("impersonate-user", "jane")], authz)
    assert exc.value.message == 'users "jane" is forbidden: User "bob" cannot impersonate ' \
                                'resource "users" in API group "" at the cluster scope'
    with pytest.raises(Forbidden) as exc:
        impersonate(bob, [("impersonate-user", "system:serviceaccount:ns1:robot")], authz)
    assert exc.value.message == (
        'serviceaccounts "robot" is forbidden: User "bob" cannot impersonate resource '
        '"serviceaccounts" in API group "" in the namespace "ns1"')
    with pytest.raises(BadRequest):
        impersonate(bob, [("impersonate-group", "g")], authz)


def test_impersonation_checks_every_group_and_extra() -> None:
    authz = _policy_authz()
    authz.index.apply(rbac.CLUSTER_ROLES, "", "imp", _role(
        "imp", rule(["impersonate"], [""], ["users"]),
        rule(["impersonate"], [""], ["groups"], ["devs"])))
    authz.index.apply(rbac.CLUSTER_ROLE_BINDINGS, "", "imp",
                      _crb("imp", "imp", {"kind": "User", "name": "bob"}))
    bob = UserInfo("bob", ("system:authenticated",))
    got = impersonate(bob, [("impersonate-user", "jane"), ("impersonate-group", "devs")], authz)
    assert got == UserInfo("jane", ("devs", "system:authenticated"))
    with pytest.raises(Forbidden, match='groups "system:masters" is forbidden'):
        impersonate(bob, [("impersonate-user", "jane"),
                          ("impersonate-group", "system:masters")], authz)
    with pytest.raises(Forbidden, match='userextras.authentication.k8s.io "x" is forbidden.*'
                                        '"userextras/scopes"'):
        impersonate(bob, [("impersonate-user", "jane"), ("impersonate-extra-scopes", "x")],
                    authz)


def test_impersonated_groups_as_kubernetes_adds_them() -> None:
    assert impersonated("system:serviceaccount:a:b", [], "", {}).groups == (
        "system:serviceaccounts", "system:serviceaccounts:a", "system:authenticated")
    assert impersonated("system:anonymous", [], "", {}).groups == ("system:unauthenticated",)
    assert impersonated("jane", ["system:unauthenticated"], "", {}).groups == (
        "system:unauthenticated",)


def test_request_info_round_trip_for_reviews() -> None:
    info = request_info("POST", "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews")
    assert (info.verb, info.api_group, info.resource) == (
        "create", "authorization.k8s.io", "selfsubjectaccessreviews")
