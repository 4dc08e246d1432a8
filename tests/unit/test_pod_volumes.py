"""ConfigMap, Secret, projected and downward API volumes: which files a volume holds,
with which modes, where containers mount them, and the atomic writer that puts them
on disk (shared with the ServiceAccount token)."""

from __future__ import annotations

import base64
import os
import stat
from pathlib import Path
from typing import Any

import pytest

from apimachinery.podrefs import pod_references
from nodeagent.pods.atomicwriter import (
    FileProjection,
    PayloadError,
    read_payload,
    write_projection,
)
from nodeagent.pods.volumemanager import next_sync_delay, resolve_sub_path
from nodeagent.pods.volumes import (
    MissingObject,
    Mount,
    TokenSource,
    VolumeError,
    container_mounts,
    projected_volumes,
    token_sources,
    volume_files,
)


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


OBJECTS: dict[tuple[str, str], dict[str, Any]] = {
    ("configmaps", "app"): {"data": {"app.conf": "port=80\n", "mode": "fast"},
                            "binaryData": {"logo.bin": b64("\x00\x01")}},
    ("secrets", "creds"): {"data": {"password": b64("s3cret"), "user": b64("admin")}},
}


def lookup(resource: str, name: str) -> dict[str, Any] | None:
    return OBJECTS.get((resource, name))


def pod(**spec: Any) -> dict[str, Any]:
    return {"metadata": {"name": "web", "namespace": "ns1", "uid": "u-1",
                         "labels": {"app": "web", "tier": "front"},
                         "annotations": {"note": 'say "hi"'}},
            "spec": {"containers": [], **spec}}


def files(volume: dict[str, Any], p: dict[str, Any] | None = None,
          **kw: Any) -> dict[str, tuple[bytes, str]]:
    out = volume_files({"name": "v", **volume}, pod=p or pod(), lookup=lookup, **kw)
    return {path: (f.data, oct(f.mode)) for path, f in out.items()}


# -- what a volume holds -----------------------------------------------------------------


def test_a_config_map_volume_holds_every_key_with_binary_data_decoded() -> None:
    assert files({"configMap": {"name": "app"}}) == {
        "app.conf": (b"port=80\n", "0o644"), "logo.bin": (b"\x00\x01", "0o644"),
        "mode": (b"fast", "0o644")}


def test_items_choose_keys_paths_and_modes_under_the_default_mode() -> None:
    volume = {"configMap": {"name": "app", "defaultMode": 0o440, "items": [
        {"key": "app.conf", "path": "conf/app.conf", "mode": 0o600},
        {"key": "mode", "path": "mode.txt"}]}}
    assert files(volume) == {"conf/app.conf": (b"port=80\n", "0o600"),
                             "mode.txt": (b"fast", "0o440")}


def test_a_secret_volume_is_decoded_and_an_fs_group_makes_it_group_readable() -> None:
    volume = {"secret": {"secretName": "creds", "defaultMode": 0o400}}
    assert files(volume) == {"password": (b"s3cret", "0o400"), "user": (b"admin", "0o400")}
    grouped = pod(securityContext={"fsGroup": 2000})
    assert files(volume, grouped)["password"] == (b"s3cret", "0o440")


@pytest.mark.parametrize(("volume", "error", "message"), [
    ({"configMap": {"name": "gone"}}, MissingObject, 'configmap "gone" not found'),
    ({"secret": {"secretName": "gone"}}, MissingObject, 'secret "gone" not found'),
    ({"configMap": {"name": "app", "items": [{"key": "nope", "path": "x"}]}}, VolumeError,
     "configmap references non-existent config key: nope"),
    ({"secret": {"secretName": "creds", "items": [{"key": "nope", "path": "x"}]}},
     VolumeError, "secret references non-existent secret key: nope"),
    ({"configMap": {"name": "app", "items": [{"key": "mode", "path": "../x"}]}}, VolumeError,
     "invalid path '../x': must not start with '..'"),
    ({"projected": {"sources": [{"secret": {"name": "gone"}}]}}, MissingObject,
     'secret "gone" not found'),
    ({"downwardAPI": {"items": [{"path": "x", "fieldRef": {"fieldPath": "spec.nodeName"}}]}},
     VolumeError, "unsupported fieldPath: spec.nodeName"),
])
def test_what_stops_a_volume(volume: dict[str, Any], error: type[Exception],
                             message: str) -> None:
    with pytest.raises(error) as info:
        files(volume)
    assert str(info.value) == message


def test_optional_objects_and_keys_that_are_missing_are_left_out() -> None:
    assert files({"configMap": {"name": "gone", "optional": True}}) == {}
    assert files({"secret": {"secretName": "creds", "optional": True, "items": [
        {"key": "nope", "path": "x"}, {"key": "user", "path": "u"}]}}) == {
        "u": (b"admin", "0o644")}


def test_a_projected_volume_merges_its_sources() -> None:
    token = TokenSource("vault", 3600)
    volume = {"name": "v", "projected": {"defaultMode": 0o444, "sources": [
        {"configMap": {"name": "app", "items": [{"key": "mode", "path": "mode"}]}},
        {"secret": {"name": "creds", "items": [{"key": "user", "path": "s/user",
                                                  "mode": 0o400}]}},
        {"downwardAPI": {"items": [
            {"path": "labels", "fieldRef": {"fieldPath": "metadata.labels"}},
            {"path": "name", "fieldRef": {"fieldPath": "metadata.name"}},
            {"path": "note", "fieldRef": {"fieldPath": "metadata.annotations['note']"}}]}},
        {"serviceAccountToken": {"audience": "vault", "path": "token"}}]}}
    assert token_sources(volume) == [token]
    assert files(volume, tokens={token: "jwt"}) == {
        "labels": (b'app="web"\ntier="front"', "0o444"), "mode": (b"fast", "0o444"),
        "name": (b"web", "0o444"), "note": (b'say "hi"', "0o444"),
        "s/user": (b"admin", "0o400"), "token": (b"jwt", "0o444")}
    with pytest.raises(VolumeError, match="no ServiceAccount token yet"):
        files(volume)


def test_only_projected_types_are_this_modules_and_references_are_found() -> None:
    p = pod(volumes=[{"name": "a", "configMap": {"name": "app"}},
                     {"name": "b", "emptyDir": {}},
                     {"name": "c", "projected": {"sources": [{"secret": {"name": "creds"}}]}}],
            containers=[{"name": "c", "envFrom": [{"configMapRef": {"name": "env"}}],
                         "env": [{"name": "X", "valueFrom": {
                             "secretKeyRef": {"name": "key", "key": "k"}}}]}],
            imagePullSecrets=[{"name": "pull"}])
    assert [v["name"] for v in projected_volumes(p)] == ["a", "c"]
    assert pod_references(p) == {("configmaps", "app"), ("configmaps", "env"),
                                 ("secrets", "creds"), ("secrets", "key"),
                                 ("secrets", "pull")}


# -- where containers mount them ---------------------------------------------------------


def test_mounts_are_parents_first_and_sub_paths_point_into_the_volume() -> None:
    container = {"volumeMounts": [
        {"name": "cfg", "mountPath": "/etc/app/conf.d"},
        {"name": "cfg", "mountPath": "/etc/app.conf", "subPath": "app.conf"},
        {"name": "scratch", "mountPath": "/tmp/x"},
        {"name": "sec", "mountPath": "/etc", "readOnly": True}]}
    assert container_mounts(container, {"cfg": "/v/cfg", "sec": "/v/sec"}) == [
        Mount("sec", "/v/sec", "/etc"),
        Mount("cfg", "/v/cfg/app.conf", "/etc/app.conf", "app.conf"),
        Mount("cfg", "/v/cfg", "/etc/app/conf.d")]


def test_a_sub_path_resolves_to_the_current_file_and_not_outside(tmp_path: Path) -> None:
    d = tmp_path / "cfg"
    write_projection(d, {"app.conf": FileProjection(b"one")}, uid=0, gid=0, mode=0o755, now=0)
    real = resolve_sub_path(Mount("cfg", f"{d}/app.conf", "/x", "app.conf"))
    assert real == str((d / "..data").resolve() / "app.conf")
    (tmp_path / "outside").write_text("no")
    os.symlink("../outside", d / "..escape")
    with pytest.raises(VolumeError, match="is outside it"):
        resolve_sub_path(Mount("cfg", f"{d}/..escape", "/x", "..escape"))
    with pytest.raises(VolumeError, match="does not exist"):
        resolve_sub_path(Mount("cfg", f"{d}/nope", "/x", "nope"))


# -- the atomic writer -------------------------------------------------------------------


def test_write_projection_swaps_data_atomically(tmp_path: Path) -> None:
    d = tmp_path / "sa"
    uid, gid = os.getuid(), os.getgid()
    one = {"token": FileProjection(b"one"), "namespace": FileProjection(b"ns1")}
    assert write_projection(d, one, uid=uid, gid=gid, mode=0o750, now=0)
    assert (d / "token").read_bytes() == b"one" and (d / "namespace").read_bytes() == b"ns1"
    assert os.readlink(d / "token") == "..data/token"
    first = os.readlink(d / "..data")
    assert not write_projection(d, one, uid=uid, gid=gid, mode=0o750, now=50)  # unchanged
    assert os.readlink(d / "..data") == first
    with open(d / "token", "rb") as held:  # a reader in the middle of a refresh
        assert write_projection(d, {**one, "token": FileProjection(b"two")}, uid=uid,
                                gid=gid, mode=0o750, now=100)
        assert (d / "token").read_bytes() == b"two"
        assert os.readlink(d / "..data") != first
        assert held.read() == b"one"
    entries = {p.name for p in d.iterdir()}  # the old data directory is gone
    assert entries == {"..data", os.readlink(d / "..data"), "namespace", "token"}
    assert stat.S_IMODE(d.stat().st_mode) == 0o750
    assert stat.S_IMODE((d / "token").stat().st_mode) == 0o644


def test_nested_paths_modes_groups_and_names_that_go_away(tmp_path: Path) -> None:
    d = tmp_path / "vol"
    write_projection(d, {"conf/a": FileProjection(b"a", 0o600), "b": FileProjection(b"b")},
                     uid=0, gid=0, mode=0o755, now=0, file_group=2000)
    assert os.readlink(d / "conf") == "..data/conf"
    assert (d / "conf" / "a").stat().st_gid == 2000
    assert stat.S_IMODE((d / "conf" / "a").stat().st_mode) == 0o600
    assert read_payload(d) == {"b": FileProjection(b"b", 0o644),
                               "conf/a": FileProjection(b"a", 0o600)}
    write_projection(d, {"b": FileProjection(b"b2")}, uid=0, gid=0, mode=0o755, now=1)
    assert sorted(p.name for p in d.iterdir() if not p.name.startswith("..")) == ["b"]
    with pytest.raises(PayloadError):
        write_projection(d, {"/etc/passwd": FileProjection(b"x")}, uid=0, gid=0, mode=0o755,
                         now=2)
    assert (d / "b").read_bytes() == b"b2"


@pytest.mark.parametrize(("tokens", "retry", "delay"), [
    ([], None, None),          # nothing timed: wait for a change
    ([300.0, 50.0], None, 50.0),  # the first token due
    ([], 4.0, 4.0),            # a failure's retry
    ([0.0], 4.0, 4.0),         # a token due but failing: retried, not in a busy loop
    ([2.0], 4.0, 2.0),
])
def test_when_volumes_sync_again(tokens: list[float], retry: float | None,
                                 delay: float | None) -> None:
    assert next_sync_delay(tokens, retry=retry) == delay
