"""kube-proxy's chain-name hash, against upstream's test vectors (reference §2.4)."""

from __future__ import annotations

import base64
import hashlib

import pytest

from nodeagent.proxy import chains


@pytest.mark.parametrize(("port_name", "protocol", "expected"), [
    ("ns1/svc1:p80", "tcp", "XPGD46QRK7WJZT7O"),  # upstream's KUBE-SVC-XPGD46QRK7WJZT7O
    ("ns1/svc1:p80", "TCP", "XPGD46QRK7WJZT7O"),  # the protocol is lower-cased first
    ("ns4/svc4:p80", "tcp", "4SW47YFZTEDKD3PK"),  # KEP-3866
])
def test_service_hash_vectors(port_name: str, protocol: str, expected: str) -> None:
    assert chains.port_hash(port_name, protocol) == expected
    assert chains.service_chain("KUBE-SVC-", port_name, protocol) == f"KUBE-SVC-{expected}"


def test_endpoint_hash_vector() -> None:
    # upstream's fixture KUBE-SEP-SXIVWICOYRO3J4NJ
    assert chains.endpoint_chain("ns1/svc1:p80", "tcp", "10.180.0.1:80") == \
        "KUBE-SEP-SXIVWICOYRO3J4NJ"


@pytest.mark.parametrize("text", ["", "a", "demo/web:http" + "udp", "ns/x" * 40])
def test_fast_hash_equals_the_definition(text: str) -> None:
    digest = hashlib.sha256(text.encode()).digest()
    assert chains._hash16(text) == base64.b32encode(digest).decode()[:16]


def test_every_prefix_shares_the_hash_and_fits() -> None:
    names = [chains.service_chain(p, "demo/web:http", "tcp") for p in chains.SERVICE_PREFIXES]
    assert {n.rsplit("-", 1)[1] for n in names} == {"XRY76EGRC3BSCIIJ"}
    assert all(chains.is_valid_chain(n) and chains.is_hashed_chain(n) for n in names)
    with pytest.raises(ValueError):
        chains.service_chain("KUBE-XYZ-", "demo/web", "tcp")


@pytest.mark.parametrize(("name", "valid"), [
    ("KUBE-SERVICES", True), ("KUBE-SEP-SXIVWICOYRO3J4NJ", True),
    ("KUBE-" + "A" * 24, False), ("INPUT", False), ("KUBE-a", False), ("KUBE-X Y", False),
    ('KUBE-X"', False), ("KUBE-X\n-A", False),
])
def test_chain_name_validation(name: str, valid: bool) -> None:
    assert chains.is_valid_chain(name) is valid
