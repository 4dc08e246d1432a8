"""``kubectl create configmap|secret`` post protobuf: read as the same object's JSON.

The bytes are what kubectl 1.32 put on the wire, captured from real runs of
``kubectl create configmap app --from-literal=mode=fast --from-file=app.conf
--from-file=blob`` (``blob`` holding ``00 01 ff 'bin'``, so kubectl sends it as
``binaryData``), ``kubectl create secret generic creds --from-literal=username=admin
--from-literal=password=s3cr3t!`` and ``kubectl create secret generic half
--type=kubernetes.io/tls --from-literal=tls.crt=x``.
"""

from __future__ import annotations

import base64

import pytest

from apiserver.protobuf import ProtobufError, decode

KUBECTL_CREATE_CONFIGMAP = (
    b'k8s\x00\n\x0f\n\x02v1\x12\tConfigMap\x12M\n\x13\n\x03app\x12\x00\x1a\x00"\x00*\x002'
    b'\x008\x00B\x00\x12\x18\n\x08app.conf\x12\x0cline1\nline2\n\x12\x0c\n\x04mode\x12\x04fast'
    b'\x1a\x0e\n\x04blob\x12\x06\x00\x01\xffbin\x1a\x00"\x00')
KUBECTL_CREATE_SECRET = (
    b'k8s\x00\n\x0c\n\x02v1\x12\x06Secret\x12A\n\x15\n\x05creds\x12\x00\x1a\x00"\x00*\x002'
    b'\x008\x00B\x00\x12\x13\n\x08password\x12\x07s3cr3t!\x12\x11\n\x08username\x12\x05admin'
    b'\x1a\x00\x1a\x00"\x00')
KUBECTL_CREATE_TYPED_SECRET = (
    b'k8s\x00\n\x0c\n\x02v1\x12\x06Secret\x127\n\x14\n\x04half\x12\x00\x1a\x00"\x00*\x002'
    b'\x008\x00B\x00\x12\x0c\n\x07tls.crt\x12\x01x\x1a\x11kubernetes.io/tls\x1a\x00"\x00')


def b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode()


def test_kubectl_create_configmap_reads_as_its_json() -> None:
    assert decode(KUBECTL_CREATE_CONFIGMAP, "ConfigMap") == {
        "apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "app"},
        "data": {"app.conf": "line1\nline2\n", "mode": "fast"},
        "binaryData": {"blob": b64(b"\x00\x01\xffbin")}}


def test_kubectl_create_secret_reads_with_base64_data() -> None:
    assert decode(KUBECTL_CREATE_SECRET, "Secret") == {
        "apiVersion": "v1", "kind": "Secret", "metadata": {"name": "creds"},
        "data": {"password": b64(b"s3cr3t!"), "username": b64(b"admin")}}
    typed = decode(KUBECTL_CREATE_TYPED_SECRET, "Secret")
    assert (typed["type"], typed["data"]) == ("kubernetes.io/tls", {"tls.crt": b64(b"x")})


def test_a_configmap_is_not_read_as_a_secret() -> None:
    with pytest.raises(ProtobufError, match=r"kind \(ConfigMap\) do not match the expected "
                                            r"v1 Secret"):
        decode(KUBECTL_CREATE_CONFIGMAP, "Secret")
