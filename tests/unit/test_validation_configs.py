"""ConfigMap and Secret rules as Kubernetes states them: config keys, base64, 1 MiB,
``immutable``, Secret types, and ``stringData`` merged into ``data`` before any rule.

Objects go through the kinds' strategies as the write path does (defaults, then
validation), with the metadata the server would have filled.
"""

from __future__ import annotations

import base64
import copy
from typing import Any

import pytest

from apimachinery import names
from apiserver.registry.configmap import STRATEGY as CONFIGMAPS
from apiserver.registry.secret import STRATEGY as SECRETS
from apiserver.registry.strategy import Strategy
from apiserver.validation.configmap import MAX_DATA_BYTES, decode_base64

META = {"name": "x", "namespace": "default", "uid": "u", "creationTimestamp": "2030-01-01T00:00:00Z"}


def b64(raw: bytes | str) -> str:
    return base64.b64encode(raw.encode() if isinstance(raw, str) else raw).decode()


def create(strategy: Strategy, body: dict[str, Any]) -> tuple[dict, list[tuple[str, str, str]]]:
    obj = {"metadata": dict(META), **copy.deepcopy(body)}
    strategy.prepare_for_create(obj)
    return obj, [(e.field, e.type, e.message) for e in strategy.validate(obj)]


def update(strategy: Strategy, old: dict, body: dict[str, Any]) -> list[tuple[str, str, str]]:
    new = {**copy.deepcopy(old), **copy.deepcopy(body)}
    strategy.prepare_for_update(new, old)
    return [(e.field, e.type, e.message) for e in strategy.validate_update(new, old)]


def fields(errors: list[tuple[str, str, str]]) -> list[str]:
    return [f for f, _, _ in errors]


# ---------------------------------------------------------------------------- keys


@pytest.mark.parametrize(("key", "problems"), [
    ("app.conf", []), ("KEY_NAME", []), (".hidden", []), ("a..b", []), ("x" * 253, []),
    ("x" * 254, ["must be no more than 253 characters"]),
    (".", ["must not be '.'"]), ("..", ["must not be '..'"]),
    ("..data", ["must not start with '..'"]),
    ("a b", ["a valid config key must consist of alphanumeric characters, '-', '_' or '.' "
             "(e.g. 'key.name',  or 'KEY_NAME',  or 'key-name', regex used for validation "
             "is '[-._a-zA-Z0-9]+')"]),
    ("a/b", ["a valid config key must consist of alphanumeric characters, '-', '_' or '.' "
             "(e.g. 'key.name',  or 'KEY_NAME',  or 'key-name', regex used for validation "
             "is '[-._a-zA-Z0-9]+')"]),
])
def test_config_keys(key: str, problems: list[str]) -> None:
    assert names.is_config_map_key(key) == problems


def test_base64_is_gos_std_encoding() -> None:
    assert decode_base64("c2VjcmV0") == b"secret"
    assert decode_base64("c2Vj\ncmV0\r\n") == b"secret"  # line breaks are skipped
    assert decode_base64("") == b""
    for bad, at in (("c2VjcmV0!", 8), ("not base64", 3), ("YQ", 0), ("YWJjZA=", 4)):
        with pytest.raises(ValueError, match=f"illegal base64 data at input byte {at}$"):
            decode_base64(bad)


# ---------------------------------------------------------------------------- ConfigMap


def test_configmap_data_and_binary_data() -> None:
    obj, errors = create(CONFIGMAPS, {"data": {"mode": "fast"},
                                      "binaryData": {"blob": "AAH/\nYmlu"}})
    assert errors == []
    assert obj["binaryData"] == {"blob": b64(b"\x00\x01\xffbin")}  # written back canonical

    _, errors = create(CONFIGMAPS, {"data": {"a b": "1", "k": "v"},
                                    "binaryData": {"k": "AA==", "bad": "!!"}})
    assert fields(errors) == ["binaryData[bad]", "data[a b]", "data[k]"]
    assert errors[-1] == ("data[k]", "FieldValueInvalid", "duplicate of key present in binaryData")
    _, errors = create(CONFIGMAPS, {"data": {"n": 1}})
    assert fields(errors) == ["data"]
    # JSON null is empty, as Go decodes it (``data: {a: }`` in YAML)
    obj, errors = create(CONFIGMAPS, {"data": {"a": None}, "binaryData": {"b": None}})
    assert (errors, obj["data"], obj["binaryData"]) == ([], {"a": ""}, {"b": ""})
    obj, errors = create(SECRETS, {"data": {"a": None}, "stringData": {"b": None}})
    assert (errors, obj["data"]) == ([], {"a": "", "b": ""})


def test_configmap_is_at_most_one_mebibyte() -> None:
    half = "x" * (MAX_DATA_BYTES // 2)
    assert create(CONFIGMAPS, {"data": {"a": half, "b": half}})[1] == []
    _, errors = create(CONFIGMAPS, {"data": {"a": half}, "binaryData": {"b": b64(half + "x")}})
    assert errors == [("", "FieldValueTooLong", "must have at most 1048576 bytes")]


def test_immutable_configmap_keeps_its_data_for_good() -> None:
    old, _ = create(CONFIGMAPS, {"data": {"a": "1"}, "immutable": True})
    frozen = "field is immutable when `immutable` is set"
    assert update(CONFIGMAPS, old, {"data": {"a": "2"}}) == [
        ("data", "FieldValueForbidden", frozen)]
    assert update(CONFIGMAPS, old, {"binaryData": {"b": "AA=="}}) == [
        ("binaryData", "FieldValueForbidden", frozen)]
    assert update(CONFIGMAPS, old, {"immutable": False}) == [
        ("immutable", "FieldValueForbidden", frozen)]
    assert update(CONFIGMAPS, old, {"metadata": {**old["metadata"], "labels": {"a": "b"}}}) == []
    mutable, _ = create(CONFIGMAPS, {"data": {"a": "1"}, "immutable": False})
    assert update(CONFIGMAPS, mutable, {"data": {"a": "2"}, "immutable": True}) == []
    assert fields(create(CONFIGMAPS, {"immutable": "yes"})[1]) == ["immutable"]


# ---------------------------------------------------------------------------- Secret


def test_string_data_is_merged_into_data_and_never_kept() -> None:
    obj, errors = create(SECRETS, {"data": {"user": b64("old"), "keep": b64("k")},
                                   "stringData": {"user": "admin", "pass": "s3cr3t"}})
    assert errors == []
    assert obj == {"metadata": META, "type": "Opaque", "data": {
        "user": b64("admin"), "keep": b64("k"), "pass": b64("s3cr3t")}}
    # keys that come from stringData are still config keys, named where they land
    _, errors = create(SECRETS, {"stringData": {"a b": "x"}})
    assert fields(errors) == ["data[a b]"]
    _, errors = create(SECRETS, {"stringData": {"n": 1}})
    assert fields(errors) == ["stringData[n]"]


def test_secret_data_is_base64_never_echoed() -> None:
    _, errors = create(SECRETS, {"data": {"password": "hunter2!", "ok": b64("x")}})
    assert errors == [("data[password]", "FieldValueInvalid",
                       "illegal base64 data at input byte 7")]
    [error] = SECRETS.validate({"metadata": dict(META), "type": "Opaque",
                                "data": {"password": "hunter2!"}})
    assert "hunter2" not in repr(error.value)
    for body in ({"data": "hunter2"}, {"data": {"k": 7}}, {"stringData": "hunter2"},
                 {"stringData": {"k": 7}}):
        obj = {"metadata": dict(META), **body}
        SECRETS.prepare_for_create(obj)
        [error] = SECRETS.validate(obj)
        assert error.value == "<secret contents redacted>", body


def test_secret_size_counts_decoded_bytes() -> None:
    exact = b64(b"x" * MAX_DATA_BYTES)  # its base64 is a third longer than the limit
    assert create(SECRETS, {"data": {"a": exact}})[1] == []
    _, errors = create(SECRETS, {"data": {"a": exact}, "stringData": {"b": "x"}})
    assert errors == [("data", "FieldValueTooLong", "must have at most 1048576 bytes")]


@pytest.mark.parametrize(("kind", "body", "missing"), [
    ("kubernetes.io/tls", {"stringData": {"tls.crt": "c"}}, ["data[tls.key]"]),
    ("kubernetes.io/tls", {}, ["data[tls.crt]", "data[tls.key]"]),
    ("kubernetes.io/basic-auth", {}, ["data[username]", "data[password]"]),
    ("kubernetes.io/ssh-auth", {"stringData": {"ssh-privatekey": ""}},
     ["data[ssh-privatekey]"]),
    ("kubernetes.io/dockerconfigjson", {}, ["data[.dockerconfigjson]"]),
    ("kubernetes.io/dockercfg", {}, ["data[.dockercfg]"]),
    ("kubernetes.io/service-account-token", {},
     ["metadata.annotations[kubernetes.io/service-account.name]"]),
])
def test_built_in_types_require_their_keys(kind: str, body: dict, missing: list[str]) -> None:
    _, errors = create(SECRETS, {"type": kind, **body})
    assert errors == [(field, "FieldValueRequired", "") for field in missing]


@pytest.mark.parametrize(("kind", "body"), [
    ("kubernetes.io/tls", {"stringData": {"tls.crt": "c", "tls.key": "k"}}),
    ("kubernetes.io/basic-auth", {"stringData": {"password": ""}}),
    ("kubernetes.io/ssh-auth", {"stringData": {"ssh-privatekey": "k"}}),
    ("kubernetes.io/dockerconfigjson", {"stringData": {".dockerconfigjson": '{"auths": {}}'}}),
    ("kubernetes.io/service-account-token",
     {"metadata": {**META, "annotations": {"kubernetes.io/service-account.name": "sa"}}}),
    ("example.com/custom", {}),
])
def test_built_in_types_with_their_keys(kind: str, body: dict) -> None:
    assert create(SECRETS, {"type": kind, **body})[1] == []


def test_docker_config_must_be_a_json_object() -> None:
    _, errors = create(SECRETS, {"type": "kubernetes.io/dockerconfigjson",
                                 "stringData": {".dockerconfigjson": "[1]"}})
    assert errors == [("data[.dockerconfigjson]", "FieldValueInvalid", "must be a JSON object")]


def test_secret_type_and_immutable_data_never_change() -> None:
    old, _ = create(SECRETS, {"type": "example.com/a", "stringData": {"k": "v"}})
    assert update(SECRETS, old, {"type": "Opaque"}) == [
        ("type", "FieldValueInvalid", "field is immutable")]
    assert update(SECRETS, old, {"type": None}) == [  # defaulted to Opaque: a change too
        ("type", "FieldValueInvalid", "field is immutable")]
    frozen, _ = create(SECRETS, {"stringData": {"k": "v"}, "immutable": True})
    assert fields(update(SECRETS, frozen, {"stringData": {"k": "w"}})) == ["data"]
    assert fields(update(SECRETS, frozen, {"immutable": None})) == ["immutable"]
    assert update(SECRETS, frozen, {"stringData": {"k": "v"}}) == []  # the same data
