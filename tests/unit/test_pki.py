"""The cluster PKI: certificates say who they are, fit checks decide reuse, keys stay private."""

from __future__ import annotations

import ssl
import stat
from pathlib import Path

import pytest
from cryptography import x509

from apimachinery.kubeconfig import kubeconfig
from componentbase import pki


def test_client_certificate_names_user_and_groups(tmp_path: Path) -> None:
    ca = pki.ensure_ca(tmp_path)
    pair = pki.ensure_cert(tmp_path, "node", ca,
                           pki.client_identity("system:node:node-1", ["system:nodes"]))
    assert pki.subject(pair.cert) == ("system:node:node-1", ("system:nodes",))
    usage = pair.cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(usage) == [x509.oid.ExtendedKeyUsageOID.CLIENT_AUTH]
    pair.cert.verify_directly_issued_by(ca.cert)


def test_serving_certificate_is_accepted_by_a_tls_client_for_each_name(tmp_path: Path) -> None:
    ca = pki.ensure_ca(tmp_path)
    who = pki.server_identity("kube-apiserver", ["localhost", "kubernetes.default.svc"],
                              ["127.0.0.1", "10.96.0.1"])
    pki.ensure_cert(tmp_path, "apiserver", ca, who)
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server.load_cert_chain(tmp_path / "apiserver.crt", tmp_path / "apiserver.key")
    cert = x509.load_pem_x509_certificate((tmp_path / "apiserver.crt").read_bytes())
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert set(san.get_values_for_type(x509.DNSName)) == {"localhost", "kubernetes.default.svc"}
    assert {str(i) for i in san.get_values_for_type(x509.IPAddress)} == {"127.0.0.1",
                                                                         "10.96.0.1"}


def test_reuse_keeps_a_fitting_certificate_and_reissues_one_that_no_longer_fits(
        tmp_path: Path) -> None:
    ca = pki.ensure_ca(tmp_path)
    assert pki.ensure_ca(tmp_path) == ca
    who = pki.server_identity("kube-apiserver", ["localhost"], ["127.0.0.1"])
    first = pki.ensure_cert(tmp_path, "apiserver", ca, who)
    assert pki.ensure_cert(tmp_path, "apiserver", ca, who) == first
    wider = pki.server_identity("kube-apiserver", ["localhost"], ["127.0.0.1", "10.250.0.1"])
    second = pki.ensure_cert(tmp_path, "apiserver", ca, wider)
    assert second != first and pki.fits(second, ca, wider)
    other_ca = pki.new_ca()
    assert not pki.fits(second, other_ca, wider)


def test_keys_are_written_private(tmp_path: Path) -> None:
    ca = pki.ensure_ca(tmp_path)
    pki.ensure_cert(tmp_path, "admin", ca, pki.client_identity("admin", ["system:masters"]))
    pki.ensure_signing_key(tmp_path / "sa.key")
    for name in ("ca.key", "admin.key", "sa.key"):
        assert stat.S_IMODE((tmp_path / name).stat().st_mode) == 0o600, name
    assert stat.S_IMODE((tmp_path / "ca.crt").stat().st_mode) == 0o644


def test_a_broken_file_is_one_line_naming_it(tmp_path: Path) -> None:
    (tmp_path / "ca.crt").write_text("not a certificate")
    (tmp_path / "ca.key").write_text("nor a key")
    with pytest.raises(pki.PKIError, match="ca.crt"):
        pki.ensure_ca(tmp_path)


def test_kubeconfig_embeds_ca_and_credentials() -> None:
    doc = kubeconfig("mp", "https://127.0.0.1:6443", b"CA", cert_pem=b"C", key_pem=b"K")
    assert doc["current-context"] == "mp"
    assert doc["clusters"][0]["cluster"] == {"server": "https://127.0.0.1:6443",
                                             "certificate-authority-data": "Q0E="}
    assert doc["users"][0]["user"] == {"client-certificate-data": "Qw==",
                                       "client-key-data": "Sw=="}
