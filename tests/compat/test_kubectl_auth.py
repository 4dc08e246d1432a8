"""The real kubectl (1.37) doing the security workflows over TLS: who am I, can I,
RBAC objects by ``apply -f`` and by the imperative ``create``, ServiceAccount tokens by
``create token``.

``auth can-i``, ``create token`` and ``create namespace|serviceaccount|role|clusterrole|
rolebinding|clusterrolebinding`` send their bodies as protobuf (the server reads exactly
those, ``apiserver/protobuf.py``); ``auth whoami`` sends one the server does not need. Users other than cluster-admin come from a ``--token-auth-file`` and each
has a kubeconfig of its own holding only the CA and its token.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from client.config import write_kubeconfig
from tests.compat.conftest import Kubectl, table
from tests.conftest import ApiServer, wait_until
from tests.integration.callers import token_file

TOKENS = {"vera": "vera-token-5e2c7a91", "bob": "bob-token-8d4f1b36"}

RBAC = """\
apiVersion: v1
kind: Namespace
metadata: {name: team}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata: {name: pod-reader, namespace: team}
rules:
- apiGroups: [""]
  resources: [pods]
  verbs: [get, list, watch]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {name: vera-reads-pods, namespace: team}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: Role, name: pod-reader}
subjects:
- {apiGroup: rbac.authorization.k8s.io, kind: User, name: vera}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: bob-views}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: view}
subjects:
- {apiGroup: rbac.authorization.k8s.io, kind: User, name: bob}
"""

BOT = """\
apiVersion: v1
kind: ServiceAccount
metadata: {name: bot, namespace: team}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {name: bot-views, namespace: team}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: view}
subjects:
- {kind: ServiceAccount, name: bot, namespace: team}
"""


@pytest.fixture
def apiserver(make_apiserver, tmp_path: Path) -> ApiServer:
    """The compat suite's server, with static users beside cluster-admin."""
    return make_apiserver("--token-auth-file", str(token_file(tmp_path / "tokens.csv", TOKENS)))


def with_token(kubectl: Kubectl, token: str, name: str) -> Kubectl:
    """kubectl as the holder of ``token``: a kubeconfig with the server's CA and the token."""
    path = kubectl.home / f"{name}.kubeconfig"
    write_kubeconfig(path, server=kubectl.server,
                     ca_pem=Path(kubectl.kubeconfig).with_name("ca.crt").read_bytes(),
                     token=token)
    return Kubectl(kubectl.server, kubectl.home, str(path))


def can_i(kubectl: Kubectl, *args: str) -> str:
    """``kubectl auth can-i``'s answer, checked against its exit code (0 yes, 1 no)."""
    proc = kubectl.run("auth", "can-i", *args, check=False)
    answer = proc.stdout.strip()
    assert (answer, proc.returncode) in (("yes", 0), ("no", 1)), proc
    return answer


def eventually(kubectl: Kubectl, *args: str, answer: str = "yes") -> None:
    """RBAC changes reach the authorizer from the committed log, a moment after the
    write's answer (as Kubernetes' informers do): poll, don't sleep."""
    wait_until(lambda: can_i(kubectl, *args) == answer, what=f"can-i {args} to be {answer}")


def test_auth_whoami(kubectl: Kubectl) -> None:
    assert table(kubectl.out("auth", "whoami")) == [
        ["ATTRIBUTE", "VALUE"], ["Username", "kubernetes-admin"],
        ["Groups", "[system:masters system:authenticated]"]]
    review = json.loads(kubectl.out("auth", "whoami", "-o", "json"))
    assert review["kind"] == "SelfSubjectReview"
    assert review["status"]["userInfo"] == {
        "username": "kubernetes-admin", "groups": ["system:masters", "system:authenticated"]}
    vera = with_token(kubectl, TOKENS["vera"], "vera")
    assert table(vera.out("auth", "whoami")) == [
        ["ATTRIBUTE", "VALUE"], ["Username", "vera"], ["UID", "uid-vera"],
        ["Groups", "[system:authenticated]"]]
    # masters may impersonate, and whoami says whom
    rows = table(kubectl.out("auth", "whoami", "--as", "bob", "--as-group", "dev"))
    assert rows[1:] == [["Username", "bob"], ["Groups", "[dev system:authenticated]"]]
    # a token the server never issued gets nothing, not even a name
    bogus = with_token(kubectl, "not-a-token", "bogus").run("auth", "whoami", check=False)
    assert bogus.returncode != 0
    assert "You must be logged in to the server (Unauthorized)" in bogus.stderr


def test_auth_can_i_follows_rbac_applied_with_kubectl(kubectl: Kubectl) -> None:
    vera = with_token(kubectl, TOKENS["vera"], "vera")
    assert can_i(kubectl, "list", "pods") == "yes"
    assert can_i(kubectl, "delete", "nodes", "--all-namespaces") == "yes"
    assert can_i(kubectl, "list", "pods", "-n", "team", "--as", "vera") == "no"
    assert can_i(vera, "list", "pods", "-n", "team") == "no"
    refused = vera.run("get", "pods", "-n", "team", check=False)
    assert refused.returncode == 1
    assert refused.stderr.strip() == (
        'Error from server (Forbidden): pods is forbidden: User "vera" cannot list resource '
        '"pods" in API group "" in the namespace "team"')
    # impersonation needs the impersonate verb: vera has none
    impersonating = vera.run("get", "pods", "--as", "bob", check=False)
    assert impersonating.returncode == 1
    assert ('users "bob" is forbidden: User "vera" cannot impersonate resource "users" in '
            'API group "" at the cluster scope') in impersonating.stderr

    assert kubectl.out("apply", "-f", "-", stdin=RBAC).splitlines() == [
        "namespace/team created",
        "role.rbac.authorization.k8s.io/pod-reader created",
        "rolebinding.rbac.authorization.k8s.io/vera-reads-pods created",
        "clusterrolebinding.rbac.authorization.k8s.io/bob-views created"]
    eventually(kubectl, "list", "pods", "-n", "team", "--as", "vera")
    assert can_i(vera, "watch", "pods", "-n", "team") == "yes"
    assert can_i(kubectl, "delete", "pods", "-n", "team", "--as", "vera") == "no"
    assert can_i(kubectl, "list", "pods", "-n", "default", "--as", "vera") == "no"
    assert can_i(kubectl, "get", "/metrics", "--as", "vera") == "no"
    assert vera.run("get", "pods", "-n", "team").stderr.strip() == \
        "No resources found in team namespace."
    # the ClusterRoleBinding: bob views everywhere, writes nowhere
    eventually(kubectl, "list", "services", "--all-namespaces", "--as", "bob")
    assert can_i(kubectl, "delete", "services", "-n", "team", "--as", "bob") == "no"
    assert can_i(kubectl, "list", "pods", "-n", "team", "--as", "bob", "--as-group",
                 "system:masters") == "yes"

    # --list: the rules review, as the Role wrote them
    rules = table(kubectl.out("auth", "can-i", "--list", "-n", "team", "--as", "vera"))
    assert rules[0] == ["Resources", "Non-Resource URLs", "Resource Names", "Verbs"]
    assert ["pods", "[]", "[]", "[get list watch]"] in rules
    assert not any(r[0] == "*.*" for r in rules)

    # widening the Role by apply is seen by the next can-i
    wider = RBAC.replace("verbs: [get, list, watch]", "verbs: [get, list, watch, delete]")
    out = kubectl.out("apply", "-f", "-", stdin=wider).splitlines()
    assert "role.rbac.authorization.k8s.io/pod-reader configured" in out
    assert "clusterrolebinding.rbac.authorization.k8s.io/bob-views unchanged" in out
    eventually(vera, "delete", "pods", "-n", "team")


def test_get_rbac_objects_prints_kubernetes_tables(kubectl: Kubectl) -> None:
    kubectl.out("apply", "-f", "-", stdin=RBAC)
    blocks = kubectl.out("get", "clusterroles,rolebindings", "-n", "team").split("\n\n")
    roles, bindings = table(blocks[0]), table(blocks[1])
    assert roles[0] == ["NAME", "CREATED AT"]
    names = {r[0] for r in roles[1:]}
    assert {"clusterrole.rbac.authorization.k8s.io/cluster-admin",
            "clusterrole.rbac.authorization.k8s.io/view"} <= names
    assert bindings == [["NAME", "ROLE", "AGE"],
                        ["rolebinding.rbac.authorization.k8s.io/vera-reads-pods",
                         "Role/pod-reader", bindings[1][2]]]
    wide = table(kubectl.out("get", "clusterrolebinding", "bob-views", "-o", "wide"))
    assert wide[0] == ["NAME", "ROLE", "AGE", "USERS", "GROUPS", "SERVICEACCOUNTS"]
    assert wide[1][:2] == ["bob-views", "ClusterRole/view"] and wide[1][3] == "bob"
    assert table(kubectl.out("get", "roles", "-n", "team"))[1][0] == "pod-reader"
    described = kubectl.out("describe", "rolebinding", "vera-reads-pods", "-n", "team")
    assert "Role:\n  Kind:  Role\n  Name:  pod-reader" in described


def test_create_token_for_a_service_account_and_use_it(kubectl: Kubectl) -> None:
    kubectl.out("apply", "-f", "-", stdin=RBAC)
    kubectl.out("apply", "-f", "-", stdin=BOT.split("---")[0])
    token = kubectl.out("create", "token", "bot", "-n", "team", "--duration", "15m",
                        "--audience", "https://kubernetes.default.svc.cluster.local").strip()
    assert token.count(".") == 2
    bot = with_token(kubectl, token, "bot")
    uid = kubectl.out("get", "sa", "bot", "-n", "team", "-o", "jsonpath={.metadata.uid}")
    who = table(bot.out("auth", "whoami"))
    assert who[1:4] == [
        ["Username", "system:serviceaccount:team:bot"], ["UID", uid],
        ["Groups", "[system:serviceaccounts system:serviceaccounts:team system:authenticated]"]]
    assert who[4][0] == "Extra: authentication.kubernetes.io/credential-id"  # the token's JTI
    # no binding yet: refused
    assert can_i(bot, "list", "pods", "-n", "team") == "no"
    refused = bot.run("get", "pods", "-n", "team", check=False)
    assert refused.returncode == 1 and (
        'User "system:serviceaccount:team:bot" cannot list resource "pods"') in refused.stderr
    # bound to view in its namespace: reads there, nowhere else, writes nothing
    kubectl.out("apply", "-f", "-", stdin=BOT)
    eventually(bot, "list", "pods", "-n", "team")
    assert bot.run("get", "pods", "-n", "team").returncode == 0
    assert can_i(bot, "list", "pods", "-n", "default") == "no"
    assert can_i(bot, "create", "serviceaccounts/token", "-n", "team") == "no"
    # what the server refuses, kubectl shows in one line naming the field
    short = kubectl.run("create", "token", "bot", "-n", "team", "--duration", "5m",
                        check=False)
    assert short.returncode == 1 and short.stderr.strip() == (
        'error: failed to create token: TokenRequest "bot" is invalid: '
        "spec.expirationSeconds: Invalid value: 300: may not specify a duration less than "
        "10 minutes")
    unbound = kubectl.run("create", "token", "bot", "-n", "team", "--bound-object-kind", "Pod",
                          "--bound-object-name", "nope", check=False)
    assert unbound.returncode == 1 and 'pods "nope" not found' in unbound.stderr
    # a token for an account that does not exist
    missing = kubectl.run("create", "token", "ghost", "-n", "team", check=False)
    assert missing.returncode == 1 and 'serviceaccounts "ghost" not found' in missing.stderr


def test_imperative_create_of_namespaces_accounts_and_rbac(kubectl: Kubectl) -> None:
    """``kubectl create namespace|serviceaccount|role|clusterrole|rolebinding|
    clusterrolebinding`` post protobuf; the server reads it, stores what a manifest would
    have said, and the bindings take effect as if applied."""
    def get(*args: str) -> dict:
        return json.loads(kubectl.out("get", *args, "-o", "json"))

    assert kubectl.out("create", "namespace", "team").strip() == "namespace/team created"
    ns = get("namespace", "team")
    assert ns["spec"] == {"finalizers": ["kubernetes"]} and ns["status"]["phase"] == "Active"
    assert kubectl.out("create", "serviceaccount", "bot", "-n", "team").strip() == \
        "serviceaccount/bot created"
    assert get("sa", "bot", "-n", "team")["metadata"]["namespace"] == "team"

    kubectl.out("create", "role", "pod-reader", "--verb=get", "--verb=list",
                "--resource=pods", "-n", "team")
    assert get("role", "pod-reader", "-n", "team")["rules"] == [
        {"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list"]}]
    kubectl.out("create", "clusterrole", "log-reader", "--verb=get",
                "--non-resource-url=/logs/*")
    assert get("clusterrole", "log-reader")["rules"] == [
        {"nonResourceURLs": ["/logs/*"], "verbs": ["get"]}]
    kubectl.out("create", "clusterrole", "agg",
                "--aggregation-rule=rbac.example.com/aggregate-to-agg=true")
    assert get("clusterrole", "agg")["aggregationRule"] == {"clusterRoleSelectors": [
        {"matchLabels": {"rbac.example.com/aggregate-to-agg": "true"}}]}

    assert can_i(kubectl, "list", "pods", "-n", "team", "--as", "vera") == "no"
    assert kubectl.out("create", "rolebinding", "vera-reads", "--role=pod-reader",
                       "--user=vera", "--serviceaccount=team:bot", "-n", "team").strip() == \
        "rolebinding.rbac.authorization.k8s.io/vera-reads created"
    binding = get("rolebinding", "vera-reads", "-n", "team")
    assert binding["roleRef"] == {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role",
                                  "name": "pod-reader"}
    assert binding["subjects"] == [
        {"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": "vera"},
        {"kind": "ServiceAccount", "name": "bot", "namespace": "team"}]
    eventually(kubectl, "list", "pods", "-n", "team", "--as", "vera")
    assert can_i(kubectl, "delete", "pods", "-n", "team", "--as", "vera") == "no"

    kubectl.out("create", "clusterrolebinding", "bob-views", "--clusterrole=view", "--user=bob")
    assert get("clusterrolebinding", "bob-views")["subjects"] == [
        {"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": "bob"}]
    eventually(kubectl, "list", "services", "--all-namespaces", "--as", "bob")

    # the ordinary answers, each one line: exists, invalid, forbidden; dry runs store nothing
    again = kubectl.run("create", "namespace", "team", check=False)
    assert again.returncode == 1 and again.stderr.strip() == \
        'Error from server (AlreadyExists): namespaces "team" already exists'
    bad = kubectl.run("create", "namespace", "Bad_Name", check=False)
    assert bad.returncode == 1 and len(bad.stderr.strip().splitlines()) == 1
    assert bad.stderr.startswith('The Namespace "Bad_Name" is invalid: metadata.name: Invalid')
    vera = with_token(kubectl, TOKENS["vera"], "vera")
    refused = vera.run("create", "serviceaccount", "spy", "-n", "team", check=False)
    assert refused.returncode == 1 and refused.stderr.strip() == (
        'error: failed to create serviceaccount: serviceaccounts is forbidden: User "vera" '
        'cannot create resource "serviceaccounts" in API group "" in the namespace "team"')
    assert kubectl.out("create", "namespace", "dry", "--dry-run=server").strip() == \
        "namespace/dry created (server dry run)"
    assert kubectl.run("get", "namespace", "dry", check=False).returncode == 1
