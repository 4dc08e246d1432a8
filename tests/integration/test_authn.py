"""Authentication on a real mp-apiserver process: who may get in, as whom.

Static tokens (``--token-auth-file``) and ServiceAccount tokens are bearer
tokens, sent here over HTTPS by clients that trust the test CA and present no
certificate; x509 client certificates are in ``test_authn_x509.py``. Tokens the
server would never issue (expired, foreign issuer or audience, another key) are
signed in the test with the server's own key file, as an attacker holding a
leaked old token would present them.
"""

from __future__ import annotations

import json
import ssl
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import yaml
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from apimachinery.kubeconfig import kubeconfig
from apiserver.auth import jwt
from apiserver.auth.serviceaccount_tokens import BoundPod, build_claims, load_signing_key
from tests.conftest import (
    BIN,
    ApiServer,
    ManagedProcess,
    free_port,
    session_pki,
    wait_until,
)

ISSUER = "https://kubernetes.default.svc.cluster.local"
ADMIN = "admin-token-0123456789"
VIEWER = "viewer-token-0123456789"
TOKENS = (f'{ADMIN},kubernetes-admin,uid-admin,system:masters\n'
          f'{VIEWER},jane,uid-jane,"dev,viewers"\n')
NS = "default"
UNAUTHORIZED = {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                "message": "Unauthorized", "reason": "Unauthorized", "code": 401}
POD = {"apiVersion": "v1", "kind": "Pod",
       "spec": {"containers": [{"name": "c", "image": "busybox"}]}}


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def tls() -> ssl.SSLContext:
    """Trusts the server, presents no certificate: the request's header is all it has."""
    return session_pki().anonymous_context


def get(url: str, **kwargs) -> httpx.Response:
    return httpx.get(url, verify=tls(), timeout=5, **kwargs)


def post(url: str, **kwargs) -> httpx.Response:
    return httpx.post(url, verify=tls(), timeout=10, **kwargs)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ApiServer]:
    work = tmp_path_factory.mktemp("authn")
    (work / "tokens.csv").write_text(TOKENS)
    extra_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    (work / "extra.key").write_bytes(extra_key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption()))
    (work / "extra.pub").write_bytes(extra_key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))
    api = ApiServer(db_path=work / "state.db", log_path=work / "apiserver.log",
                    extra_args=["--token-auth-file", str(work / "tokens.csv"),
                                "--service-account-key-file", str(work / "extra.pub")])
    try:
        yield api.start()
    finally:
        api.stop()


@pytest.fixture(scope="module")
def admin(server: ApiServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.url, headers=bearer(ADMIN), timeout=10,
                      verify=tls()) as client:
        yield client


def whoami(server: ApiServer, headers: dict[str, str]) -> httpx.Response:
    return post(f"{server.url}/apis/authentication.k8s.io/v1/selfsubjectreviews",
                json={"apiVersion": "authentication.k8s.io/v1", "kind": "SelfSubjectReview"},
                headers=headers)


def user_of(server: ApiServer, token: str) -> dict:
    answer = whoami(server, bearer(token))
    assert answer.status_code == 201, answer.text
    return answer.json()["status"]["userInfo"]


def service_account(admin: httpx.Client, name: str, ns: str = NS) -> dict:
    made = admin.post(f"/api/v1/namespaces/{ns}/serviceaccounts",
                      json={"metadata": {"name": name}})
    assert made.status_code == 201, made.text
    return made.json()


def request_token(admin: httpx.Client, name: str, spec: dict | None = None,
                  ns: str = NS) -> httpx.Response:
    return admin.post(f"/api/v1/namespaces/{ns}/serviceaccounts/{name}/token",
                      json={"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest",
                            "spec": spec or {}})


# ------------------------------------------------------------------ anonymous and bad credentials


@pytest.mark.parametrize("path", ["/healthz", "/livez", "/readyz", "/version"])
def test_anonymous_may_read_health_and_version(server: ApiServer, path: str) -> None:
    assert get(server.url + path).status_code == 200


@pytest.mark.parametrize("path", ["/api", "/apis", "/api/v1", "/api/v1/namespaces/default/pods",
                                  "/metrics", "/openapi/v3", "/healthz/../api"])
def test_anonymous_reads_elsewhere_are_401(server: ApiServer, path: str) -> None:
    answer = get(server.url + path)
    assert answer.status_code == 401
    assert answer.json() == UNAUTHORIZED


def test_anonymous_write_is_401_and_writes_nothing(server: ApiServer,
                                                   admin: httpx.Client) -> None:
    body = {**POD, "metadata": {"name": "anon"}}
    answer = post(f"{server.url}/api/v1/namespaces/{NS}/pods", json=body)
    assert (answer.status_code, answer.json()) == (401, UNAUTHORIZED)
    assert admin.get(f"/api/v1/namespaces/{NS}/pods/anon").status_code == 404


@pytest.mark.parametrize("authorization", [
    "Bearer bogus", "Bearer a.b.c", "Bearer " + ADMIN + "x", "Basic YWRtaW46YWRtaW4=",
    "Bearer",
])
def test_bad_credentials_are_401_even_where_anonymous_may_go(server: ApiServer,
                                                             authorization: str) -> None:
    headers = {"Authorization": authorization}
    for path in ("/api/v1/namespaces", "/readyz"):
        answer = get(server.url + path, headers=headers)
        assert (answer.status_code, answer.json()) == (401, UNAUTHORIZED), path


def test_cookies_are_never_credentials(server: ApiServer) -> None:
    cookie = {"Cookie": f"token={ADMIN}; Authorization=Bearer {ADMIN}"}
    answer = post(f"{server.url}/api/v1/namespaces/{NS}/pods", headers=cookie,
                  json={**POD, "metadata": {"name": "by-cookie"}})
    assert (answer.status_code, answer.json()) == (401, UNAUTHORIZED)
    listed = get(f"{server.url}/api/v1/namespaces", headers=cookie)
    assert (listed.status_code, listed.json()) == (401, UNAUTHORIZED)
    # beside a real credential, the cookie changes nothing
    assert user_of(server, VIEWER) == user_of_with_cookie(server)


def user_of_with_cookie(server: ApiServer) -> dict:
    answer = whoami(server, {**bearer(VIEWER), "Cookie": f"token={ADMIN}"})
    return answer.json()["status"]["userInfo"]


# ------------------------------------------------------------------ static tokens


def test_a_token_file_user_is_who_the_file_says(server: ApiServer) -> None:
    assert user_of(server, VIEWER) == {"username": "jane", "uid": "uid-jane",
                                       "groups": ["dev", "viewers", "system:authenticated"]}
    assert user_of(server, ADMIN)["groups"] == ["system:masters", "system:authenticated"]


def test_self_subject_review_answers_kubectls_protobuf_request(server: ApiServer) -> None:
    # what `kubectl auth whoami` sends: a protobuf-encoded, empty SelfSubjectReview
    body = (b"k8s\x00\n-\n\x18authentication.k8s.io/v1\x12\x11SelfSubjectReview\x12\x1a"
            b"\n\x10\n\x00\x12\x00\x1a\x00\"\x00*\x002\x008\x00B\x00\x12\x06\n\x04\n\x00\x12"
            b"\x00\x1a\x00\"\x00")
    answer = post(f"{server.url}/apis/authentication.k8s.io/v1/selfsubjectreviews",
                  content=body,
                        headers={**bearer(VIEWER),
                                 "Content-Type": "application/vnd.kubernetes.protobuf",
                                 "Accept": "application/vnd.kubernetes.protobuf,application/json"})
    assert answer.status_code == 201
    assert answer.json()["status"]["userInfo"]["username"] == "jane"


def test_kubectl_auth_whoami(server: ApiServer, tmp_path: Path) -> None:
    config = tmp_path / "kubeconfig"
    config.write_text(yaml.safe_dump(kubeconfig("t", server.url,
                                                Path(server.ca_file).read_bytes(),
                                                token=VIEWER)))
    out = subprocess.run([str(BIN / "kubectl"), "--kubeconfig", str(config), "auth", "whoami",
                          "-o", "json"], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["status"]["userInfo"]["username"] == "jane"


# ------------------------------------------------------------------ ServiceAccount tokens


def test_a_requested_token_authenticates_as_the_service_account(
        server: ApiServer, admin: httpx.Client) -> None:
    sa = service_account(admin, "robot")
    before = time.time()
    answer = request_token(admin, "robot")
    assert answer.status_code == 201, answer.text
    body = answer.json()
    assert (body["kind"], body["apiVersion"]) == ("TokenRequest", "authentication.k8s.io/v1")
    assert body["spec"] == {"audiences": [ISSUER], "expirationSeconds": 3600}
    expiry = body["status"]["expirationTimestamp"]
    expires = time.mktime(time.strptime(expiry, "%Y-%m-%dT%H:%M:%SZ")) - time.timezone
    assert before + 3600 - 5 <= expires <= time.time() + 3600 + 5
    user = user_of(server, body["status"]["token"])
    assert user["username"] == "system:serviceaccount:default:robot"
    assert user["uid"] == sa["metadata"]["uid"]
    assert user["groups"] == ["system:serviceaccounts", "system:serviceaccounts:default",
                              "system:authenticated"]
    assert list(user["extra"]) == ["authentication.kubernetes.io/credential-id"]


def test_token_request_expiry_bounds(admin: httpx.Client) -> None:
    service_account(admin, "bounds")
    short = request_token(admin, "bounds", {"expirationSeconds": 599})
    assert short.status_code == 422
    assert short.json()["details"]["causes"] == [{
        "reason": "FieldValueInvalid", "field": "spec.expirationSeconds",
        "message": "Invalid value: 599: may not specify a duration less than 10 minutes"}]
    long = request_token(admin, "bounds", {"expirationSeconds": 7 * 86400})
    assert long.status_code == 201
    assert long.json()["spec"]["expirationSeconds"] == 48 * 3600
    missing = request_token(admin, "nobody")
    assert missing.status_code == 404
    assert missing.json()["message"] == 'serviceaccounts "nobody" not found'


def test_a_token_of_a_deleted_service_account_is_401_even_if_recreated(
        server: ApiServer, admin: httpx.Client) -> None:
    service_account(admin, "doomed")
    token = request_token(admin, "doomed").json()["status"]["token"]
    assert whoami(server, bearer(token)).status_code == 201
    assert admin.delete(f"/api/v1/namespaces/{NS}/serviceaccounts/doomed").status_code == 200
    assert whoami(server, bearer(token)).status_code == 401
    service_account(admin, "doomed")  # same name, another object
    assert whoami(server, bearer(token)).status_code == 401


def test_a_token_bound_to_a_pod_lives_as_long_as_the_pod(server: ApiServer,
                                                         admin: httpx.Client) -> None:
    service_account(admin, "runner")
    pod = admin.post(f"/api/v1/namespaces/{NS}/pods", json={
        **POD, "metadata": {"name": "runner-pod"},
        "spec": {**POD["spec"], "serviceAccountName": "runner"}}).json()
    uid = pod["metadata"]["uid"]
    ref = {"kind": "Pod", "apiVersion": "v1", "name": "runner-pod", "uid": uid}
    answer = request_token(admin, "runner", {"boundObjectRef": ref, "audiences": [ISSUER]})
    assert answer.status_code == 201, answer.text
    assert answer.json()["spec"]["boundObjectRef"] == ref
    token = answer.json()["status"]["token"]
    extra = user_of(server, token)["extra"]
    assert extra["authentication.kubernetes.io/pod-name"] == ["runner-pod"]
    assert extra["authentication.kubernetes.io/pod-uid"] == [uid]
    # the unbound pod goes at once on delete; its token with it
    assert admin.delete(f"/api/v1/namespaces/{NS}/pods/runner-pod").status_code == 200
    assert whoami(server, bearer(token)).status_code == 401


def test_a_token_can_be_bound_only_to_an_existing_pod_of_this_account(
        admin: httpx.Client) -> None:
    service_account(admin, "picky")
    other = admin.post(f"/api/v1/namespaces/{NS}/pods", json={
        **POD, "metadata": {"name": "others-pod"}}).json()
    ref = {"kind": "Pod", "apiVersion": "v1", "name": "others-pod"}
    wrong_account = request_token(admin, "picky", {"boundObjectRef": ref})
    assert wrong_account.status_code == 400
    assert wrong_account.json()["message"] == (
        'cannot bind token for serviceaccount "picky" to pod running with different '
        'serviceaccount name.')
    stale = request_token(admin, "picky", {"boundObjectRef": {**ref, "uid": "not-" +
                                                              other["metadata"]["uid"]}})
    assert stale.status_code == 409
    gone = request_token(admin, "picky", {"boundObjectRef": {**ref, "name": "no-such-pod"}})
    assert gone.status_code == 404
    node = request_token(admin, "picky", {"boundObjectRef": {**ref, "kind": "Node"}})
    assert node.status_code == 400


# ------------------------------------------------------------------ tokens signed in the test


def signed(server_key: Path, **over: object) -> str:
    """A token signed with ``server_key``; claims of the ``signer`` account unless changed."""
    key = load_signing_key(server_key)
    claims = build_claims(issuer=ISSUER, audiences=[ISSUER], namespace=NS, name="signer",
                          uid=str(over.pop("uid")), pod=None, now=int(time.time()),
                          expiration_seconds=3600)
    claims.update(over)
    return jwt.encode(claims, key)


def test_tokens_signed_with_the_key_are_judged_on_their_claims(
        server: ApiServer, admin: httpx.Client) -> None:
    uid = service_account(admin, "signer")["metadata"]["uid"]
    sa_key = server.cert_dir / "sa.key"
    now = int(time.time())
    assert whoami(server, bearer(signed(sa_key, uid=uid))).status_code == 201
    refused = {
        "expired": signed(sa_key, uid=uid, iat=now - 7200, nbf=now - 7200, exp=now - 1),
        "wrong issuer": signed(sa_key, uid=uid, iss="https://evil.example"),
        "wrong audience": signed(sa_key, uid=uid, aud=["vault"]),
        "wrong uid": signed(sa_key, uid="not-" + uid),
    }
    for why, token in refused.items():
        answer = whoami(server, bearer(token))
        assert (answer.status_code, answer.json()) == (401, UNAUTHORIZED), why


def test_tokens_verify_with_a_service_account_key_file_and_no_other_key(
        server: ApiServer, admin: httpx.Client, tmp_path: Path) -> None:
    uid = service_account(admin, "keyed")["metadata"]["uid"]
    extra_key = Path(server.extra_args[3]).with_name("extra.key")
    key = load_signing_key(extra_key)
    claims = build_claims(issuer=ISSUER, audiences=[ISSUER], namespace=NS, name="keyed",
                          uid=uid, pod=None, now=int(time.time()), expiration_seconds=600)
    assert whoami(server, bearer(jwt.encode(claims, key))).status_code == 201
    stranger = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    assert whoami(server, bearer(jwt.encode(claims, stranger))).status_code == 401


def test_a_pod_bound_token_whose_pod_is_gone_is_401(server: ApiServer,
                                                    admin: httpx.Client) -> None:
    uid = service_account(admin, "ghost")["metadata"]["uid"]
    sa_key = server.cert_dir / "sa.key"
    claims = build_claims(issuer=ISSUER, audiences=[ISSUER], namespace=NS, name="ghost",
                          uid=uid, pod=BoundPod("never-was", "pod-uid"), now=int(time.time()),
                          expiration_seconds=600)
    answer = whoami(server, bearer(jwt.encode(claims, load_signing_key(sa_key))))
    assert answer.status_code == 401


# ------------------------------------------------------------------ reviews and discovery


def test_token_review(server: ApiServer, admin: httpx.Client) -> None:
    def review(token: str) -> dict:
        answer = admin.post("/apis/authentication.k8s.io/v1/tokenreviews",
                            json={"apiVersion": "authentication.k8s.io/v1",
                                  "kind": "TokenReview", "spec": {"token": token}})
        assert answer.status_code == 201, answer.text
        return answer.json()["status"]

    assert review(VIEWER)["user"]["username"] == "jane"
    assert review("bogus") == {"authenticated": False, "error": "invalid bearer token"}
    empty = admin.post("/apis/authentication.k8s.io/v1/tokenreviews", json={"spec": {}})
    assert empty.status_code == 422
    assert admin.get("/apis/authentication.k8s.io/v1/tokenreviews").status_code == 405


def test_discovery_and_openapi_list_the_new_resources(admin: httpx.Client) -> None:
    core = {r["name"]: r for r in admin.get("/api/v1").json()["resources"]}
    assert core["serviceaccounts"]["shortNames"] == ["sa"]
    assert core["serviceaccounts/token"]["kind"] == "TokenRequest"
    assert core["serviceaccounts/token"]["verbs"] == ["create"]
    groups = [g["name"] for g in admin.get("/apis").json()["groups"]]
    assert "authentication.k8s.io" in groups
    authn = {r["name"]: r["verbs"] for r in
             admin.get("/apis/authentication.k8s.io/v1").json()["resources"]}
    assert authn == {"selfsubjectreviews": ["create"], "tokenreviews": ["create"]}
    index = admin.get("/openapi/v3").json()["paths"]
    assert "apis/authentication.k8s.io/v1" in index
    doc = admin.get("/openapi/v3/api/v1").json()
    assert "/api/v1/namespaces/{namespace}/serviceaccounts" in doc["paths"]


# ------------------------------------------------------------------ startup errors


def test_a_bad_token_file_stops_the_server_with_one_line(tmp_path: Path) -> None:
    bad = tmp_path / "tokens.csv"
    bad.write_text("good,alice,1\nbroken-line\n")
    out = subprocess.run([str(BIN / "mp-apiserver"), "--listen", f"127.0.0.1:{free_port()}",
                          "--storage-url", f"sqlite:///{tmp_path / 'state.db'}",
                          "--token-auth-file", str(bad)],
                         capture_output=True, text=True, timeout=30)
    assert out.returncode == 2
    assert out.stderr.strip() == (f"mp-apiserver: error: {bad}, line 2: must have at least 3 "
                                  f"columns (token, user name, user uid), found 1")


# ------------------------------------------------------------------ the default ServiceAccount


class Controllers(ManagedProcess):
    label = "mp-controllers"

    def __init__(self, kubeconfig_path: Path, log_path: Path) -> None:
        self.kubeconfig_path = kubeconfig_path
        self.log_path = log_path
        self.port = free_port()
        self.proc = None

    def command(self) -> list[str]:
        return [str(BIN / "mp-controllers"), "--kubeconfig", str(self.kubeconfig_path),
                "--controllers", "serviceaccount",
                "--metrics-listen", f"127.0.0.1:{self.port}"]

    def readyz_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/readyz"


def test_every_namespace_gets_a_default_service_account_again_if_deleted(
        server: ApiServer, admin: httpx.Client, tmp_path: Path) -> None:
    config = tmp_path / "kubeconfig"
    config.write_text(yaml.safe_dump(kubeconfig("t", server.url,
                                                Path(server.ca_file).read_bytes(),
                                                token=ADMIN)))
    controllers = Controllers(config, tmp_path / "controllers.log")
    try:
        controllers.start()
        assert admin.post("/api/v1/namespaces",
                          json={"metadata": {"name": "team-a"}}).status_code == 201
        path = "/api/v1/namespaces/team-a/serviceaccounts/default"
        wait_until(lambda: admin.get(path).status_code == 200, what="default SA in team-a")
        first = admin.get(path).json()["metadata"]["uid"]
        assert admin.delete(path).status_code == 200
        wait_until(lambda: admin.get(path).status_code == 200
                   and admin.get(path).json()["metadata"]["uid"] != first,
                   what="default SA recreated")
        wait_until(lambda: admin.get("/api/v1/namespaces/kube-system/serviceaccounts/default")
                   .status_code == 200, what="default SA in kube-system")
    finally:
        controllers.stop()
