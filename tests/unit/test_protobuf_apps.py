"""``kubectl create deployment`` posts its Deployment as protobuf: read as its JSON.

The bytes are what kubectl 1.32 put on the wire, captured from a real run of
``kubectl create deployment hello --image=nginx:1.27 --replicas=3 --port=8080 -- sleep 3600``.
"""

from __future__ import annotations

import pytest

from apiserver.protobuf import ProtobufError, decode

KUBECTL_CREATE_DEPLOYMENT = (
    b'k8s\x00\n\x15\n\x07apps/v1\x12\nDeployment\x12\xd4\x01\n#\n\x05hello\x12\x00\x1a\x00'
    b'"\x00*\x002\x008\x00B\x00Z\x0c\n\x03app\x12\x05hello\x12\x9e\x01\x08\x03\x12\x0e\n'
    b'\x0c\n\x03app\x12\x05hello\x1a\x81\x01\n\x1e\n\x00\x12\x00\x1a\x00"\x00*\x002\x008'
    b'\x00B\x00Z\x0c\n\x03app\x12\x05hello\x12_\x12A\n\x05nginx\x12\nnginx:1.27\x1a\x05sle'
    b'ep\x1a\x043600*\x002\x0b\n\x00\x10\x00\x18\x90?"\x00*\x00B\x00j\x00r\x00\x80\x01\x00'
    b'\x88\x01\x00\x90\x01\x00\xa2\x01\x00\x1a\x002\x00B\x00J\x00R\x00X\x00`\x00h\x00\x82'
    b'\x01\x00\x8a\x01\x00\x9a\x01\x00\xc2\x01\x00"\x02\n\x00(\x008\x00\x1a\x0c\x08\x00'
    b'\x10\x00\x18\x00 \x00(\x008\x00\x1a\x00"\x00')


def test_kubectl_create_deployment_reads_as_its_json() -> None:
    labels = {"app": "hello"}
    assert decode(KUBECTL_CREATE_DEPLOYMENT, "Deployment") == {
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "hello", "labels": labels},
        "spec": {"replicas": 3, "selector": {"matchLabels": labels},
                 "template": {"metadata": {"labels": labels}, "spec": {"containers": [
                     {"name": "nginx", "image": "nginx:1.27", "command": ["sleep", "3600"],
                      "ports": [{"containerPort": 8080}]}]}},
                 "strategy": {}, "minReadySeconds": 0, "paused": False}}


def test_another_kind_in_the_envelope_is_refused() -> None:
    other = KUBECTL_CREATE_DEPLOYMENT.replace(b"\nDeployment", b"\nReplicaSet", 1)
    with pytest.raises(ProtobufError, match=r"kind \(ReplicaSet\) do not match the expected "
                                            r"apps/v1 Deployment"):
        decode(other, "Deployment")
