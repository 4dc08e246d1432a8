"""The real kubectl making ConfigMaps and Secrets the imperative way, and reading them.

``kubectl create configmap|secret`` post their objects as protobuf (the server reads
them, ``apiserver/protobuf.py``); ``get`` shows the server's Table (NAME, DATA, AGE and
NAME, TYPE, DATA, AGE); ``describe secret`` shows sizes, never values.
"""

from __future__ import annotations

import base64
import json
import subprocess
from pathlib import Path

from tests.compat.conftest import Kubectl, table


def get_json(kubectl: Kubectl, *what: str) -> dict:
    return json.loads(kubectl.out("get", *what, "-o", "json"))


def b64(text: bytes | str) -> str:
    return base64.b64encode(text.encode() if isinstance(text, str) else text).decode()


def test_create_configmap_from_literals_and_files(kubectl: Kubectl, tmp_path: Path) -> None:
    conf = tmp_path / "app.conf"
    conf.write_text("line1\nline2\n")
    blob = tmp_path / "blob"
    blob.write_bytes(b"\x00\x01\xffbin")
    out = kubectl.out("create", "configmap", "app", "--from-literal=mode=fast",
                      f"--from-file={conf}", f"--from-file={blob}")
    assert out.strip() == "configmap/app created"
    cm = get_json(kubectl, "configmap", "app")
    assert cm["data"] == {"mode": "fast", "app.conf": "line1\nline2\n"}
    assert cm["binaryData"] == {"blob": b64(b"\x00\x01\xffbin")}
    assert table(kubectl.out("get", "cm", "app"))[0] == ["NAME", "DATA", "AGE"]
    assert table(kubectl.out("get", "cm", "app"))[1][:2] == ["app", "3"]

    taken = kubectl.run("create", "configmap", "app", "--from-literal=a=b", check=False)
    assert taken.returncode != 0 and "already exists" in taken.stderr


def test_create_secrets_of_each_generator(kubectl: Kubectl, tmp_path: Path) -> None:
    out = kubectl.out("create", "secret", "generic", "creds", "--from-literal=username=admin",
                      "--from-literal=password=s3cr3t!")
    assert out.strip() == "secret/creds created"
    creds = get_json(kubectl, "secret", "creds")
    assert (creds["type"], creds["data"]) == ("Opaque", {"username": b64("admin"),
                                                         "password": b64("s3cr3t!")})

    key, cert = tmp_path / "tls.key", tmp_path / "tls.crt"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                    "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", str(key), "-out",
                    str(cert), "-days", "1", "-subj", "/CN=web"], check=True,
                   capture_output=True)
    kubectl.out("create", "secret", "tls", "web-tls", f"--cert={cert}", f"--key={key}")
    tls = get_json(kubectl, "secret", "web-tls")
    assert tls["type"] == "kubernetes.io/tls"
    assert base64.b64decode(tls["data"]["tls.crt"]) == cert.read_bytes()

    kubectl.out("create", "secret", "docker-registry", "regcred",
                "--docker-server=registry.example", "--docker-username=u",
                "--docker-password=p")
    reg = get_json(kubectl, "secret", "regcred")
    assert reg["type"] == "kubernetes.io/dockerconfigjson"
    auths = json.loads(base64.b64decode(reg["data"][".dockerconfigjson"]))["auths"]
    assert auths["registry.example"]["username"] == "u"

    rows = table(kubectl.out("get", "secrets"))
    assert rows[0] == ["NAME", "TYPE", "DATA", "AGE"]
    assert [r[:3] for r in rows[1:]] == [["creds", "Opaque", "2"],
                                        ["regcred", "kubernetes.io/dockerconfigjson", "1"],
                                        ["web-tls", "kubernetes.io/tls", "2"]]

    typed = kubectl.out("get", "secrets", "--field-selector", "type=kubernetes.io/tls", "-o",
                        "name")
    assert typed.split() == ["secret/web-tls"]

    # a built-in type without its keys: Kubernetes' 422, each missing key named
    bad = kubectl.run("create", "secret", "generic", "half", "--type=kubernetes.io/tls",
                      "--from-literal=tls.crt=x", check=False)
    assert bad.returncode != 0
    assert bad.stderr.strip() == ('error: failed to create secret Secret "half" is invalid: '
                                  'data[tls.key]: Required value')

    described = kubectl.out("describe", "secret", "creds")
    assert "s3cr3t" not in described and "admin" not in described
    assert "password:  7 bytes" in described and "Type:  Opaque" in described


SECRET_YAML = """\
apiVersion: v1
kind: Secret
metadata: {{name: app}}
stringData: {{password: {password}}}
"""


def test_apply_a_secret_with_string_data_twice(kubectl: Kubectl) -> None:
    """``apply`` posts, then patches (server-side apply too) ``stringData``: each lands in
    ``data``, none is kept."""
    for password in ("first", "second"):
        kubectl.out("apply", "-f", "-", stdin=SECRET_YAML.format(password=password))
        secret = get_json(kubectl, "secret", "app")
        assert secret["data"] == {"password": b64(password)} and "stringData" not in secret
    ssa = kubectl.run("apply", "--server-side", "-f", "-", check=False,
                         stdin=SECRET_YAML.format(password="third"))
    assert ssa.returncode == 0, ssa.stderr
    assert get_json(kubectl, "secret", "app")["data"] == {"password": b64("third")}
