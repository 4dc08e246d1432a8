"""Watch streams never lose an event; acknowledged writes survive kill -9; a write
that times out leaves the writer serving."""

from __future__ import annotations

import json
import sqlite3
import threading
import uuid

import httpx
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.conftest import admin_tls, wait_until
from tests.integration.rest import NS, SVC, service

NAMES = ["a", "b", "c", "d"]

write_op = st.tuples(st.just("write"), st.sampled_from(["create", "label", "delete"]),
                     st.sampled_from(NAMES), st.integers(0, 3))
watch_op = st.tuples(st.sampled_from(["open", "read", "close"]), st.integers(0, 2),
                     st.integers(1, 5))
program = st.lists(st.one_of(write_op, write_op, watch_op), min_size=5, max_size=40)


class Watcher:
    """Keeps a cache from a watch stream it opens, reads part of, and drops at random."""

    def __init__(self, client: httpx.Client, path: str, start_rv: int) -> None:
        self.client, self.path = client, path
        self.rv = start_rv
        self.cache: dict[str, dict] = {}
        self.seen: list[int] = []
        self._cm = None
        self._lines = None

    def open(self) -> None:
        if self._lines is not None:
            return
        self._cm = self.client.stream("GET", self.path, params={
            "watch": "true", "resourceVersion": str(self.rv), "timeoutSeconds": "30"})
        resp = self._cm.__enter__()
        assert resp.status_code == 200
        self._lines = resp.iter_lines()

    def read(self, n: int, until: int) -> None:
        """Read up to ``n`` events, never past revision ``until`` (so nothing blocks)."""
        if self._lines is None:
            return
        for _ in range(n):
            if self.rv >= until:
                return
            self._apply(json.loads(next(self._lines)))

    def catch_up(self, until: int) -> None:
        self.open()
        while self.rv < until:
            self._apply(json.loads(next(self._lines)))

    def close(self) -> None:
        if self._cm is not None:
            self._cm.__exit__(None, None, None)
        self._cm, self._lines = None, None

    def _apply(self, event: dict) -> None:
        assert event["type"] in ("ADDED", "MODIFIED", "DELETED"), event
        obj = event["object"]
        rv = int(obj["metadata"]["resourceVersion"])
        assert rv > self.rv, f"revision went backwards: {rv} after {self.rv}"
        self.seen.append(rv)
        self.rv = rv
        name = obj["metadata"]["name"]
        if event["type"] == "DELETED":
            assert name in self.cache
            del self.cache[name]
        else:
            assert (name in self.cache) == (event["type"] == "MODIFIED")
            self.cache[name] = obj


@settings(max_examples=25, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(steps=program)
def test_watchers_that_drop_and_resume_rebuild_the_final_state(api_url, steps):
    ns = f"prop-{uuid.uuid4().hex[:8]}"
    with httpx.Client(verify=admin_tls(), base_url=api_url, timeout=20) as api:
        assert api.post(NS, json={"metadata": {"name": ns}}).status_code == 201
        path = SVC.format(ns=ns)
        start = int(api.get(path).json()["metadata"]["resourceVersion"])
        head = start
        watchers = [Watcher(api, path, start) for _ in range(3)]
        try:
            for step in steps:
                if step[0] == "write":
                    _, action, name, value = step
                    resp = _write(api, path, action, name, value)
                    if resp is not None and resp.status_code in (200, 201):
                        # max: a no-op write answers with its object's older revision
                        head = max(head, int(resp.json()["metadata"]["resourceVersion"]))
                else:
                    action, idx, n = step
                    w = watchers[idx]
                    if action == "open":
                        w.open()
                    elif action == "read":
                        w.read(n, head)
                    else:
                        w.close()
            final = {o["metadata"]["name"]: o for o in api.get(path).json()["items"]}
            for w in watchers:
                w.catch_up(head)
                assert w.cache == final
                assert w.seen == sorted(set(w.seen))
        finally:
            for w in watchers:
                w.close()
            api.delete(f"{NS}/{ns}")


def _write(api: httpx.Client, path: str, action: str, name: str, value: int):
    if action == "create":
        return api.post(path, json=service(name, ns=path.split("/")[4]))
    if action == "label":
        return api.patch(f"{path}/{name}",
                         content=json.dumps({"metadata": {"labels": {"v": str(value)}}}),
                         headers={"content-type": "application/merge-patch+json"})
    return api.delete(f"{path}/{name}")


def test_acknowledged_writes_survive_kill_9(apiserver):
    path = SVC.format(ns="default")
    acked: list[str] = []
    lock = threading.Lock()
    stop = threading.Event()

    def writer(worker: int) -> None:
        with httpx.Client(verify=admin_tls(), base_url=apiserver.url, timeout=5) as api:
            i = 0
            while not stop.is_set():
                name = f"w{worker}-{i}"
                i += 1
                try:
                    resp = api.post(path, json=service(name))
                except httpx.HTTPError:
                    return  # the server is gone: this write was never acknowledged
                if resp.status_code == 201:
                    with lock:
                        acked.append(name)

    threads = [threading.Thread(target=writer, args=(w,)) for w in range(8)]
    for t in threads:
        t.start()
    try:
        wait_until(lambda: len(acked) >= 300, timeout=60, what="300 acknowledged writes")
        apiserver.kill()
    finally:
        stop.set()
        for t in threads:
            t.join(timeout=30)
    apiserver.start()
    with httpx.Client(verify=admin_tls(), base_url=apiserver.url, timeout=30) as api:
        stored = {s["metadata"]["name"] for s in api.get(path).json()["items"]}
    missing = [n for n in acked if n not in stored]
    assert not missing, f"{len(missing)} acknowledged writes lost, e.g. {missing[:5]}"


def test_a_write_timed_out_behind_a_locked_database_leaves_the_writer_serving(make_apiserver):
    """Another process holds SQLite's write lock (a backup, ``sqlite3`` at a prompt) past
    ``--request-timeout``: the write is answered 504 and, given up while queued, never
    runs; once the lock is gone the next write commits and ``/livez`` passes."""
    server = make_apiserver("--request-timeout", "500ms")
    path = "/api/v1/namespaces/default/serviceaccounts"
    with server.http(timeout=15) as api:
        lock = sqlite3.connect(server.db_path, isolation_level=None)
        try:
            lock.execute("BEGIN IMMEDIATE")
            slow = api.post(path, json={"metadata": {"name": "timed-out"}})
            assert slow.status_code == 504, slow.text
        finally:
            lock.execute("ROLLBACK")
            lock.close()
        tries = iter(range(1000))  # a busy machine may 504 the first try or two as well
        wait_until(lambda: api.post(path, json={"metadata": {"name": f"after-{next(tries)}"}}
                                    ).status_code == 201, what="a write to commit")
        assert api.get("/livez").status_code == 200
        assert api.get(f"{path}/timed-out").status_code == 404
