"""Watch fan-out and the list cache on a real mp-apiserver: a stuck watcher costs only
itself, shared events reach every kind of watcher as its own view, and lists that
accept any recent state are served from the watch cache."""

from __future__ import annotations

import contextlib
import ssl
import threading

import httpx
import pytest

from apiserver.watchresponse import CUT_GRACE
from tests.conftest import ApiServer, admin_tls, wait_until
from tests.integration.rest import NS, SVC, gauge, service, stalled_watch, watch


@pytest.fixture
def api(shared_api: ApiServer):
    with shared_api.http(timeout=30) as client:
        yield client


def make_namespace(api: httpx.Client, name: str) -> None:
    assert api.post(NS, json={"metadata": {"name": name}}).status_code == 201


def names(listing: dict) -> list[str]:
    return [i["metadata"]["name"] for i in listing["items"]]


def test_a_watcher_that_never_reads_is_cut_while_writes_and_other_watchers_go_on(
        make_apiserver):
    server = make_apiserver("--watch-buffer", "20")
    path = SVC.format(ns="default")
    with httpx.Client(verify=admin_tls(), base_url=server.url, timeout=30) as api:
        start = api.get(path).json()["metadata"]["resourceVersion"]
        stalled = stalled_watch(server.port, path, start, admin_tls())
        got: dict[int, list[str]] = {0: [], 1: []}

        def keep_up(n: int) -> None:
            with httpx.Client(verify=admin_tls(), base_url=server.url, timeout=60) as own, \
                    watch(own, path, resourceVersion=start, timeoutSeconds=120) as events:
                got[n].extend(next(events)["object"]["metadata"]["name"] for _ in range(150))

        readers = [threading.Thread(target=keep_up, args=(n,)) for n in got]
        for r in readers:
            r.start()
        try:
            wait_until(lambda: gauge(api, "apiserver_watchers") == 3, what="3 watchers")
            big = {"bulk": "x" * 100_000}
            for i in range(150):
                body = service(f"big{i}")
                body["metadata"]["annotations"] = big
                assert api.post(path, json=body).status_code == 201
            for r in readers:
                r.join(timeout=120)
            assert got[0] == got[1] == [f"big{i}" for i in range(150)]
            # the stuck stream left the hub as soon as it fell behind: it holds no
            # buffer and no subscription while its client still does not read
            wait_until(lambda: gauge(api, "apiserver_watch_streams_cut") == 1,
                       what="the stuck watch to be cut")
            wait_until(lambda: gauge(api, "apiserver_watchers") == 0,
                       what="no subscription left")
            # and writes still answer at once
            assert api.post(path, json=service("after")).status_code == 201
        finally:
            stalled.close()


def test_a_stuck_watch_is_dropped_after_its_grace_not_left_to_a_tls_close(make_apiserver):
    """Once a cut watch's client has not read for ``CUT_GRACE``, its TCP connection is
    aborted: a graceful TLS close would wait (uvloop: 30 s more) to flush what the
    client never reads, the connection counted busy (not evictable at the cap)
    meanwhile, and uvicorn would log an error for every slow watcher."""
    server = make_apiserver("--watch-buffer", "20")
    path = SVC.format(ns="default")
    with httpx.Client(verify=admin_tls(), base_url=server.url, timeout=30) as api:
        start = api.get(path).json()["metadata"]["resourceVersion"]
        stalled = stalled_watch(server.port, path, start, admin_tls())
        try:
            wait_until(lambda: gauge(api, "apiserver_watchers") == 1, what="the watch")
            assert gauge(api, "apiserver_connections") == 2  # ours and the stalled one
            big = {"bulk": "x" * 100_000}
            for i in range(300):  # writes until the stalled watch falls behind
                body = service(f"big{i}")
                body["metadata"]["annotations"] = big
                assert api.post(path, json=body).status_code == 201
                if gauge(api, "apiserver_watch_streams_cut") == 1:
                    break
            else:
                raise AssertionError("the stalled watch was never cut")
            # its grace over, the server lets the connection go at once (bound: half
            # the 30 s a TLS close would wait on top)
            wait_until(lambda: gauge(api, "apiserver_connections") == 1,
                       timeout=CUT_GRACE + 15, what="the stuck connection to be dropped")
            stalled.settimeout(5)
            with contextlib.suppress(ConnectionResetError, ssl.SSLError):
                while stalled.recv(65536):
                    pass  # what was in flight, then EOF; an abort may reset at once
        finally:
            stalled.close()
    log = server.log_path.read_text()
    assert "ASGI callable returned without completing response" not in log, log[-3000:]
    assert "stopped reading; its connection is closed" in log


def test_namespace_and_selector_watchers_each_get_their_own_view_of_shared_events(api):
    make_namespace(api, "fan-a")
    make_namespace(api, "fan-b")
    a, b = SVC.format(ns="fan-a"), SVC.format(ns="fan-b")
    start = api.get(a).json()["metadata"]["resourceVersion"]
    streams = {
        "a": ("/api/v1/namespaces/fan-a/services", {}),
        "b": ("/api/v1/namespaces/fan-b/services", {}),
        "web": ("/api/v1/services", {"labelSelector": "app=web"}),
    }
    expect = {
        "a": [("ADDED", "x"), ("ADDED", "y"), ("MODIFIED", "x"), ("DELETED", "y")],
        "b": [("ADDED", "z"), ("MODIFIED", "z")],
        "web": [("ADDED", "x"), ("ADDED", "z"), ("DELETED", "x"), ("MODIFIED", "z")],
    }
    got: dict[str, list[tuple[str, str]]] = {k: [] for k in streams}
    ready = threading.Barrier(len(streams) + 1)

    def follow(key: str) -> None:
        path, params = streams[key]
        with httpx.Client(verify=admin_tls(), base_url=str(api.base_url), timeout=30) as own, \
                watch(own, path, resourceVersion=start, timeoutSeconds=60, **params) as events:
            ready.wait()
            for _ in expect[key]:
                e = next(events)
                got[key].append((e["type"], e["object"]["metadata"]["name"]))

    threads = [threading.Thread(target=follow, args=(k,)) for k in streams]
    for t in threads:
        t.start()
    ready.wait()
    api.post(a, json=service("x", ns="fan-a", labels={"app": "web"}))
    api.post(a, json=service("y", ns="fan-a", labels={"app": "db"}))
    api.post(b, json=service("z", ns="fan-b", labels={"app": "web"}))
    x = api.get(f"{a}/x").json()
    x["metadata"]["labels"] = {"app": "db"}  # x leaves the selector
    assert api.put(f"{a}/x", json=x).status_code == 200
    api.delete(f"{a}/y")
    z = api.get(f"{b}/z").json()
    z["metadata"]["annotations"] = {"touched": "yes"}
    assert api.put(f"{b}/z", json=z).status_code == 200
    for t in threads:
        t.join(timeout=60)
    assert got == expect


def test_lists_at_resource_version_0_come_from_the_cache_and_match_storage(api):
    make_namespace(api, "fan-cache")
    path = SVC.format(ns="fan-cache")
    api.get(path, params={"resourceVersion": "0"})  # the cache follows from here on
    for i in range(12):
        api.post(path, json=service(f"s{i:02}", ns="fan-cache",
                                    labels={"half": "low" if i < 6 else "high"}))
    api.delete(f"{path}/s03")
    s04 = api.get(f"{path}/s04").json()
    s04["metadata"]["labels"] = {"half": "high"}
    api.put(f"{path}/s04", json=s04)
    consistent = api.get(path).json()
    rv = consistent["metadata"]["resourceVersion"]

    def cached(**params: str) -> dict:
        return api.get(path, params={"resourceVersion": "0", **params}).json()

    wait_until(lambda: cached()["items"] == consistent["items"], what="the cache to catch up")
    # not older than the consistent read's revision: the same objects, no wait needed
    newer = api.get(path, params={"resourceVersion": rv,
                                  "resourceVersionMatch": "NotOlderThan"}).json()
    assert newer["items"] == consistent["items"]
    assert int(newer["metadata"]["resourceVersion"]) >= int(rv)
    # kube-apiserver's watch cache ignores limit for resourceVersion=0: all, no continue
    whole = cached(limit="2")
    assert names(whole) == names(consistent) and "continue" not in whole["metadata"]
    # a paged consistent list still pages (storage)
    paged = api.get(path, params={"limit": "2"}).json()
    assert len(paged["items"]) == 2 and paged["metadata"]["continue"]
    # selectors and the all-namespaces view agree with storage
    high = {"labelSelector": "half=high"}
    assert names(cached(**high)) == names(api.get(path, params=high).json()) \
        == ["s04"] + [f"s{i:02}" for i in range(6, 12)]
    everywhere = api.get("/api/v1/services", params={"resourceVersion": "0",
                                                     "fieldSelector":
                                                     "metadata.namespace=fan-cache"}).json()
    assert everywhere["items"] == consistent["items"]
    # a watch from resourceVersion=0 starts with the same state
    with watch(api, path, resourceVersion="0", timeoutSeconds=5) as events:
        initial = [next(events)["object"] for _ in consistent["items"]]
    assert initial == consistent["items"]
