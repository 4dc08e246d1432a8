"""apiserver.decoding: the limits a request body is decoded within, and duplicate keys."""

from __future__ import annotations

import json
import time

import pytest

from apiserver import decoding
from apiserver.decoding import MAX_DEPTH, MAX_OBJECT_BYTES, decode_json, decode_yaml
from apiserver.errors import BadRequest, RequestTooLarge


def nested(depth: int) -> bytes:
    return b"[" * depth + b"]" * depth


# ------------------------------------------------------------------ JSON


def test_json_without_duplicates_decodes_as_orjson_does_with_its_size():
    body = {"metadata": {"name": "a", "annotations": {"u": "http://x:80", "j": '{"k": "v"}'}},
            "spec": {"ports": [{"port": 80}], "image": "nginx:1.25"}}
    for raw in (json.dumps(body).encode(), json.dumps(body, indent=2).encode(),
                json.dumps(body, separators=(",", ":")).encode()):
        decoded = decode_json(raw)
        assert decoded.document == body and decoded.duplicates == ()
        assert decoded.size == len(json.dumps(body, separators=(",", ":")).encode())


@pytest.mark.parametrize(("raw", "paths"), [
    (b'{"a": 1, "a": 2}', ("a",)),
    (b'{"a" : 1, "b": {"c": [{"x": 1}, {"x": 1, "y": 2, "x": 3}]}, "a": 4}',
     ("a", "b.c[1].x")),
    # a repeated key whose colons hide in strings, escapes and spacing
    (b'{"s": ":::", "t" \n:\t"a\\":b", "s": "::"}', ("s",)),
    (b'{"\\u0061": 1, "a": 2}', ("a",)),  # the same key spelled two ways
    (b'[{"k": 1}, {"k": 1, "k": 1}]', ("[1].k",)),
])
def test_json_duplicate_keys_are_named_by_path_and_the_last_value_wins(raw, paths):
    decoded = decode_json(raw)
    assert decoded.duplicates == paths
    assert decoded.document == json.loads(raw)


def test_json_escapes_that_spell_colons_are_not_taken_for_duplicates():
    assert decode_json(b'{"a": "\\u003a\\u003a", "b": "\\""}').duplicates == ()


@pytest.mark.parametrize("depth", [MAX_DEPTH + 1, 255, 1024, 1025, 100_000])
def test_json_deeper_than_the_limit_is_a_400(depth):
    with pytest.raises(BadRequest, match=f"nested more than {MAX_DEPTH} levels deep"):
        decode_json(nested(depth))


def test_json_at_the_depth_limit_and_wide_bodies_decode():
    assert decode_json(nested(MAX_DEPTH)).document is not None
    wide = json.dumps({"items": [{"a": [i]} for i in range(1000)]}).encode()
    assert len(decode_json(wide).document["items"]) == 1000


@pytest.mark.parametrize("raw", [b"", b"  ", b"{", b'{"a": }', b"nope"])
def test_invalid_json_is_a_400(raw):
    with pytest.raises(BadRequest):
        decode_json(raw)


# ------------------------------------------------------------------ YAML

LOADERS = {"pure-python": decoding._PureLoader}
if hasattr(decoding, "_CLoader"):
    LOADERS["libyaml"] = decoding._CLoader


@pytest.fixture(params=sorted(LOADERS))
def yaml_loader(request, monkeypatch):
    """Every test runs with each loader the server may use (libyaml where installed)."""
    monkeypatch.setattr(decoding, "_Loader", LOADERS[request.param])


def alias_bomb(copies: int, size: int = 100_000) -> bytes:
    return (f"metadata:\n  annotations:\n    pad: &a {'x' * size}\n"
            f"spec:\n  args: [{', '.join(['*a'] * copies)}]\n").encode()


@pytest.mark.usefixtures("yaml_loader")
def test_yaml_alias_bomb_is_refused_quickly_once_its_aliases_pass_the_budget():
    start = time.monotonic()
    with pytest.raises(BadRequest, match="YAML aliases expand to more than 1572864 bytes"):
        decode_yaml(alias_bomb(1000))
    assert time.monotonic() - start < 2


@pytest.mark.usefixtures("yaml_loader")
def test_billion_laughs_is_refused():
    lines = ["a0: &a0 [lol, lol, lol, lol, lol, lol, lol, lol, lol]"]
    for i in range(1, 10):
        lines.append(f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 9)}]")
    with pytest.raises(BadRequest, match="YAML aliases expand"):
        decode_yaml("\n".join(lines).encode())


@pytest.mark.usefixtures("yaml_loader")
def test_yaml_aliases_within_the_budget_expand_into_plain_json():
    decoded = decode_yaml(alias_bomb(10, size=1000))
    args = decoded.document["spec"]["args"]
    assert args == ["x" * 1000] * 10
    assert decoded.size > 11_000


@pytest.mark.usefixtures("yaml_loader")
def test_a_recursive_yaml_alias_is_a_400():
    with pytest.raises(BadRequest, match="refers to a node that contains it"):
        decode_yaml(b"spec: &s {containers: [*s]}\n")


@pytest.mark.usefixtures("yaml_loader")
@pytest.mark.parametrize("raw", [
    b"[" * 100_000,
    b"spec: " + b"[" * 100_000,
    b"a:\n" + b"".join(b" " * (i + 1) + b"b:\n" for i in range(300)),
    b"".join(b" " * i + b"- \n" for i in range(300)),
], ids=["json-looking", "flow", "block-maps", "block-lists"])
def test_yaml_deeper_than_the_limit_is_a_fast_400(raw):
    start = time.monotonic()
    with pytest.raises(BadRequest, match=f"nested more than {MAX_DEPTH} levels deep"):
        decode_yaml(raw)
    assert time.monotonic() - start < 1


@pytest.mark.usefixtures("yaml_loader")
def test_yaml_duplicate_keys_are_named_and_merge_keys_are_not_duplicates():
    raw = (b"base: &b {x: 1}\nm:\n  <<: *b\n  x: 2\n  y: 1\n  y: 2\n"
           b"l:\n- {k: 1, k: 2}\n")
    decoded = decode_yaml(raw)
    assert decoded.duplicates == ("m.y", "l[0].k")
    assert decoded.document["m"] == {"x": 2, "y": 2}


@pytest.mark.usefixtures("yaml_loader")
def test_yaml_reads_as_the_json_it_stands_for():
    decoded = decode_yaml(b"when: 2024-01-01\n1: one\nempty:\n")
    assert decoded.document == {"when": "2024-01-01", "1": "one", "empty": None}


@pytest.mark.usefixtures("yaml_loader")
def test_yaml_that_is_json_is_read_as_json_with_its_duplicates():
    decoded = decode_yaml(b'{"a": 1, "a": 2}')
    assert decoded.document == {"a": 2} and decoded.duplicates == ("a",)
    assert decode_yaml(b"{a: 1, b: [x]}").document == {"a": 1, "b": ["x"]}


@pytest.mark.usefixtures("yaml_loader")
@pytest.mark.parametrize("raw", [b"a: [", b"a: 1\n---\nb: 2\n", b"a: *nowhere\n"])
def test_invalid_yaml_is_a_one_line_400(raw):
    with pytest.raises(BadRequest) as err:
        decode_yaml(raw)
    assert "\n" not in err.value.message


# ------------------------------------------------------------------ size


def test_object_size_limit_is_etcds_and_names_the_size():
    decoding.check_object_size(MAX_OBJECT_BYTES)
    with pytest.raises(RequestTooLarge, match="is 1572865 bytes when encoded, over the limit "
                                              "of 1572864 bytes") as err:
        decoding.check_object_size(MAX_OBJECT_BYTES + 1)
    assert err.value.code == 413


def test_an_object_stored_over_the_limit_before_it_existed_may_shrink_or_be_marked():
    over = MAX_OBJECT_BYTES + 10_000
    decoding.check_object_size(over - 1, stored=over)  # shrinking, still over
    decoding.check_object_size(over + 100, stored=over)  # deletionTimestamp and the like
    with pytest.raises(RequestTooLarge):
        decoding.check_object_size(over + decoding.LEGACY_SLACK_BYTES + 1, stored=over)
    with pytest.raises(RequestTooLarge):  # never over the limit by growing from under it
        decoding.check_object_size(MAX_OBJECT_BYTES + 1, stored=MAX_OBJECT_BYTES - 1)
