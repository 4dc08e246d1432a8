"""Decoding limits against a real mp-apiserver: YAML aliases and depth, JSON depth, the
1.5 MiB object limit on every write path, and duplicate keys under fieldValidation."""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from pathlib import Path

import httpx
import pytest

from apiserver.decoding import MAX_OBJECT_BYTES
from tests.conftest import ApiServer
from tests.integration.rest import POD, SVC, pod, service, status_of

YAML = {"Content-Type": "application/yaml"}
MERGE = {"Content-Type": "application/merge-patch+json"}


@pytest.fixture
def server(make_apiserver) -> ApiServer:
    return make_apiserver()


@pytest.fixture
def api(server: ApiServer):
    with server.http(timeout=30) as client:
        yield client


def rss_kib(server: ApiServer) -> int:
    """The server process's resident set, from /proc (kB)."""
    assert server.proc is not None
    for line in Path(f"/proc/{server.proc.pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


def no_traceback(server: ApiServer) -> None:
    log = server.log_path.read_text()
    assert "Traceback" not in log, log[-3000:]


def labels(total_bytes: int, prefix: str = "k") -> dict[str, str]:
    """Valid labels adding up to about ``total_bytes`` of JSON."""
    value = "v" * 60
    return {f"{prefix}{i}": value for i in range(total_bytes // (len(value) + 12))}


# --------------------------------------------------------------------------- YAML


def test_yaml_alias_bomb_is_a_400_and_the_server_stays_small(server, api):
    big = "x" * 100_000
    args = ", ".join(["*a"] * 1000)
    bomb = (f"apiVersion: v1\nkind: Pod\nmetadata:\n  name: bomb\n  annotations:\n"
            f"    pad: &a {big}\nspec:\n  containers:\n  - name: c\n    image: busybox\n"
            f"    args: [{args}]\n").encode()
    assert len(bomb) < 110_000
    before = rss_kib(server)
    for _ in range(5):
        resp = api.post(POD.format(ns="default"), content=bomb, headers=YAML)
        assert resp.status_code == 400, resp.text[:300]
        st = status_of(resp)
        assert st["reason"] == "BadRequest" and "YAML aliases expand" in st["message"]
    assert rss_kib(server) - before < 50 * 1024
    assert api.get(POD.format(ns="default") + "/bomb").status_code == 404
    no_traceback(server)


def test_recursive_yaml_alias_is_a_400(api, server):
    body = b"apiVersion: v1\nkind: Pod\nmetadata: {name: loop}\nspec: &s {containers: [*s]}\n"
    resp = api.post(POD.format(ns="default"), content=body, headers=YAML)
    assert resp.status_code == 400 and "refers to a node that contains it" in resp.text
    no_traceback(server)


@pytest.mark.parametrize("bomb", [b"[" * 100_000, b"spec: " + b"[" * 100_000,
                                  b"spec:\n" + b"".join(b" " * i + b"- \n" for i in range(300))],
                         ids=["brackets", "yaml-flow", "yaml-block"])
def test_yaml_depth_bomb_is_a_fast_400_while_readyz_answers(server, api, bomb):
    """The bombs are refused in a loop on one thread while /readyz is asked on another."""
    stop = threading.Event()
    answers: list[tuple[int, float]] = []

    def bombard() -> None:
        with server.http(timeout=30) as c:
            while not stop.is_set():
                start = time.monotonic()
                r = c.post(POD.format(ns="default"), content=bomb, headers=YAML)
                answers.append((r.status_code, time.monotonic() - start))
                assert "nested more than 100 levels" in r.text, r.text[:300]

    thread = threading.Thread(target=bombard)
    thread.start()
    try:
        deadline = time.monotonic() + 30
        while len(answers) < 5 and time.monotonic() < deadline:
            start = time.monotonic()
            ready = httpx.get(server.readyz_url(), verify=server.readyz_verify(), timeout=5)
            assert ready.status_code == 200 and time.monotonic() - start < 1.0
    finally:
        stop.set()
        thread.join(timeout=30)
    assert len(answers) >= 5
    assert all(code == 400 for code, _ in answers), answers
    assert max(took for _, took in answers) < 2.0, answers
    no_traceback(server)


# --------------------------------------------------------------------------- JSON


@pytest.mark.parametrize("depth", [101, 300, 2000])
def test_json_nested_too_deep_is_a_400_naming_the_limit(server, api, depth):
    body = service("deep")
    body["spec"]["selector"] = None
    raw = json.dumps(body).replace('"selector": null', '"selector": ' + "[" * depth + "]" * depth)
    resp = api.post(SVC.format(ns="default"), content=raw.encode(),
                    headers={"Content-Type": "application/json"})
    assert resp.status_code == 400, resp.text[:300]
    assert "nested more than 100 levels deep" in status_of(resp)["message"]
    no_traceback(server)


# ---------------------------------------------------------------------- object size


def test_object_over_the_limit_is_a_413_with_its_size_and_not_stored(server, api):
    body = service("huge", labels=labels(2_600_000))
    raw = json.dumps(body).encode()
    assert MAX_OBJECT_BYTES < len(raw) < 3 * 1024 * 1024
    resp = api.post(SVC.format(ns="default"), content=raw,
                    headers={"Content-Type": "application/json"})
    assert resp.status_code == 413, resp.text[:300]
    st = status_of(resp)
    assert st["reason"] == "RequestEntityTooLarge"
    assert "bytes when encoded, over the limit of 1572864 bytes" in st["message"]
    assert int(st["message"].split()[3]) > MAX_OBJECT_BYTES
    assert api.get(SVC.format(ns="default") + "/huge").status_code == 404


def test_yaml_that_expands_over_the_limit_is_a_413(api):
    """Aliases within their budget, plain content beyond: the object is too large."""
    big = "x" * 790_000
    doc = (f"apiVersion: v1\nkind: Service\nmetadata:\n  name: grown\n  annotations:\n"
           f"    a: &s {big}\n    b: *s\nspec:\n  ports: [{{port: 80}}]\n").encode()
    assert len(doc) < MAX_OBJECT_BYTES
    resp = api.post(SVC.format(ns="default"), content=doc, headers=YAML)
    assert resp.status_code == 413, resp.text[:300]
    assert api.get(SVC.format(ns="default") + "/grown").status_code == 404


def test_patch_update_and_apply_cannot_grow_an_object_over_the_limit(api):
    path = SVC.format(ns="default") + "/grow"
    created = api.post(SVC.format(ns="default"), json=service("grow")).json()
    one_mib = labels(1_000_000)
    first = api.patch(path, content=json.dumps({"metadata": {"labels": one_mib}}), headers=MERGE)
    assert first.status_code == 200, first.text[:300]
    rv = first.json()["metadata"]["resourceVersion"]
    # each patch body is under the limit; the patched object is not
    more = {"metadata": {"labels": labels(1_000_000, prefix="m")}}
    resp = api.patch(path, content=json.dumps(more), headers=MERGE)
    assert resp.status_code == 413, resp.text[:300]
    assert "over the limit of 1572864 bytes" in status_of(resp)["message"]
    strategic = api.patch(path, content=json.dumps(more),
                          headers={"Content-Type": "application/strategic-merge-patch+json"})
    assert strategic.status_code == 413, strategic.text[:300]
    json_patch = [{"op": "add", "path": "/metadata/labels",
                   "value": {**one_mib, **more["metadata"]["labels"]}}]
    resp = api.patch(path, content=json.dumps(json_patch),
                     headers={"Content-Type": "application/json-patch+json"})
    assert resp.status_code == 413, resp.text[:300]
    put = first.json()
    put["metadata"]["labels"].update(more["metadata"]["labels"])
    assert api.put(path, json=put).status_code == 413
    apply = service("grow", labels={**one_mib, **more["metadata"]["labels"]})
    resp = api.patch(path, params={"fieldManager": "t"}, content=json.dumps(apply),
                     headers={"Content-Type": "application/apply-patch+yaml"})
    assert resp.status_code == 413, resp.text[:300]
    got = api.get(path).json()
    assert got["metadata"]["resourceVersion"] == rv and got["metadata"]["uid"] == \
        created["metadata"]["uid"]


# ------------------------------------------------------------------ duplicate keys

DUPLICATED = (b'{"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "dup", "name": "dup2"},'
              b' "spec": {"containers": [{"name": "c", "image": "busybox", "image": "nginx",'
              b' "bogus": 1}]}}')


def test_duplicate_keys_are_an_error_under_strict(server, api):
    resp = api.post(POD.format(ns="default"), params={"fieldValidation": "Strict"},
                    content=DUPLICATED, headers={"Content-Type": "application/json"})
    assert resp.status_code == 400, resp.text
    assert status_of(resp)["message"] == (
        'Pod in version "v1" cannot be handled as a Pod: strict decoding error: '
        'duplicate field "metadata.name", duplicate field "spec.containers[0].image", '
        'unknown field "spec.containers[0].bogus"')
    yaml_body = (b"apiVersion: v1\nkind: Pod\nmetadata:\n  name: dup\n  name: dup2\n"
                 b"spec:\n  containers: [{name: c, image: busybox}]\n")
    resp = api.post(POD.format(ns="default"), params={"fieldValidation": "Strict"},
                    content=yaml_body, headers=YAML)
    assert resp.status_code == 400 and 'duplicate field \\"metadata.name\\"' in resp.text
    for name in ("dup", "dup2"):
        assert api.get(POD.format(ns="default") + f"/{name}").status_code == 404
    no_traceback(server)


def test_duplicate_keys_are_a_warning_under_warn_the_default_and_silent_under_ignore(api):
    for n, params in enumerate(({"fieldValidation": "Warn"}, {})):
        body = DUPLICATED.replace(b"dup2", f"dup{n}".encode())
        resp = api.post(POD.format(ns="default"), params=params, content=body,
                        headers={"Content-Type": "application/json"})
        assert resp.status_code == 201, resp.text
        assert resp.headers.get_list("warning") == [
            '299 - "duplicate field \\"metadata.name\\""',
            '299 - "duplicate field \\"spec.containers[0].image\\""',
            '299 - "unknown field \\"spec.containers[0].bogus\\""'], params
        created = resp.json()
        assert created["metadata"]["name"] == f"dup{n}"  # the last one wins, as in Kubernetes
        assert created["spec"]["containers"][0]["image"] == "nginx"
    resp = api.post(POD.format(ns="default"), params={"fieldValidation": "Ignore"},
                    content=DUPLICATED, headers={"Content-Type": "application/json"})
    assert resp.status_code == 201 and "warning" not in resp.headers
    assert resp.json()["metadata"]["name"] == "dup2"


def test_a_patch_with_duplicate_keys_is_refused_under_strict_and_changes_nothing(api):
    path = POD.format(ns="default") + "/patched"
    rv = api.post(POD.format(ns="default"), json=pod("patched")).json()[
        "metadata"]["resourceVersion"]
    patch = b'{"metadata": {"labels": {"a": "1", "a": "2"}}}'
    resp = api.patch(path, params={"fieldValidation": "Strict"}, content=patch, headers=MERGE)
    assert resp.status_code == 400, resp.text
    assert 'strict decoding error: duplicate field \\"metadata.labels.a\\"' in resp.text
    assert api.get(path).json()["metadata"]["resourceVersion"] == rv
    warned = api.patch(path, content=patch, headers=MERGE)
    assert warned.status_code == 200
    assert warned.headers.get_list("warning") == [
        '299 - "duplicate field \\"metadata.labels.a\\""']
    assert warned.json()["metadata"]["labels"] == {"a": "2"}


def test_an_object_stored_over_the_limit_before_it_existed_can_still_be_shrunk_and_deleted(
        server, api):
    """Earlier versions stored anything (a 100 MB Pod): such an object must not be stuck,
    unable to get its deletion marked or its finalizer removed."""
    path = SVC.format(ns="default") + "/legacy"
    body = service("legacy")
    body["metadata"]["finalizers"] = ["example.com/keep"]
    assert api.post(SVC.format(ns="default"), json=body).status_code == 201
    server.stop()
    with sqlite3.connect(server.db_path) as db:  # what an earlier version let through
        (data,) = db.execute("SELECT data FROM objects WHERE name = 'legacy'").fetchone()
        obj = json.loads(data)
        obj["metadata"]["labels"] = labels(2_000_000)
        db.execute("UPDATE objects SET data = ? WHERE name = 'legacy'", (json.dumps(obj),))
    server.start()
    grow = api.patch(path, content=json.dumps({"metadata": {"labels": labels(20_000, "g")}}),
                     headers=MERGE)
    assert grow.status_code == 413, grow.text[:300]
    # kubectl edit / replace sends the whole object back, a few bytes changed
    whole = api.get(path).json()
    whole["metadata"]["annotations"] = {"edited": "yes"}
    edited = api.put(path, json=whole)
    assert edited.status_code == 200, edited.text[:300]
    assert edited.json()["metadata"]["annotations"] == {"edited": "yes"}
    whole = edited.json()
    whole["metadata"]["annotations"]["more"] = "x" * 2_000  # past the 1 KiB slack
    assert api.put(path, json=whole).status_code == 413
    marked = api.delete(path)
    assert marked.status_code == 200, marked.text[:300]
    assert marked.json()["metadata"]["deletionTimestamp"]
    gone = api.patch(path, content=json.dumps({"metadata": {"finalizers": None}}),
                     headers=MERGE)
    assert gone.status_code == 200, gone.text[:300]
    assert api.get(path).status_code == 404


def test_a_large_yaml_body_is_decoded_off_the_event_loop(server, api):
    """A 2.5 MB YAML takes seconds to read (and is then too large to store); /readyz
    answers meanwhile."""
    lines = "\n".join(f"    k{i}: {'v' * 60}" for i in range(36_000))
    doc = (f"apiVersion: v1\nkind: Service\nmetadata:\n  name: big\n  labels:\n{lines}\n"
           f"spec:\n  ports: [{{port: 80}}]\n").encode()
    done: list[httpx.Response] = []

    def post() -> None:
        with server.http(timeout=120) as c:
            done.append(c.post(SVC.format(ns="default"), content=doc, headers=YAML))

    thread = threading.Thread(target=post)
    thread.start()
    answered_meanwhile = 0
    try:
        while thread.is_alive():
            start = time.monotonic()
            ready = httpx.get(server.readyz_url(), verify=server.readyz_verify(), timeout=5)
            took = time.monotonic() - start
            assert ready.status_code == 200 and took < 1.0, took
            answered_meanwhile += thread.is_alive()
    finally:
        thread.join(timeout=120)
    assert len(doc) < 3 * 1024 * 1024
    assert done and done[0].status_code == 413, done[0].text[:300] if done else "no answer"
    assert answered_meanwhile >= 3
