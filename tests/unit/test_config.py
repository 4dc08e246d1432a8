"""Client configuration: precedence of flag, environment and kubeconfig; kubeconfig parsing."""

from __future__ import annotations

import base64
import shutil
import stat
import subprocess
from pathlib import Path

import pytest
import yaml

from client.config import (
    DEFAULT_SERVER,
    ClientConfig,
    ConfigError,
    load_config,
    read_kubeconfig,
    write_kubeconfig,
)


@pytest.fixture(autouse=True)
def clean_env(monkeypatch, tmp_path):
    """No real environment leaks in: no MINIPLANE_SERVER/KUBECONFIG, HOME is empty."""
    monkeypatch.delenv("MINIPLANE_SERVER", raising=False)
    monkeypatch.delenv("KUBECONFIG", raising=False)
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    return home


def kubeconfig(path: Path, *, server: str = "https://kc.example:6443", context: str = "ctx",
               namespace: str | None = "team", user: dict | None = None,
               cluster: dict | None = None, current: str | None = "ctx") -> Path:
    ctx: dict = {"cluster": "c1", "user": "u1"}
    if namespace:
        ctx["namespace"] = namespace
    doc = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "other", "cluster": {"server": "https://wrong:1"}},
                     {"name": "c1", "cluster": cluster if cluster is not None
                      else {"server": server}}],
        "users": [{"name": "u1", "user": user if user is not None else {"token": "s3cret"}}],
        "contexts": [{"name": "other", "context": {"cluster": "other", "user": "u1"}},
                     {"name": context, "context": ctx}],
    }
    if current is not None:
        doc["current-context"] = current
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(doc))
    return path


# -- precedence --------------------------------------------------------------------------


def test_default_when_nothing_is_configured():
    assert load_config() == ClientConfig(server=DEFAULT_SERVER)


def test_explicit_server_beats_env_and_kubeconfig(monkeypatch, tmp_path):
    monkeypatch.setenv("MINIPLANE_SERVER", "http://env:1")
    monkeypatch.setenv("KUBECONFIG", str(kubeconfig(tmp_path / "kc")))
    assert load_config(server="http://flag:2/").server == "http://flag:2"


def test_env_beats_kubeconfig_and_ignores_implicit_kubeconfig(monkeypatch, tmp_path):
    monkeypatch.setenv("MINIPLANE_SERVER", "http://env:1")
    monkeypatch.setenv("KUBECONFIG", str(kubeconfig(tmp_path / "kc")))
    cfg = load_config()
    # an implicit kubeconfig may belong to another cluster: its token isn't sent
    assert cfg == ClientConfig(server="http://env:1")


def test_explicit_server_with_named_kubeconfig_keeps_its_credentials(tmp_path):
    cfg = load_config(server="http://flag:2", kubeconfig=kubeconfig(tmp_path / "kc"))
    assert (cfg.server, cfg.token, cfg.namespace) == ("http://flag:2", "s3cret", "team")


def test_explicit_server_ignores_a_broken_implicit_kubeconfig(clean_env):
    (clean_env / ".kube").mkdir()
    (clean_env / ".kube" / "config").write_text("{not: yaml: [")
    assert load_config(server="http://flag:2").server == "http://flag:2"


def test_kubeconfig_argument_beats_env_kubeconfig(monkeypatch, tmp_path):
    monkeypatch.setenv("KUBECONFIG", str(kubeconfig(tmp_path / "env", server="https://env:1")))
    cfg = load_config(kubeconfig=kubeconfig(tmp_path / "arg", server="https://arg:2"))
    assert cfg.server == "https://arg:2"


def test_kubeconfig_env_uses_first_existing_path(monkeypatch, tmp_path):
    second = kubeconfig(tmp_path / "second", server="https://second:1")
    third = kubeconfig(tmp_path / "third", server="https://third:1")
    monkeypatch.setenv("KUBECONFIG", f"{tmp_path / 'missing'}::{second}:{third}")
    assert load_config().server == "https://second:1"


def test_kubeconfig_env_with_no_existing_file_means_default(monkeypatch, tmp_path, clean_env):
    kubeconfig(clean_env / ".kube" / "config", server="https://home:1")
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "missing"))
    assert load_config().server == DEFAULT_SERVER  # as kubectl: no fallback to ~/.kube


def test_home_kubeconfig_is_used_when_it_exists(clean_env):
    kubeconfig(clean_env / ".kube" / "config", server="https://home:1")
    cfg = load_config()
    assert (cfg.server, cfg.token, cfg.namespace) == ("https://home:1", "s3cret", "team")


# -- kubeconfig contents ---------------------------------------------------------------


def test_current_context_selects_cluster_user_and_namespace(tmp_path):
    cfg = read_kubeconfig(kubeconfig(tmp_path / "kc"))
    assert cfg == ClientConfig(server="https://kc.example:6443", token="s3cret",
                               namespace="team")


def test_context_without_namespace_means_default(tmp_path):
    assert read_kubeconfig(kubeconfig(tmp_path / "kc", namespace=None)).namespace == "default"


def test_file_paths_resolve_relative_to_the_kubeconfig(tmp_path):
    path = kubeconfig(tmp_path / "conf" / "kc",
                      cluster={"server": "https://x:1", "certificate-authority": "ca.crt",
                               "insecure-skip-tls-verify": True},
                      user={"client-certificate": "/abs/client.crt",
                            "client-key": "keys/client.key"})
    cfg = read_kubeconfig(path)
    assert cfg.ca_file == str(tmp_path / "conf" / "ca.crt")
    assert cfg.client_cert == "/abs/client.crt"
    assert cfg.client_key == str(tmp_path / "conf" / "keys" / "client.key")
    assert cfg.insecure is True
    assert cfg.token is None


def test_embedded_data_is_written_to_private_files(tmp_path):
    def b64(text: str) -> str:
        return base64.b64encode(text.encode()).decode()

    path = kubeconfig(tmp_path / "kc",
                      cluster={"server": "https://x:1", "certificate-authority-data": b64("CA")},
                      user={"client-certificate-data": b64("CERT"),
                            "client-key-data": b64("KEY")})
    cfg = read_kubeconfig(path)
    assert Path(cfg.ca_file).read_text() == "CA"
    assert Path(cfg.client_cert).read_text() == "CERT"
    assert Path(cfg.client_key).read_text() == "KEY"
    assert stat.S_IMODE(Path(cfg.client_key).stat().st_mode) == 0o600


def test_token_file(tmp_path):
    (tmp_path / "token").write_text("from-file\n")
    cfg = read_kubeconfig(kubeconfig(tmp_path / "kc", user={"tokenFile": "token"}))
    assert cfg.token == "from-file"


# -- errors: one line, ConfigError ---------------------------------------------------------


@pytest.mark.parametrize(("content", "message"), [
    ("{not: yaml: [", "not valid YAML"),
    ("- a\n- b\n", "not a mapping"),
    ("apiVersion: v1\nkind: Config\n", "current-context is not set"),
])
def test_malformed_files(tmp_path, content, message):
    path = tmp_path / "kc"
    path.write_text(content)
    with pytest.raises(ConfigError, match=message) as err:
        load_config(kubeconfig=path)
    assert "\n" not in str(err.value)


def test_missing_named_file(tmp_path):
    with pytest.raises(ConfigError, match="cannot read kubeconfig"):
        load_config(kubeconfig=tmp_path / "nope")


def test_missing_context(tmp_path):
    with pytest.raises(ConfigError, match='context "ghost" not found'):
        load_config(kubeconfig=kubeconfig(tmp_path / "kc", current="ghost"))


def test_missing_cluster_server(tmp_path):
    with pytest.raises(ConfigError, match="has no server"):
        load_config(kubeconfig=kubeconfig(tmp_path / "kc", cluster={}))


def test_bad_base64(tmp_path):
    path = kubeconfig(tmp_path / "kc", cluster={"server": "https://x:1",
                                                "certificate-authority-data": "%%%"})
    with pytest.raises(ConfigError, match="not valid base64"):
        load_config(kubeconfig=path)


def test_bad_server_url():
    with pytest.raises(ConfigError, match="must start with http"):
        load_config(server="localhost:6443")


def test_config_error_is_a_value_error():
    assert issubclass(ConfigError, ValueError)


# -- write_kubeconfig ------------------------------------------------------------------------


def test_written_kubeconfig_round_trips(tmp_path):
    path = tmp_path / "new" / "config"
    write_kubeconfig(path, server="http://127.0.0.1:7000", cluster_name="mp-abc",
                     namespace="kube-system")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    cfg = load_config(kubeconfig=path)
    assert cfg == ClientConfig(server="http://127.0.0.1:7000", namespace="kube-system")


def test_write_kubeconfig_merges_into_an_existing_file(tmp_path):
    path = kubeconfig(tmp_path / "kc")
    write_kubeconfig(path, server="http://127.0.0.1:7000", cluster_name="mp")
    write_kubeconfig(path, server="http://127.0.0.1:7001", cluster_name="mp")
    doc = yaml.safe_load(path.read_text())
    assert doc["current-context"] == "mp"
    assert [c["name"] for c in doc["contexts"]] == ["other", "ctx", "mp"]
    assert [c["name"] for c in doc["clusters"]] == ["other", "c1", "mp"]
    assert load_config(kubeconfig=path).server == "http://127.0.0.1:7001"


def test_written_kubeconfig_carries_the_ca_and_credentials(tmp_path):
    path = kubeconfig(tmp_path / "kc")
    write_kubeconfig(path, server="https://127.0.0.1:7000", cluster_name="mp",
                     ca_pem=b"CA PEM", cert_pem=b"CERT PEM", key_pem=b"KEY PEM")
    cfg = load_config(kubeconfig=path)
    assert cfg.server == "https://127.0.0.1:7000" and cfg.token is None
    assert [Path(f).read_bytes() for f in (cfg.ca_file, cfg.client_cert, cfg.client_key)] \
        == [b"CA PEM", b"CERT PEM", b"KEY PEM"]
    write_kubeconfig(path, server="https://127.0.0.1:7000", cluster_name="mp", token="t0k")
    cfg = load_config(kubeconfig=path)  # replaced, not merged: the old cert is gone
    assert (cfg.token, cfg.client_cert, cfg.ca_file) == ("t0k", None, None)
    assert [c["name"] for c in yaml.safe_load(path.read_text())["users"]] == \
        ["u1", "mp"]


def test_default_server_is_https():
    assert DEFAULT_SERVER == "https://127.0.0.1:6443"


@pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl is not installed")
def test_kubectl_accepts_the_written_kubeconfig(tmp_path):
    path = tmp_path / "config"
    write_kubeconfig(path, server="http://127.0.0.1:7000", cluster_name="mp-x",
                     namespace="demo")
    out = subprocess.run(
        ["kubectl", "--kubeconfig", str(path), "config", "view", "--minify", "-o",
         "jsonpath={.clusters[0].cluster.server} {.contexts[0].context.namespace}"],
        capture_output=True, text=True, timeout=30, check=True)
    assert out.stdout == "http://127.0.0.1:7000 demo"
    ctx = subprocess.run(["kubectl", "--kubeconfig", str(path), "config", "current-context"],
                         capture_output=True, text=True, timeout=30, check=True)
    assert ctx.stdout.strip() == "mp-x"
