"""mp-apiserver serves HTTPS only: its cert dir, bring-your-own certificates, the
client certificate a request carries, listeners in a network namespace, and the
``kubernetes`` Service's EndpointSlice."""

from __future__ import annotations

import hashlib
import os
import shutil
import socket
import ssl
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import uvicorn
import yaml
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from apiserver import serving
from apiserver.auth.user import CLIENT_CERT_KEY
from client.config import read_kubeconfig
from componentbase import pki
from tests.conftest import BIN, ApiServer, free_port, wait_until
from tests.netns import Lab, socket_in

SLICE = "/apis/discovery.k8s.io/v1/namespaces/default/endpointslices/kubernetes"


def sans(cert_path: str | Path) -> set[str]:
    cert = x509.load_pem_x509_certificate(Path(cert_path).read_bytes())
    ext = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    return set(ext.get_values_for_type(x509.DNSName)) | {
        str(ip) for ip in ext.get_values_for_type(x509.IPAddress)}


def context(ca_file: str, cert: pki.KeyPair | None = None, tmp: Path | None = None
            ) -> ssl.SSLContext:
    """Trusts ``ca_file``; presents ``cert`` when given."""
    ctx = ssl.create_default_context(cafile=ca_file)
    if cert is not None:
        assert tmp is not None
        pki.save(cert, tmp / "client.crt", tmp / "client.key")
        ctx.load_cert_chain(tmp / "client.crt", tmp / "client.key")
    return ctx


def run_apiserver(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """A start that must fail at once (bad flags or files)."""
    return subprocess.run([str(BIN / "mp-apiserver"), *args], capture_output=True, text=True,
                          timeout=30, cwd=cwd)


def one_error_line(proc: subprocess.CompletedProcess[str]) -> str:
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 2 and len(lines) == 1, proc.stderr
    assert lines[0].startswith("mp-apiserver: error:") and "Traceback" not in proc.stderr
    return lines[0]


# -- the cert dir ---------------------------------------------------------------------


def test_first_start_makes_a_cert_dir_and_an_admin_kubeconfig_that_works(make_apiserver):
    server = make_apiserver(own_ca=True)
    files = sorted(p.name for p in server.cert_dir.iterdir())
    # sa.key: the ServiceAccount token signing key shares the cert dir
    assert files == ["admin.kubeconfig", "apiserver.crt", "apiserver.key", "ca.crt", "ca.key",
                     "sa.key"]
    for key in ("admin.kubeconfig", "apiserver.key", "ca.key", "sa.key"):
        assert (server.cert_dir / key).stat().st_mode & 0o077 == 0, key
    config = read_kubeconfig(server.kubeconfig)
    assert config.server == server.url
    with server.client() as api:
        assert api.request("GET", "/api/v1/namespaces/default").json()["metadata"][
            "name"] == "default"
    cert = x509.load_pem_x509_certificate(Path(config.client_cert or "").read_bytes())
    assert pki.subject(cert) == ("kubernetes-admin", ("system:masters",))


def test_plain_http_gets_no_http_answer(apiserver: ApiServer):
    with socket.create_connection(("127.0.0.1", apiserver.port), timeout=10) as sock:
        sock.sendall(b"GET /readyz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        answer = b""
        try:
            while chunk := sock.recv(4096):
                answer += chunk
        except (ConnectionResetError, TimeoutError):
            pass
    assert not answer.startswith(b"HTTP/"), answer[:100]
    with pytest.raises(httpx.HTTPError):
        httpx.get(f"http://127.0.0.1:{apiserver.port}/readyz", timeout=5)
    assert "Traceback" not in apiserver.log_path.read_text()


def test_anonymous_tls_reaches_readyz_and_an_unknown_ca_is_refused(apiserver: ApiServer):
    assert httpx.get(apiserver.url + "/readyz",
                     verify=ssl.create_default_context(cafile=apiserver.ca_file)).text == "ok"
    with pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
        httpx.get(apiserver.url + "/readyz",
                  verify=ssl.create_default_context(cadata=pki.new_ca().cert_pem.decode()))


def test_serving_certificate_names_every_address_and_the_service_names(make_apiserver):
    server = make_apiserver("--advertise-address", "192.0.2.10", "--tls-san", "apiserver",
                            "--tls-san", "203.0.113.5", "--service-cluster-ip-range",
                            "10.100.0.0/16", own_ca=True)
    assert sans(server.cert_dir / "apiserver.crt") == {
        "localhost", "kubernetes", "kubernetes.default", "kubernetes.default.svc",
        "kubernetes.default.svc.cluster.local", "apiserver", "127.0.0.1", "192.0.2.10",
        "203.0.113.5", "10.100.0.1"}
    # a pod's client checks the name it dialled: the Service's DNS name verifies
    ctx = ssl.create_default_context(cafile=server.ca_file)
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as raw, \
            ctx.wrap_socket(raw, server_hostname="kubernetes.default.svc") as tls:
        assert tls.version() in ("TLSv1.2", "TLSv1.3")


def test_restart_keeps_the_ca_and_admin_and_reissues_serving_only_for_new_names(
        make_apiserver):
    server = make_apiserver(own_ca=True)
    ca = Path(server.ca_file).read_bytes()
    admin = Path(server.kubeconfig).read_bytes()
    serving_cert = (server.cert_dir / "apiserver.crt").read_bytes()
    server.restart()
    assert Path(server.ca_file).read_bytes() == ca
    assert Path(server.kubeconfig).read_bytes() == admin
    assert (server.cert_dir / "apiserver.crt").read_bytes() == serving_cert
    server.extra_args = ["--tls-san", "apiserver.example"]
    server.restart()
    assert Path(server.ca_file).read_bytes() == ca
    assert _admin_cert(server.kubeconfig) == _admin_cert_of(admin)
    assert "apiserver.example" in sans(server.cert_dir / "apiserver.crt")
    with server.client() as api:  # the old admin credential still works
        assert api.request("GET", "/api/v1/namespaces").status_code == 200


def _admin_cert(path: str) -> str:
    return _admin_cert_of(Path(path).read_bytes())


def _admin_cert_of(text: bytes) -> str:
    return yaml.safe_load(text)["users"][0]["user"]["client-certificate-data"]


# -- bring your own -------------------------------------------------------------------


@pytest.fixture
def own_pki(tmp_path: Path) -> dict[str, Path]:
    """A CA made elsewhere, its serving pair for 127.0.0.1, a client of it, and a
    ServiceAccount signing key."""
    d = tmp_path / "byo"
    ca = pki.ensure_ca(d)
    pki.ensure_signing_key(d / "sa.key")
    pki.ensure_cert(d, "serving", ca, pki.server_identity("byo", ["localhost"], ["127.0.0.1"]))
    pki.ensure_cert(d, "user", ca, pki.client_identity("jane", ["devs"]))
    other = pki.ensure_ca(d, "other")
    pki.ensure_cert(d, "stranger", other, pki.client_identity("kubernetes-admin",
                                                              ["system:masters"]))
    return {name: d / name for name in ("ca.crt", "serving.crt", "serving.key", "user.crt",
                                        "user.key", "other.crt", "stranger.crt",
                                        "stranger.key", "sa.key")}


def test_bring_your_own_certificates(make_apiserver, own_pki):
    server = make_apiserver("--tls-cert-file", str(own_pki["serving.crt"]),
                            "--tls-private-key-file", str(own_pki["serving.key"]),
                            "--client-ca-file", str(own_pki["ca.crt"]),
                            "--service-account-signing-key-file", str(own_pki["sa.key"]),
                            own_ca=True, start=False)
    server.readyz_verify = lambda: ssl.create_default_context(  # type: ignore[method-assign]
        cafile=str(own_pki["ca.crt"]))
    server.start()
    assert not server.cert_dir.exists(), "nothing is made when every file is given"
    ca = str(own_pki["ca.crt"])
    user = ssl.create_default_context(cafile=ca)
    user.load_cert_chain(own_pki["user.crt"], own_pki["user.key"])
    assert httpx.get(server.url + "/readyz", verify=user).text == "ok"
    # a client certificate of another CA does not get through the handshake
    stranger = ssl.create_default_context(cafile=ca)
    stranger.load_cert_chain(own_pki["stranger.crt"], own_pki["stranger.key"])
    with pytest.raises(httpx.HTTPError):
        httpx.get(server.url + "/readyz", verify=stranger)


@pytest.mark.parametrize("case", ["mismatched", "unreadable", "not-pem", "half", "postgres",
                                  "no-signing-key"])
def test_unusable_certificate_flags_are_one_line(case, own_pki, tmp_path):
    pki.ensure_cert(tmp_path / "x", "again", pki.ensure_ca(tmp_path / "x"),
                    pki.server_identity("x", [], ["127.0.0.1"]))
    junk = tmp_path / "junk.pem"
    junk.write_text("not a certificate\n")
    base = ["--listen", f"127.0.0.1:{free_port()}",
            "--storage-url", f"sqlite:///{tmp_path}/state.db"]
    flags = {
        "mismatched": ["--tls-cert-file", str(own_pki["serving.crt"]),
                       "--tls-private-key-file", str(tmp_path / "x" / "again.key")],
        "unreadable": ["--tls-cert-file", str(tmp_path / "missing.crt"),
                       "--tls-private-key-file", str(own_pki["serving.key"])],
        "not-pem": ["--client-ca-file", str(junk)],
        "half": ["--tls-cert-file", str(own_pki["serving.crt"])],
        "postgres": ["--storage-url", "postgresql+psycopg://nobody@/nowhere"],
        # every TLS file given and no cert dir: nowhere to keep a token signing key
        "no-signing-key": ["--storage-url", "postgresql+psycopg://nobody@/nowhere",
                           "--tls-cert-file", str(own_pki["serving.crt"]),
                           "--tls-private-key-file", str(own_pki["serving.key"]),
                           "--client-ca-file", str(own_pki["ca.crt"])],
    }[case]
    line = one_error_line(run_apiserver(*base, *flags, cwd=tmp_path))
    assert {"mismatched": "don't match", "unreadable": "missing.crt",
            "not-pem": "junk.pem", "half": "go together",
            "postgres": "--cert-dir",
            "no-signing-key": "--service-account-signing-key-file is required"}[case] in line


# -- the client certificate in the request's scope ------------------------------------


@pytest.fixture
def probe(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """The serving stack of mp-apiserver (its TLS context and protocol) in front of an
    app that answers with the SHA-256 of the client certificate in its scope."""
    d = tmp_path / "pki"
    who = serving.serving_identity(listens=[serving.Listen("127.0.0.1", 0)],
                                   advertise="127.0.0.1", service_cidr="10.96.0.0/16")
    files = serving.prepare_tls(cert_dir=str(d), tls_cert_file=None, tls_key_file=None,
                                client_ca_file=None, who=who, admin_server="https://x")
    ctx = serving.server_context(files)

    async def app(scope, receive, send):
        assert scope["type"] == "http"
        der = scope.get(CLIENT_CERT_KEY)
        body = hashlib.sha256(der).hexdigest().encode() if der else b"none"
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": body})

    sock = serving.bind(serving.Listen("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(app, http=serving.ClientCertProtocol,
                                           ssl_context_factory=lambda _c, _d: ctx,
                                           lifespan="off", log_level="warning"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        wait_until(lambda: server.started, what="the probe server")
        yield f"https://127.0.0.1:{sock.getsockname()[1]}", d
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()


def test_a_verified_client_certificate_is_in_every_requests_scope(probe, tmp_path):
    url, d = probe
    ca = pki.load(d / "ca.crt", d / "ca.key")
    jane = pki.issue(ca, pki.client_identity("jane", ["devs"]))
    der = jane.cert.public_bytes(Encoding.DER)
    with httpx.Client(verify=context(str(d / "ca.crt"), jane, tmp_path)) as client:
        answers = {client.get(url + path).text for path in ("/", "/api/v1/pods", "/healthz")}
    assert answers == {hashlib.sha256(der).hexdigest()}
    assert httpx.get(url, verify=context(str(d / "ca.crt"))).text == "none"
    stranger = pki.issue(pki.new_ca(), pki.client_identity("kubernetes-admin",
                                                           ["system:masters"]))
    with pytest.raises(httpx.HTTPError):
        httpx.get(url, verify=context(str(d / "ca.crt"), stranger, tmp_path))


# -- a listener inside a network namespace --------------------------------------------


@pytest.mark.root
@pytest.mark.skipif(os.geteuid() != 0, reason="network namespaces need root")
@pytest.mark.skipif(shutil.which("ip") is None, reason="iproute2 (`ip`) is not installed")
def test_listen_inside_a_network_namespace(make_apiserver, lab: Lab):
    ns = lab.ns("api")
    lab.exec(ns, "ip", "addr", "add", "198.51.100.7/32", "dev", "lo")
    port = free_port()
    server = make_apiserver("--listen", f"netns:{ns}:198.51.100.7:{port}")
    assert "198.51.100.7" in sans(server.cert_dir / "apiserver.crt")
    sock = socket_in(ns)
    sock.settimeout(10)
    sock.connect(("198.51.100.7", port))
    with server.tls().wrap_socket(sock, server_hostname="198.51.100.7") as tls:
        tls.sendall(b"GET /readyz HTTP/1.1\r\nHost: 198.51.100.7\r\nConnection: close\r\n\r\n")
        answer = b""
        while chunk := tls.recv(4096):
            answer += chunk
    assert answer.startswith(b"HTTP/1.1 200") and answer.endswith(b"ok")


# -- the kubernetes Service's endpoints -----------------------------------------------


def test_kubernetes_service_gets_an_endpointslice_of_the_advertise_address(make_apiserver):
    server = make_apiserver("--advertise-address", "192.0.2.10")
    with server.http(timeout=10) as api:
        got = api.get(SLICE).json()
        assert got["addressType"] == "IPv4"
        assert got["endpoints"] == [{"addresses": ["192.0.2.10"],
                                     "conditions": {"ready": True}}]
        assert got["ports"] == [{"name": "https", "port": server.port, "protocol": "TCP"}]
        assert got["metadata"]["labels"] == {
            "kubernetes.io/service-name": "kubernetes",
            "endpointslice.kubernetes.io/managed-by": "kube-apiserver"}
        svc = api.get("/api/v1/namespaces/default/services/kubernetes").json()
        assert svc["spec"]["ports"][0]["targetPort"] == server.port
        got["endpoints"][0]["addresses"] = ["192.0.2.99"]
        assert api.put(SLICE, json=got).status_code == 200
    server.restart()  # the reconcile (also every 10 s) puts it back
    with server.http(timeout=10) as api:
        assert api.get(SLICE).json()["endpoints"][0]["addresses"] == ["192.0.2.10"]


def test_loopback_advertise_address_gets_no_endpointslice(apiserver: ApiServer):
    with apiserver.http(timeout=10) as api:
        assert api.get(SLICE).status_code == 404


def test_stop_does_not_wait_for_idle_tls_clients(apiserver: ApiServer):
    """An idle keep-alive connection (every client pool has some) never answers TLS
    close_notify; a stop must not wait out the graceful timeout for it."""
    with apiserver.http(timeout=10) as api:
        assert api.get("/api/v1/namespaces").status_code == 200
        started = time.monotonic()
        assert apiserver.stop() == 0
        assert time.monotonic() - started < 3
