"""The protobuf bodies kubectl sends (auth can-i, create token, the imperative create of
Namespace, ServiceAccount and the four RBAC kinds), read as their JSON.

The ``KUBECTL_*`` bytes are what kubectl 1.37.1 put on the wire, captured from a real
run; the rest is built here with a ten-line encoder, to reach the cases kubectl does
not send (unknown fields, maps, negative numbers, garbage).
"""

from __future__ import annotations

import contextlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from apiserver import protobuf
from apiserver.protobuf import NotReadable, ProtobufError, decode

# kubectl auth can-i list pods
KUBECTL_CAN_I = (
    b'k8s\x00\n2\n\x17authorization.k8s.io/v1\x12\x17SelfSubjectAccessReview\x12=\n\x10\n'
    b'\x00\x12\x00\x1a\x00"\x00*\x002\x008\x00B\x00\x12\x1f\n\x1d\n\x07default\x12\x04list'
    b'\x1a\x00"\x00*\x04pods2\x00:\x00\x1a\x08\x08\x00\x12\x00\x1a\x00 \x00\x1a\x00"\x00')
# kubectl auth can-i get /metrics
KUBECTL_CAN_I_PATH = (
    b'k8s\x00\n2\n\x17authorization.k8s.io/v1\x12\x17SelfSubjectAccessReview\x12/\n\x10\n'
    b'\x00\x12\x00\x1a\x00"\x00*\x002\x008\x00B\x00\x12\x11\x12\x0f\n\x08/metrics\x12\x03get'
    b'\x1a\x08\x08\x00\x12\x00\x1a\x00 \x00\x1a\x00"\x00')
# kubectl auth can-i --list -n kube-system
KUBECTL_CAN_I_LIST = (
    b'k8s\x00\n1\n\x17authorization.k8s.io/v1\x12\x16SelfSubjectRulesReview\x12\'\n\x10\n'
    b'\x00\x12\x00\x1a\x00"\x00*\x002\x008\x00B\x00\x12\r\n\x0bkube-system\x1a\x04\x18\x00"'
    b'\x00\x1a\x00"\x00')
# kubectl create token bot --audience a1 --audience a2 --duration 20m
KUBECTL_TOKEN = (
    b'k8s\x00\n(\n\x18authentication.k8s.io/v1\x12\x0cTokenRequest\x12%\n\x10\n\x00\x12\x00'
    b'\x1a\x00"\x00*\x002\x008\x00B\x00\x12\x0b\n\x02a1\n\x02a2 \xb0\t\x1a\x04\n\x00\x12\x00'
    b'\x1a\x00"\x00')
# kubectl create token bot --bound-object-kind Pod --bound-object-name p --bound-object-uid u1
KUBECTL_BOUND_TOKEN = (
    b'k8s\x00\n(\n\x18authentication.k8s.io/v1\x12\x0cTokenRequest\x12,\n\x10\n\x00\x12\x00'
    b'\x1a\x00"\x00*\x002\x008\x00B\x00\x12\x12\x1a\x10\n\x03Pod\x12\x02v1\x1a\x01p"\x02u1'
    b'\x1a\x04\n\x00\x12\x00\x1a\x00"\x00')
# kubectl create serviceaccount bot2
KUBECTL_SERVICEACCOUNT = (
    b'k8s\x00\n\x14\n\x02v1\x12\x0eServiceAccount\x12\x16\n\x14\n\x04bot2\x12\x00\x1a\x00"'
    b'\x00*\x002\x008\x00B\x00\x1a\x00"\x00')
# kubectl create serviceaccount bot -n team
KUBECTL_SERVICEACCOUNT_NS = (
    b'k8s\x00\n\x14\n\x02v1\x12\x0eServiceAccount\x12\x19\n\x17\n\x03bot\x12\x00\x1a\x04team"'
    b'\x00*\x002\x008\x00B\x00\x1a\x00"\x00')
# kubectl create namespace team
KUBECTL_NAMESPACE = (
    b'k8s\x00\n\x0f\n\x02v1\x12\tNamespace\x12\x1c\n\x14\n\x04team\x12\x00\x1a\x00"\x00*\x002'
    b'\x008\x00B\x00\x12\x00\x1a\x02\n\x00\x1a\x00"\x00')
# kubectl create role pod-reader --verb=get --verb=list --resource=pods --resource-name=a -n team
KUBECTL_ROLE = (
    b'k8s\x00\n$\n\x1crbac.authorization.k8s.io/v1\x12\x04Role\x128\n\x1e\n\npod-reader\x12'
    b'\x00\x1a\x04team"\x00*\x002\x008\x00B\x00\x12\x16\n\x03get\n\x04list\x12\x00\x1a\x04pods'
    b'"\x01a\x1a\x00"\x00')
# kubectl create clusterrole agg --aggregation-rule=rbac.example.com/aggregate-to-agg=true
KUBECTL_CLUSTERROLE_AGGREGATED = (
    b'k8s\x00\n+\n\x1crbac.authorization.k8s.io/v1\x12\x0bClusterRole\x12D\n\x13\n\x03agg'
    b'\x12\x00\x1a\x00"\x00*\x002\x008\x00B\x00\x1a-\n+\n)\n!rbac.example.com/aggregate-to-'
    b'agg\x12\x04true\x1a\x00"\x00')
# kubectl create clusterrole urls --verb=get --non-resource-url=/logs/*
KUBECTL_CLUSTERROLE_URLS = (
    b'k8s\x00\n+\n\x1crbac.authorization.k8s.io/v1\x12\x0bClusterRole\x12&\n\x14\n\x04urls'
    b'\x12\x00\x1a\x00"\x00*\x002\x008\x00B\x00\x12\x0e\n\x03get*\x07/logs/*\x1a\x00"\x00')
# kubectl create rolebinding jane-views --clusterrole=view --user=jane --group=devs
#   --serviceaccount=team:bot -n team
KUBECTL_ROLEBINDING = (
    b'k8s\x00\n+\n\x1crbac.authorization.k8s.io/v1\x12\x0bRoleBinding\x12\xc6\x01\n\x1e\n\n'
    b'jane-views\x12\x00\x1a\x04team"\x00*\x002\x008\x00B\x00\x12)\n\x04User\x12\x19rbac.'
    b'authorization.k8s.io\x1a\x04jane"\x00\x12*\n\x05Group\x12\x19rbac.authorization.k8s.io'
    b'\x1a\x04devs"\x00\x12\x1d\n\x0eServiceAccount\x12\x00\x1a\x03bot"\x04team\x1a.\n\x19'
    b'rbac.authorization.k8s.io\x12\x0bClusterRole\x1a\x04view\x1a\x00"\x00')
# kubectl create clusterrolebinding bob-views --clusterrole=view --user=bob
KUBECTL_CLUSTERROLEBINDING = (
    b'k8s\x00\n2\n\x1crbac.authorization.k8s.io/v1\x12\x12ClusterRoleBinding\x12u\n\x19\n\t'
    b'bob-views\x12\x00\x1a\x00"\x00*\x002\x008\x00B\x00\x12(\n\x04User\x12\x19rbac.'
    b'authorization.k8s.io\x1a\x03bob"\x00\x1a.\n\x19rbac.authorization.k8s.io\x12\x0b'
    b'ClusterRole\x1a\x04view\x1a\x00"\x00')


def varint(n: int) -> bytes:
    n &= (1 << 64) - 1
    out = bytearray()
    while True:
        out.append((n & 0x7F) | (0x80 if n > 0x7F else 0))
        n >>= 7
        if not n:
            return bytes(out)


def field(number: int, value: bytes | str | int) -> bytes:
    if isinstance(value, int):
        return varint(number << 3) + varint(value)
    data = value.encode() if isinstance(value, str) else value
    return varint(number << 3 | 2) + varint(len(data)) + data


def envelope(kind: str, raw: bytes, api_version: str = "authorization.k8s.io/v1",
             encoding: str = "") -> bytes:
    type_meta = field(1, api_version) + field(2, kind)
    return (b"k8s\x00" + field(1, type_meta) + field(2, raw)
            + (field(3, encoding) if encoding else b""))


def test_what_kubectl_auth_can_i_sends() -> None:
    assert decode(KUBECTL_CAN_I, "SelfSubjectAccessReview") == {
        "apiVersion": "authorization.k8s.io/v1", "kind": "SelfSubjectAccessReview",
        "metadata": {},
        "spec": {"resourceAttributes": {"namespace": "default", "verb": "list",
                                        "resource": "pods"}}}
    assert decode(KUBECTL_CAN_I_PATH, "SelfSubjectAccessReview")["spec"] == {
        "nonResourceAttributes": {"path": "/metrics", "verb": "get"}}
    assert decode(KUBECTL_CAN_I_LIST, "SelfSubjectRulesReview") == {
        "apiVersion": "authorization.k8s.io/v1", "kind": "SelfSubjectRulesReview",
        "metadata": {}, "spec": {"namespace": "kube-system"}}


def test_what_kubectl_create_token_sends() -> None:
    assert decode(KUBECTL_TOKEN, "TokenRequest") == {
        "apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest", "metadata": {},
        "spec": {"audiences": ["a1", "a2"], "expirationSeconds": 1200}}
    assert decode(KUBECTL_BOUND_TOKEN, "TokenRequest")["spec"] == {
        "boundObjectRef": {"kind": "Pod", "apiVersion": "v1", "name": "p", "uid": "u1"}}


RBAC = "rbac.authorization.k8s.io/v1"
USERS = "rbac.authorization.k8s.io"


def test_what_kubectl_create_namespace_and_serviceaccount_send() -> None:
    assert decode(KUBECTL_NAMESPACE, "Namespace") == {
        "apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "team"}, "spec": {}}
    assert decode(KUBECTL_SERVICEACCOUNT, "ServiceAccount") == {
        "apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "bot2"}}
    assert decode(KUBECTL_SERVICEACCOUNT_NS, "ServiceAccount")["metadata"] == {
        "name": "bot", "namespace": "team"}
    # what kubectl has no flag for, built here: the fields a manifest may carry
    secret = field(1, "Secret") + field(3, "tok") + field(7, "data")
    account = (field(1, field(1, "ci")) + field(2, secret) + field(3, field(1, "regcred"))
               + field(4, 0))
    assert decode(envelope("ServiceAccount", account, "v1"), "ServiceAccount") == {
        "apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "ci"},
        "secrets": [{"kind": "Secret", "name": "tok", "fieldPath": "data"}],
        "imagePullSecrets": [{"name": "regcred"}], "automountServiceAccountToken": False}
    finalizers = field(2, field(1, "kubernetes") + field(1, "example.com/x"))
    assert decode(envelope("Namespace", finalizers, "v1"), "Namespace")["spec"] == {
        "finalizers": ["kubernetes", "example.com/x"]}


def test_what_kubectl_create_role_and_clusterrole_send() -> None:
    assert decode(KUBECTL_ROLE, "Role") == {
        "apiVersion": RBAC, "kind": "Role",
        "metadata": {"name": "pod-reader", "namespace": "team"},
        # the core group is the empty string, kept: it is an item of a list
        "rules": [{"verbs": ["get", "list"], "apiGroups": [""], "resources": ["pods"],
                   "resourceNames": ["a"]}]}
    assert decode(KUBECTL_CLUSTERROLE_URLS, "ClusterRole") == {
        "apiVersion": RBAC, "kind": "ClusterRole", "metadata": {"name": "urls"},
        "rules": [{"verbs": ["get"], "nonResourceURLs": ["/logs/*"]}]}
    assert decode(KUBECTL_CLUSTERROLE_AGGREGATED, "ClusterRole") == {
        "apiVersion": RBAC, "kind": "ClusterRole", "metadata": {"name": "agg"},
        "aggregationRule": {"clusterRoleSelectors": [
            {"matchLabels": {"rbac.example.com/aggregate-to-agg": "true"}}]}}
    expression = field(2, field(1, "tier") + field(2, "In") + field(3, "a") + field(3, "b"))
    selectors = field(1, field(1, field(1, "x") + field(2, "1")) + expression)
    got = decode(envelope("ClusterRole", field(3, selectors), RBAC), "ClusterRole")
    assert got["aggregationRule"] == {"clusterRoleSelectors": [{
        "matchLabels": {"x": "1"},
        "matchExpressions": [{"key": "tier", "operator": "In", "values": ["a", "b"]}]}]}


def test_what_kubectl_create_rolebinding_and_clusterrolebinding_send() -> None:
    view = {"apiGroup": USERS, "kind": "ClusterRole", "name": "view"}
    assert decode(KUBECTL_ROLEBINDING, "RoleBinding") == {
        "apiVersion": RBAC, "kind": "RoleBinding",
        "metadata": {"name": "jane-views", "namespace": "team"},
        "subjects": [{"kind": "User", "apiGroup": USERS, "name": "jane"},
                     {"kind": "Group", "apiGroup": USERS, "name": "devs"},
                     {"kind": "ServiceAccount", "name": "bot", "namespace": "team"}],
        "roleRef": view}
    assert decode(KUBECTL_CLUSTERROLEBINDING, "ClusterRoleBinding") == {
        "apiVersion": RBAC, "kind": "ClusterRoleBinding", "metadata": {"name": "bob-views"},
        "subjects": [{"kind": "User", "apiGroup": USERS, "name": "bob"}], "roleRef": view}
    # the endpoint decides: a RoleBinding posted where ClusterRoleBindings are taken
    with pytest.raises(ProtobufError, match=r"kind \(RoleBinding\) do not match"):
        decode(KUBECTL_ROLEBINDING, "ClusterRoleBinding")


def test_other_kinds_are_not_read() -> None:
    service = envelope("Service", field(1, field(1, "web")), "v1")  # kubectl create service
    with pytest.raises(NotReadable):
        decode(service, "Service")
    with pytest.raises(NotReadable):
        decode(service, "PersistentVolumeClaim")
    # the endpoint's kind decides: a TokenRequest posted where a review is taken is refused
    with pytest.raises(ProtobufError, match="do not match the expected authorization"):
        decode(KUBECTL_TOKEN, "SelfSubjectAccessReview")
    with pytest.raises(ProtobufError, match=r"\(v1\) and kind \(ServiceAccount\)"):
        decode(KUBECTL_SERVICEACCOUNT, "TokenRequest")


def test_subject_access_review_with_groups_extra_and_metadata() -> None:
    attrs = field(2, "get") + field(5, "secrets") + field(3, "") + field(7, "db")
    extra = field(1, "scopes") + field(2, field(1, "a") + field(1, "b"))
    spec = (field(1, attrs) + field(3, "vera") + field(4, "dev") + field(4, "ops")
            + field(5, extra) + field(6, "u-1") + field(99, "unknown, skipped"))
    meta = (field(1, "r") + field(3, "team") + field(11, field(1, "app") + field(2, "web"))
            + field(11, field(1, "empty")) + field(12, field(1, "note") + field(2, "hi")))
    got = decode(envelope("SubjectAccessReview", field(1, meta) + field(2, spec)
                          + field(3, b"\x08\x01")), "SubjectAccessReview")
    assert got == {
        "apiVersion": "authorization.k8s.io/v1", "kind": "SubjectAccessReview",
        "metadata": {"name": "r", "namespace": "team", "labels": {"app": "web", "empty": ""},
                     "annotations": {"note": "hi"}},
        "spec": {"resourceAttributes": {"verb": "get", "resource": "secrets", "name": "db"},
                 "user": "vera", "groups": ["dev", "ops"],
                 "extra": {"scopes": ["a", "b"]},  # JSON's form: ExtraValue is a bare list
                 "uid": "u-1"}}


def test_scalars_and_repeated_messages_merge_as_protobuf_does() -> None:
    spec = (field(1, field(1, "ns") + field(2, "get"))
            + field(1, field(2, "list") + field(8, field(2, field(1, "k") + field(2, "In")
                                                         + field(3, "v")))))
    got = decode(envelope("SelfSubjectAccessReview", field(2, spec)), "SelfSubjectAccessReview")
    assert got["spec"]["resourceAttributes"] == {
        "namespace": "ns", "verb": "list",
        "fieldSelector": {"requirements": [{"key": "k", "operator": "In", "values": ["v"]}]}}
    negative = decode(envelope("TokenRequest", field(2, field(4, -5)),
                               "authentication.k8s.io/v1"), "TokenRequest")
    assert negative["spec"]["expirationSeconds"] == -5  # validation refuses it, not the decoder


@pytest.mark.parametrize("body, at", [
    (b"", "body"),
    (b"{\"kind\": \"SelfSubjectAccessReview\"}", "body"),
    (b"k8s\x00\x0a\x05ab", "body"),  # field longer than the message
    (b"k8s\x00\x0a\x80", "body"),  # truncated varint
    (envelope("SelfSubjectAccessReview", b"", encoding="gzip"), "contentEncoding"),
    (envelope("SelfSubjectAccessReview", field(2, field(1, field(2, 7)))),
     "spec.resourceAttributes.verb"),
    (envelope("SelfSubjectAccessReview", field(2, field(1, field(5, b"\xff")))),
     "spec.resourceAttributes.resource"),
    (envelope("SelfSubjectAccessReview", field(2, b"\x0b")), "spec"),  # wire type 3 (group)
    (envelope("TokenRequest", field(2, field(4, "ten")), "authentication.k8s.io/v1"),
     "spec.expirationSeconds"),
    (envelope("TokenRequest", field(2, field(1, 3)), "authentication.k8s.io/v1"),
     "spec.audiences[0]"),
    (envelope("Role", field(2, field(1, "get")) + field(2, field(3, 5)), RBAC),
     "rules[1].resources[0]"),
    (envelope("RoleBinding", field(3, field(3, b"\xc3")), RBAC), "roleRef.name"),
    (envelope("RoleBinding", field(2, field(1, "User")) + field(2, b"\x0a"), RBAC),
     "subjects[1]"),
    (envelope("ClusterRole", field(3, field(1, field(1, field(1, "k") + field(2, 1)))),
              RBAC), "aggregationRule.clusterRoleSelectors[0].matchLabels[k]"),
    (envelope("ServiceAccount", field(4, "yes"), "v1"), "automountServiceAccountToken"),
    (envelope("Namespace", field(1, field(1, 7)), "v1"), "metadata.name"),
])
def test_malformed_bodies_name_the_field(body: bytes, at: str) -> None:
    kind = next((k for k in sorted(protobuf.KINDS, key=len, reverse=True)
                 if k.encode() in body[:60]), "SelfSubjectAccessReview")
    with pytest.raises(ProtobufError) as err:
        decode(body, kind)
    assert err.value.field == at


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=200), st.sampled_from(sorted(protobuf.KINDS)))
def test_garbage_is_a_protobuf_error_never_another_exception(junk: bytes, kind: str) -> None:
    for body in (junk, b"k8s\x00" + junk,
                 envelope(kind, junk, protobuf.KINDS[kind][0])):
        with contextlib.suppress(ProtobufError):
            got = decode(body, kind)
            assert got["kind"] == kind and isinstance(got.get("spec", {}), dict)
