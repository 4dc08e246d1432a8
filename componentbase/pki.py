"""A cluster's certificates: a CA, and serving and client certificates it signs.

What ``mp-apiserver --cert-dir``, ``mpctl cluster up`` and the compose deployment
use to create the PKI on first start and reuse it afterwards (k3s' way). Keys are
ECDSA P-256 (fast to make, accepted by Go's and Python's TLS); a client
certificate's subject says who it is as Kubernetes reads it: CN the user name,
O its groups. Files are PEM, keys written 0600.

``ensure_*`` load what exists and make only what is missing or no longer fits
(another CA, other names, close to expiry), so a restart never changes a
credential that still works.
"""

from __future__ import annotations

import datetime
import ipaddress
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from componentbase.files import write_atomic

CA_DAYS = 3650
CERT_DAYS = 365
RENEW_BEFORE = datetime.timedelta(days=30)  # reissue a certificate this close to expiry


class PKIError(Exception):
    """A certificate or key can't be read or used; the message is one line."""


@dataclass(frozen=True)
class KeyPair:
    cert_pem: bytes
    key_pem: bytes

    @property
    def cert(self) -> x509.Certificate:
        return x509.load_pem_x509_certificate(self.cert_pem)

    def private_key(self) -> ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey:
        key = serialization.load_pem_private_key(self.key_pem, password=None)
        if not isinstance(key, (ec.EllipticCurvePrivateKey, rsa.RSAPrivateKey)):
            raise PKIError("only ECDSA and RSA keys are supported")
        return key


@dataclass(frozen=True)
class Identity:
    """Whom a certificate names: user, groups and (for servers) its addresses."""

    common_name: str
    organizations: tuple[str, ...] = ()
    dns_names: tuple[str, ...] = ()
    ip_addresses: tuple[str, ...] = ()
    server: bool = False
    client: bool = False


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


def _name(common_name: str, organizations: Sequence[str] = ()) -> x509.Name:
    attrs = [x509.NameAttribute(NameOID.ORGANIZATION_NAME, o) for o in organizations]
    attrs.append(x509.NameAttribute(NameOID.COMMON_NAME, common_name))
    return x509.Name(attrs)


def _key_pem(key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def new_ca(common_name: str = "miniplane-ca", days: int = CA_DAYS) -> KeyPair:
    key = ec.generate_private_key(ec.SECP256R1())
    name = _name(f"{common_name}@{int(_now().timestamp())}")
    now = _now()
    cert = (x509.CertificateBuilder()
            .subject_name(name).issuer_name(name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=days))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True,
                                         crl_sign=True, content_commitment=False,
                                         key_encipherment=False, data_encipherment=False,
                                         key_agreement=False, encipher_only=False,
                                         decipher_only=False), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()),
                           critical=False)
            .sign(key, hashes.SHA256()))
    return KeyPair(cert.public_bytes(serialization.Encoding.PEM), _key_pem(key))


def issue(ca: KeyPair, who: Identity, days: int = CERT_DAYS) -> KeyPair:
    """A new key and a certificate for ``who`` signed by ``ca``."""
    key = ec.generate_private_key(ec.SECP256R1())
    now = _now()
    usages = ([ExtendedKeyUsageOID.SERVER_AUTH] if who.server else []) + (
        [ExtendedKeyUsageOID.CLIENT_AUTH] if who.client else [])
    builder = (x509.CertificateBuilder()
               .subject_name(_name(who.common_name, who.organizations))
               .issuer_name(ca.cert.subject)
               .public_key(key.public_key())
               .serial_number(x509.random_serial_number())
               .not_valid_before(now - datetime.timedelta(minutes=5))
               .not_valid_after(min(now + datetime.timedelta(days=days),
                                    ca.cert.not_valid_after_utc))
               .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
               .add_extension(x509.KeyUsage(digital_signature=True, key_encipherment=True,
                                            key_cert_sign=False, crl_sign=False,
                                            content_commitment=False, data_encipherment=False,
                                            key_agreement=False, encipher_only=False,
                                            decipher_only=False), critical=True)
               .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(
                   ca.cert.public_key()), critical=False))  # type: ignore[arg-type]
    if usages:
        builder = builder.add_extension(x509.ExtendedKeyUsage(usages), critical=False)
    sans: list[x509.GeneralName] = [x509.DNSName(d) for d in who.dns_names]
    sans += [x509.IPAddress(ipaddress.ip_address(ip)) for ip in who.ip_addresses]
    if sans:
        builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
    cert = builder.sign(ca.private_key(), hashes.SHA256())
    return KeyPair(cert.public_bytes(serialization.Encoding.PEM), _key_pem(key))


def subject(cert: x509.Certificate) -> tuple[str, tuple[str, ...]]:
    """(CN, Os) of a certificate: the user and groups Kubernetes reads from it."""
    cns = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    orgs = cert.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)
    return (str(cns[0].value) if cns else "", tuple(str(o.value) for o in orgs))


def fits(pair: KeyPair, ca: KeyPair, who: Identity) -> bool:
    """Whether an existing certificate still serves: signed by ``ca``, same subject and
    addresses, not expiring within ``RENEW_BEFORE``."""
    cert = pair.cert
    try:
        cert.verify_directly_issued_by(ca.cert)
    except (ValueError, TypeError, Exception):  # noqa: BLE001 - any failure means "reissue"
        return False
    if cert.not_valid_after_utc - _now() < RENEW_BEFORE:
        return False
    if subject(cert) != (who.common_name, tuple(who.organizations)):
        return False
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        dns = set(san.get_values_for_type(x509.DNSName))
        ips = {str(ip) for ip in san.get_values_for_type(x509.IPAddress)}
    except x509.ExtensionNotFound:
        dns, ips = set(), set()
    return dns == set(who.dns_names) and ips == {str(ipaddress.ip_address(i))
                                                 for i in who.ip_addresses}


# -- files -----------------------------------------------------------------------------


def load(cert_path: str | os.PathLike[str], key_path: str | os.PathLike[str]) -> KeyPair:
    try:
        pair = KeyPair(Path(cert_path).read_bytes(), Path(key_path).read_bytes())
        pair.cert  # noqa: B018 - parse now, so a broken file fails here with its name
        pair.private_key()
    except OSError as exc:
        raise PKIError(f"cannot read {exc.filename}: {exc.strerror}") from exc
    except ValueError as exc:
        raise PKIError(f"{cert_path} / {key_path}: not a PEM certificate and key "
                       f"({str(exc).splitlines()[0]})") from exc
    return pair


def save(pair: KeyPair, cert_path: Path, key_path: Path) -> None:
    write_atomic(key_path, pair.key_pem)
    write_atomic(cert_path, pair.cert_pem, 0o644)


def ensure_ca(directory: str | os.PathLike[str], name: str = "ca") -> KeyPair:
    """``<dir>/<name>.crt`` and ``.key``: loaded if present, else created."""
    d = Path(directory)
    cert_path, key_path = d / f"{name}.crt", d / f"{name}.key"
    if cert_path.exists() or key_path.exists():
        return load(cert_path, key_path)
    pair = new_ca()
    save(pair, cert_path, key_path)
    return pair


def ensure_cert(directory: str | os.PathLike[str], name: str, ca: KeyPair,
                who: Identity) -> KeyPair:
    """``<dir>/<name>.crt`` and ``.key`` for ``who``: kept if they still fit, else (re)issued."""
    d = Path(directory)
    cert_path, key_path = d / f"{name}.crt", d / f"{name}.key"
    if cert_path.exists() and key_path.exists():
        try:
            pair = load(cert_path, key_path)
            if fits(pair, ca, who):
                return pair
        except PKIError:
            pass  # unreadable: made anew below
    pair = issue(ca, who)
    save(pair, cert_path, key_path)
    return pair


def ensure_signing_key(path: str | os.PathLike[str]) -> bytes:
    """An RSA-2048 private key (PEM) for signing ServiceAccount tokens (RS256, as
    Kubernetes does), created if absent."""
    p = Path(path)
    if p.exists():
        data = p.read_bytes()
        try:
            serialization.load_pem_private_key(data, password=None)
        except ValueError as exc:
            raise PKIError(f"{p}: not a PEM private key") from exc
        return data
    data = _key_pem(rsa.generate_private_key(public_exponent=65537, key_size=2048))
    write_atomic(p, data)
    return data


def server_identity(common_name: str, dns_names: Iterable[str],
                    ip_addresses: Iterable[str]) -> Identity:
    return Identity(common_name, (), tuple(dict.fromkeys(dns_names)),
                    tuple(dict.fromkeys(ip_addresses)), server=True)


def client_identity(user: str, groups: Iterable[str] = ()) -> Identity:
    return Identity(user, tuple(groups), client=True)
