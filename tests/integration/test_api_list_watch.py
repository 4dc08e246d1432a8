"""Selectors, pagination, resourceVersion semantics and watch streams on a real mp-apiserver."""

from __future__ import annotations

import contextlib
import json
import ssl
import threading

import httpx
import pytest

from tests.conftest import admin_tls, wait_until
from tests.integration.rest import (
    POD,
    SVC,
    gauge,
    pod,
    service,
    stalled_watch,
    status_of,
    watch,
)


@pytest.fixture
def api(api_url: str):
    with httpx.Client(verify=admin_tls(), base_url=api_url, timeout=10) as client:
        yield client


def names(listing: dict) -> list[str]:
    return [i["metadata"]["name"] for i in listing["items"]]


def test_label_and_field_selectors(api):
    path = POD.format(ns="default")
    api.post(path, json=pod("a", labels={"app": "web", "tier": "fe"}, node="n1"))
    api.post(path, json=pod("b", labels={"app": "web", "tier": "be"}, node="n2"))
    api.post(path, json=pod("c", labels={"app": "db"}))
    sel = lambda s: names(api.get(path, params={"labelSelector": s}).json())  # noqa: E731
    assert sel("app=web") == ["a", "b"]
    assert sel("app==web,tier!=fe") == ["b"]
    assert sel("app in (web,db),!tier") == ["c"]
    assert sel("tier notin (fe)") == ["b", "c"]
    assert sel("tier") == ["a", "b"]
    fsel = lambda s: names(api.get(path, params={"fieldSelector": s}).json())  # noqa: E731
    assert fsel("spec.nodeName=n1") == ["a"]
    assert fsel("metadata.name!=a,metadata.namespace=default") == ["b", "c"]
    bad = api.get(path, params={"labelSelector": "app in web"})
    assert bad.status_code == 400 and status_of(bad)["reason"] == "BadRequest"
    bad = api.get(path, params={"fieldSelector": "spec.image=x"})
    assert bad.status_code == 400


def test_pagination_is_a_consistent_snapshot(api):
    path = SVC.format(ns="default")
    for i in range(7):
        api.post(path, json=service(f"s{i}"))
    first = api.get(path, params={"limit": 3}).json()
    assert len(first["items"]) == 3 and first["metadata"]["continue"]
    # writes between pages must not show up in later pages of the same list
    api.delete(f"{path}/s5")
    api.post(path, json=service("s9"))
    seen = names(first)
    token = first["metadata"]["continue"]
    while token:
        page = api.get(path, params={"limit": 3, "continue": token}).json()
        assert page["metadata"]["resourceVersion"] == first["metadata"]["resourceVersion"]
        seen += names(page)
        token = page["metadata"].get("continue")
    assert seen == ["kubernetes", "s0", "s1", "s2", "s3", "s4", "s5", "s6"]
    now = names(api.get(path).json())
    assert "s9" in now and "s5" not in now
    bad = api.get(path, params={"continue": "garbage"})
    assert bad.status_code == 400


def test_list_at_exact_resource_version(api):
    path = SVC.format(ns="default")
    rv = api.post(path, json=service("old")).json()["metadata"]["resourceVersion"]
    api.delete(f"{path}/old")
    api.post(path, json=service("new"))
    then = api.get(path, params={"resourceVersion": rv, "resourceVersionMatch": "Exact"}).json()
    assert then["metadata"]["resourceVersion"] == rv
    assert "old" in names(then) and "new" not in names(then)
    bad = api.get(path, params={"resourceVersionMatch": "Exact"})
    assert bad.status_code == 422 and status_of(bad)["details"]["kind"] == "ListOptions"


def test_watch_from_resource_version_streams_every_change(api):
    path = SVC.format(ns="default")
    start = api.get(path).json()["metadata"]["resourceVersion"]
    api.post(path, json=service("w"))
    api.patch(f"{path}/w", content=json.dumps({"metadata": {"labels": {"x": "1"}}}),
              headers={"content-type": "application/merge-patch+json"})
    api.delete(f"{path}/w")
    with watch(api, path, resourceVersion=start, timeoutSeconds=5) as events:
        got = [next(events) for _ in range(3)]
    assert [e["type"] for e in got] == ["ADDED", "MODIFIED", "DELETED"]
    rvs = [int(e["object"]["metadata"]["resourceVersion"]) for e in got]
    assert rvs == sorted(rvs) and rvs[0] > int(start)
    assert got[2]["object"]["metadata"]["name"] == "w"


def test_watch_without_resource_version_starts_with_current_state(api):
    path = SVC.format(ns="default")
    api.post(path, json=service("present"))
    with watch(api, path, timeoutSeconds=5) as events:
        first = [next(events), next(events)]
        assert {e["type"] for e in first} == {"ADDED"}
        assert {e["object"]["metadata"]["name"] for e in first} == {"kubernetes", "present"}
        threading.Thread(target=lambda: httpx.post(
            str(api.base_url) + path, json=service("later"), verify=admin_tls())).start()
        live = next(events)
    assert live["type"] == "ADDED" and live["object"]["metadata"]["name"] == "later"


def test_watch_timeout_ends_the_stream(api):
    with watch(api, SVC.format(ns="default"), resourceVersion=api.get(
            SVC.format(ns="default")).json()["metadata"]["resourceVersion"],
               timeoutSeconds=1) as events:
        assert list(events) == []


def test_object_leaving_a_selector_arrives_as_deleted(api):
    path = POD.format(ns="default")
    api.post(path, json=pod("p", labels={"app": "web"}))
    start = api.get(path).json()["metadata"]["resourceVersion"]
    api.patch(f"{path}/p", content=json.dumps({"metadata": {"labels": {"app": "db"}}}),
              headers={"content-type": "application/merge-patch+json"})
    api.patch(f"{path}/p", content=json.dumps({"metadata": {"labels": {"app": "web"}}}),
              headers={"content-type": "application/merge-patch+json"})
    with watch(api, path, resourceVersion=start, labelSelector="app=web",
               timeoutSeconds=3) as events:
        got = [next(events), next(events)]
    assert [e["type"] for e in got] == ["DELETED", "ADDED"]
    assert got[0]["object"]["metadata"]["labels"] == {"app": "web"}


def test_bookmarks_and_watch_list(api):
    path = SVC.format(ns="default")
    api.post(path, json=service("a"))
    with watch(api, path, sendInitialEvents=True, resourceVersionMatch="NotOlderThan",
               allowWatchBookmarks=True, resourceVersion="", timeoutSeconds=3) as events:
        got = [next(events), next(events), next(events)]
    assert [e["type"] for e in got] == ["ADDED", "ADDED", "BOOKMARK"]
    mark = got[2]["object"]["metadata"]
    assert mark["annotations"] == {"k8s.io/initial-events-end": "true"}
    assert int(mark["resourceVersion"]) >= max(
        int(e["object"]["metadata"]["resourceVersion"]) for e in got[:2])
    # resourceVersionMatch on a watch without sendInitialEvents is rejected, never ignored
    resp = api.get(path, params={"watch": "true", "resourceVersion": "1",
                                 "resourceVersionMatch": "NotOlderThan"})
    assert resp.status_code == 422


def test_compacted_revision_gets_410_expired(make_apiserver):
    server = make_apiserver("--event-retention", "5", "--compaction-interval", "0.1")
    with httpx.Client(verify=admin_tls(), base_url=server.url, timeout=10) as api:
        path = SVC.format(ns="default")
        start = api.get(path).json()["metadata"]["resourceVersion"]
        for i in range(20):
            api.post(path, json=service(f"s{i}"))

        def expired() -> dict | None:
            with watch(api, path, resourceVersion=start, timeoutSeconds=2) as events:
                first = next(events, None)
            return first if first and first["type"] == "ERROR" else None

        err = wait_until(expired, timeout=10, what="the old revision to be compacted")
        assert err["object"]["code"] == 410 and err["object"]["reason"] == "Expired"
        resp = api.get(path, params={"resourceVersion": start, "resourceVersionMatch": "Exact"})
        assert resp.status_code == 410
        # a recent revision still resumes
        recent = api.get(path).json()["metadata"]["resourceVersion"]
        api.post(path, json=service("after"))
        with watch(api, path, resourceVersion=recent, timeoutSeconds=3) as events:
            assert next(events)["object"]["metadata"]["name"] == "after"


def test_future_resource_version_times_out_with_504(api):
    path = SVC.format(ns="default")
    resp = api.get(path, params={"watch": "1", "resourceVersion": "999999"}, timeout=15)
    assert resp.status_code == 504 and status_of(resp)["reason"] == "Timeout"


def test_slow_watcher_is_cut_off_without_blocking_anyone_and_resumes(make_apiserver):
    server = make_apiserver("--watch-buffer", "20")
    path = SVC.format(ns="default")
    with httpx.Client(verify=admin_tls(), base_url=server.url, timeout=30) as api:
        start = api.get(path).json()["metadata"]["resourceVersion"]
        # a client that asks for a watch and then never reads, with a tiny receive buffer
        stalled = stalled_watch(server.port, path, start, admin_tls())
        got: list[str] = []
        raw = bytearray()

        def keep_up() -> None:  # a healthy watcher, reading as fast as events come
            with httpx.Client(verify=admin_tls(), base_url=server.url, timeout=30) as own, \
                    watch(own, path, resourceVersion=start, timeoutSeconds=60) as events:
                got.extend(next(events)["object"]["metadata"]["name"] for _ in range(150))

        def read_the_rest() -> None:  # the stalled client, reading again once cut
            stalled.settimeout(30)
            with contextlib.suppress(ssl.SSLEOFError):
                while not raw.endswith(b"\r\n0\r\n\r\n") and (chunk := stalled.recv(65536)):
                    raw.extend(chunk)

        reader = threading.Thread(target=keep_up)
        reader.start()
        resumed = threading.Thread(target=read_the_rest)
        try:
            big = {"bulk": "x" * 100_000}
            for i in range(150):
                body = service(f"big{i}")
                body["metadata"]["annotations"] = big
                assert api.post(path, json=body).status_code == 201
                # read again as soon as it is cut, well within the grace the server
                # gives a cut stream to end by itself (watchresponse.CUT_GRACE)
                if resumed.ident is None and \
                        (gauge(api, "apiserver_watch_streams_cut") or 0) >= 1:
                    resumed.start()
            assert resumed.ident is not None, "the stalled watch was never cut"
            reader.join(timeout=60)
            assert got == [f"big{i}" for i in range(150)]
            resumed.join(timeout=60)
            assert not resumed.is_alive(), "the stalled watch was not ended"
        finally:
            stalled.close()
    # the stalled stream was ended after what it had buffered; its client resumes
    body = bytes(raw).split(b"\r\n\r\n", 1)[1]
    assert body.endswith(b"0\r\n\r\n"), "the stalled watch should have been ended"
    lines = [ln for ln in _dechunk(body).split(b"\n") if ln]
    seen = [json.loads(ln)["object"] for ln in lines]
    assert 0 < len(seen) < 150
    last = seen[-1]["metadata"]["resourceVersion"]
    with httpx.Client(verify=admin_tls(), base_url=server.url, timeout=30) as api, \
            watch(api, path, resourceVersion=last, timeoutSeconds=10) as events:
        rest = [next(events)["object"]["metadata"]["name"] for _ in range(150 - len(seen))]
    assert [o["metadata"]["name"] for o in seen] + rest == [f"big{i}" for i in range(150)]


def _dechunk(body: bytes) -> bytes:
    out, rest = b"", body
    while rest:
        size_line, _, rest = rest.partition(b"\r\n")
        size = int(size_line, 16)
        if size == 0:
            break
        out += rest[:size]
        rest = rest[size + 2:]
    return out
