"""``mpctl cluster``'s PKI files: made once, reused by the next ``up``, remade when unfit."""

from __future__ import annotations

import base64
import ssl
import stat
from pathlib import Path

import yaml
from cryptography import x509

from client.config import read_kubeconfig
from componentbase import pki as certs
from mpctl.cluster import credentials, plan
from mpctl.main import run as mpctl


def make_plan(tmp: Path, *, server: str = "https://127.0.0.1:6443",
              ips: tuple[str, ...] = ("10.250.0.1",)) -> plan.PKIPlan:
    return plan.pki_plan(tmp / "pki", server=server, nodes=["node-1", "node-2"],
                         admin_kubeconfig=tmp / "kubeconfig", apiserver_ips=ips,
                         cluster_name="miniplane-t")


def embedded_cert(path: Path) -> x509.Certificate:
    user = yaml.safe_load(path.read_text())["users"][0]["user"]
    return x509.load_pem_x509_certificate(base64.b64decode(user["client-certificate-data"]))


def snapshot(p: plan.PKIPlan) -> dict[Path, bytes]:
    files = [p.ca_cert, p.ca_key, p.serving_cert, p.serving_key, p.sa_key,
             *(c.kubeconfig for c in p.credentials)]
    return {f: f.read_bytes() for f in files}


def test_first_run_makes_everything_private_and_each_kubeconfig_says_who(tmp_path: Path
                                                                         ) -> None:
    p = make_plan(tmp_path)
    outcome = credentials.ensure(p)
    nodes = [c.name for c in p.credentials if c.groups == (plan.NODE_GROUP,)]
    # the CA, serving cert, SA key, the API server's kubelet client cert, the
    # kubeconfigs, and each node agent's API serving cert and CA copy
    assert outcome.kept == () and len(outcome.created) == 4 + len(p.credentials) + \
        2 * len(nodes)
    assert stat.S_IMODE(p.dir.stat().st_mode) == 0o700
    for private in (p.ca_key, p.serving_key, p.sa_key, p.kubelet_client_key,
                    *(c.kubeconfig for c in p.credentials),
                    *(p.agent_files(n)[1] for n in nodes)):
        assert stat.S_IMODE(private.stat().st_mode) == 0o600, private
    ca = certs.load(p.ca_cert, p.ca_key)
    assert certs.subject(certs.load(p.kubelet_client_cert, p.kubelet_client_key).cert) == \
        ("kube-apiserver-kubelet-client", ())
    for node in nodes:
        cert, key, ca_copy = p.agent_files(node)
        serving = certs.load(cert, key).cert
        serving.verify_directly_issued_by(ca.cert)
        assert certs.subject(serving) == (f"system:node:{node}", ())
        names = serving.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        assert node in names.get_values_for_type(x509.DNSName)
        assert [str(i) for i in names.get_values_for_type(x509.IPAddress)] == ["127.0.0.1"]
        assert ca_copy.read_bytes() == ca.cert_pem
    for cred in p.credentials:
        config = read_kubeconfig(cred.kubeconfig)
        assert config.server == "https://127.0.0.1:6443"
        cert = embedded_cert(cred.kubeconfig)
        assert certs.subject(cert) == (cred.user, cred.groups)
        cert.verify_directly_issued_by(certs.load(p.ca_cert, p.ca_key).cert)
        if cred.kubeconfig.parent != tmp_path:  # a directory of its own, private
            assert stat.S_IMODE(cred.kubeconfig.parent.stat().st_mode) == 0o700
    # what a TLS client does with the admin kubeconfig: trust the CA, present the cert
    admin = read_kubeconfig(tmp_path / "kubeconfig")
    ctx = ssl.create_default_context(cafile=admin.ca_file)
    ctx.load_cert_chain(admin.client_cert, admin.client_key)
    san = certs.load(p.serving_cert, p.serving_key).cert.extensions.get_extension_for_class(
        x509.SubjectAlternativeName).value
    assert {str(ip) for ip in san.get_values_for_type(x509.IPAddress)} == {
        "127.0.0.1", "10.96.0.1", "10.250.0.1"}
    assert "kubernetes.default.svc.cluster.local" in san.get_values_for_type(x509.DNSName)


def test_the_next_up_reuses_every_file(tmp_path: Path) -> None:
    p = make_plan(tmp_path)
    credentials.ensure(p)
    before = snapshot(p)
    outcome = credentials.ensure(p)
    assert outcome.created == () and snapshot(p) == before


def test_another_api_port_rewrites_the_kubeconfigs_but_keeps_their_certificates(
        tmp_path: Path) -> None:
    credentials.ensure(make_plan(tmp_path))
    admin = tmp_path / "kubeconfig"
    cert = embedded_cert(admin)
    p = make_plan(tmp_path, server="https://127.0.0.1:40000")
    outcome = credentials.ensure(p)
    assert set(outcome.created) == {str(c.kubeconfig) for c in p.credentials}
    assert read_kubeconfig(admin).server == "https://127.0.0.1:40000"
    assert embedded_cert(admin) == cert


def test_a_new_serving_address_reissues_only_the_serving_certificate(tmp_path: Path) -> None:
    credentials.ensure(make_plan(tmp_path))
    p = make_plan(tmp_path, ips=("10.250.0.1", "10.250.0.9"))
    outcome = credentials.ensure(p)
    assert outcome.created == (str(p.serving_cert),)


def test_a_new_ca_reissues_every_certificate(tmp_path: Path) -> None:
    p = make_plan(tmp_path)
    credentials.ensure(p)
    before = snapshot(p)
    p.ca_cert.unlink()
    p.ca_key.unlink()
    credentials.ensure(p)
    after = snapshot(p)
    assert [f for f in before if before[f] == after[f]] == [p.sa_key]


def test_a_kubeconfig_holding_someone_elses_certificate_is_reissued(tmp_path: Path) -> None:
    """node-1's file with node-2's certificate (copied over, say) is not node-1's."""
    p = make_plan(tmp_path)
    credentials.ensure(p)
    node1, node2 = p.credential("node-1").kubeconfig, p.credential("node-2").kubeconfig
    node1.write_bytes(node2.read_bytes())
    credentials.ensure(p)
    assert certs.subject(embedded_cert(node1)) == ("system:node:node-1", ("system:nodes",))
    assert embedded_cert(node2) != embedded_cert(node1)


def test_a_broken_kubeconfig_is_replaced(tmp_path: Path) -> None:
    p = make_plan(tmp_path)
    credentials.ensure(p)
    dnsd = p.credential("dnsd").kubeconfig
    dnsd.write_text("users: [{user: {client-certificate-data: '!!'}}]\n")
    credentials.ensure(p)
    assert certs.subject(embedded_cert(dnsd))[0] == "system:miniplane-dnsd"


def test_mpctl_cluster_pki_makes_the_compose_layout(tmp_path: Path, capsys) -> None:
    argv = ["cluster", "pki", "--dir", str(tmp_path), "--server", "https://apiserver:6443",
            "--admin-server", "https://127.0.0.1:6443", "--apiserver-name", "apiserver",
            "--node", "node-1"]
    assert mpctl(argv) == 0
    assert sorted(str(f.relative_to(tmp_path)) for f in tmp_path.rglob("*") if f.is_file()) \
        == ["admin/kubeconfig", "apiserver-kubelet-client.crt", "apiserver-kubelet-client.key",
            "apiserver.crt", "apiserver.key", "ca.crt", "ca.key", "controllers/kubeconfig",
            "dnsd/kubeconfig", "node-1/ca.crt", "node-1/kubeconfig", "node-1/kubelet.crt",
            "node-1/kubelet.key", "sa.key"]
    assert read_kubeconfig(tmp_path / "admin/kubeconfig").server == "https://127.0.0.1:6443"
    assert read_kubeconfig(tmp_path / "node-1/kubeconfig").server == "https://apiserver:6443"
    first = capsys.readouterr().out
    assert mpctl(argv) == 0
    again = capsys.readouterr().out
    assert first.count("created ") == 10 and again.count("kept ") == 10, (first, again)


def test_mpctl_cluster_pki_bad_node_is_one_line(tmp_path: Path, capsys) -> None:
    argv = ["cluster", "pki", "--dir", str(tmp_path / "d"), "--server", "https://a:1",
            "--node", "admin"]
    assert mpctl(argv) == 1
    assert capsys.readouterr().err == \
        "error: --node: 'admin' is the name of another credential\n"
    assert not (tmp_path / "d").exists()


def tree(root: Path) -> dict[str, bytes]:
    return {str(f.relative_to(root)): f.read_bytes() for f in root.rglob("*") if f.is_file()}


def test_mpctl_cluster_pki_records_the_storage_once_and_refuses_another(
        tmp_path: Path, capsys) -> None:
    """One deployment, one storage: API servers on SQLite beside ones on PostgreSQL
    would be two clusters under one name (docker-compose.ha.yml switched on or off)."""
    argv = ["cluster", "pki", "--dir", str(tmp_path), "--server", "https://apiserver:6443"]
    assert mpctl([*argv, "--storage", "postgresql"]) == 0
    assert (tmp_path / "storage").read_text() == "postgresql\n"
    assert f"created {tmp_path / 'storage'}\n" in capsys.readouterr().out
    assert mpctl([*argv, "--storage", "postgresql"]) == 0
    assert f"kept {tmp_path / 'storage'}\n" in capsys.readouterr().out
    before = tree(tmp_path)
    assert mpctl([*argv, "--server", "https://127.0.0.1:1", "--storage", "sqlite"]) == 1
    out = capsys.readouterr()
    assert out.out == ""
    assert out.err.startswith("error: --storage sqlite: this deployment's API servers use "
                              "postgresql (recorded in "), out.err
    assert out.err.count("\n") == 1 and "down -v" in out.err
    assert tree(tmp_path) == before  # nothing changed, not even the kubeconfigs' server


def test_a_pki_made_before_storage_records_was_made_for_sqlite(tmp_path: Path,
                                                               capsys) -> None:
    argv = ["cluster", "pki", "--dir", str(tmp_path), "--server", "https://apiserver:6443"]
    assert mpctl(argv) == 0  # as the compose file ran it before --storage
    assert not (tmp_path / "storage").exists()
    before = tree(tmp_path)
    assert mpctl([*argv, "--storage", "postgresql"]) == 1
    assert "API servers use sqlite" in capsys.readouterr().err
    assert tree(tmp_path) == before
    assert mpctl([*argv, "--storage", "sqlite"]) == 0
    assert (tmp_path / "storage").read_text() == "sqlite\n"


def test_mpctl_cluster_pki_unknown_storage_is_one_line(tmp_path: Path, capsys) -> None:
    assert mpctl(["cluster", "pki", "--dir", str(tmp_path / "d"), "--server", "https://a:1",
                  "--storage", "etcd"]) == 1
    assert capsys.readouterr().err == \
        "error: --storage: 'etcd' is not one of sqlite, postgresql\n"
    assert not (tmp_path / "d").exists()
