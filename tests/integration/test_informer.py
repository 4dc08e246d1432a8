"""Informers against a real mp-apiserver: sync, events, resume after restarts, relist on 410.

The first tests need no server: canned list/watch rounds (as kopf's tests replay
them) pin ``watch_forever``'s resume rules exactly: which version each round
starts from, when it relists, how long it backs off.

Each informer runs on its own event loop in a background thread, as in a
controller process; the test thread writes with the blocking client and polls
with ``wait_until``. Convergence is checked two ways: the informer's store equals
a fresh list, and a mirror rebuilt only from the handler calls equals it too (so
relist diffs must be exactly right).
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import threading
from collections.abc import Iterator

import pytest

from apimachinery.keys import object_key
from apimachinery.kinds import NAMESPACE, SERVICE, Kind
from client.backoff import Backoff
from client.errors import ConnectionFailed, Expired
from client.http import AsyncClient, Client
from client.informer import Informer
from client.watch import Listed, Target, watch_forever
from tests.conftest import admin_config, free_port, wait_until

_names = itertools.count()

# Retry fast so tests converge in well under a second once the server is back.
FAST = Backoff(base=0.05, cap=0.5)


def service(name: str, *, labels: dict | None = None) -> dict:
    return {"apiVersion": "v1", "kind": "Service",
            "metadata": {"name": name, "labels": labels or {}},
            "spec": {"selector": {"app": name}, "ports": [{"port": 80}]}}


class Running:
    """An informer on a private event loop thread, recording every handler call."""

    def __init__(self, url: str, kind: Kind, **options) -> None:
        self.client = AsyncClient(admin_config(url), timeout=5)
        self.informer = Informer(self.client, kind, backoff=FAST, **options)
        self.calls: list[tuple[str, str, str]] = []  # (handler, key, resourceVersion)
        self.mirror: dict[str, str] = {}  # key -> resourceVersion, from handler calls only
        self.informer.add_handler(self._on_add, self._on_update, self._on_delete)
        self._loop = asyncio.new_event_loop()
        self._task: asyncio.Task | None = None
        self._thread = threading.Thread(target=self._main, daemon=True)
        self._thread.start()

    def _main(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._loop.run_until_complete(self._run())
        self._loop.close()

    async def _run(self) -> None:
        self._task = asyncio.current_task()
        try:
            await self.informer.run()
        except asyncio.CancelledError:
            pass
        finally:
            await self.client.aclose()

    def _on_add(self, obj: dict) -> None:
        key, version = object_key(obj), obj["metadata"]["resourceVersion"]
        assert key not in self.mirror, f"add for {key}, which handlers already had"
        self.mirror[key] = version
        self.calls.append(("add", key, version))

    def _on_update(self, old: dict, new: dict) -> None:
        key, version = object_key(new), new["metadata"]["resourceVersion"]
        assert self.mirror.get(key) == old["metadata"]["resourceVersion"], "update of stale old"
        self.mirror[key] = version
        self.calls.append(("update", key, version))

    def _on_delete(self, obj: dict) -> None:
        key = object_key(obj)
        self.mirror.pop(key, None)
        self.calls.append(("delete", key, obj["metadata"]["resourceVersion"]))

    def store_versions(self) -> dict[str, str]:
        return {object_key(o): o["metadata"]["resourceVersion"]
                for o in self.informer.store.list()}

    def stop(self) -> None:
        if self._task is not None:
            self._loop.call_soon_threadsafe(self._task.cancel)
        self._thread.join(timeout=10)
        assert not self._thread.is_alive(), "informer thread did not stop"


# -- canned rounds, no server ------------------------------------------------------------


def svc(name: str, version: int) -> dict:
    return {"metadata": {"name": name, "namespace": "ns", "resourceVersion": str(version)}}


def event(kind: str, obj: dict) -> dict:
    return {"type": kind, "object": obj}


BOOKMARK_15 = event("BOOKMARK", {"metadata": {"resourceVersion": "15"}})

# Each round is what one list or watch request answers: a List, or events and then how
# the stream ends (None: the server ended it normally).
ROUNDS = [
    ("list", {"metadata": {"resourceVersion": "10"}, "items": [svc("a", 5)]}),
    ("watch", [event("ADDED", svc("b", 11)), BOOKMARK_15],
     ConnectionFailed("peer closed connection")),
    ("watch", [], Expired("too old resource version: 15 (18)")),
    ("list", {"metadata": {"resourceVersion": "20"}, "items": [svc("b", 11)]}),
    ("watch", [event("MODIFIED", svc("b", 21))], None),
    ("watch", [event("DELETED", svc("b", 22))], None),
]


class CannedClient:
    """Answers list_all/watch from ROUNDS in order and records what was asked."""

    def __init__(self, rounds) -> None:
        self.rounds = list(rounds)
        self.asked: list[tuple[str, str | None]] = []

    def _next(self, verb: str):
        want, *answer = self.rounds.pop(0)
        assert want == verb, f"expected a {want}, got a {verb}"
        return answer

    async def list_all(self, kind, namespace=None, **options):
        self.asked.append(("list", None))
        return self._next("list")[0]

    async def watch(self, kind, namespace=None, *, resource_version=None, **options):
        self.asked.append(("watch", resource_version))
        events, end = self._next("watch")
        for e in events:
            yield e
        if end is not None:
            raise end


def test_watch_forever_resume_rules_on_canned_rounds():
    client = CannedClient(ROUNDS)
    slept: list[float] = []

    async def sleep(seconds: float) -> None:
        slept.append(seconds)

    async def main() -> list:
        seen = []
        stream = watch_forever(client, Target(SERVICE, "ns"),
                               backoff=Backoff(base=1, cap=8, jitter=0), sleep=sleep)
        async for item in stream:
            seen.append(item)
            if not client.rounds:
                break
        await stream.aclose()
        return seen

    seen = asyncio.run(main())
    assert client.asked == [("list", None), ("watch", "10"), ("watch", "15"), ("list", None),
                            ("watch", "20"), ("watch", "21")]
    # a dropped stream backs off once; the first 410 relists at once
    assert slept == [1]
    assert [type(i).__name__ if isinstance(i, Listed) else i["type"] for i in seen] == \
        ["Listed", "ADDED", "BOOKMARK", "Listed", "MODIFIED", "DELETED"]


def test_watch_forever_backs_off_on_repeated_errors_and_very_short_watches():
    rounds = [
        ("list", ConnectionFailed("refused")),
        ("list", ConnectionFailed("refused")),
        ("list", {"metadata": {"resourceVersion": "3"}, "items": []}),
        ("watch", [], None),  # ends at once with no events: a broken server, not a timeout
        ("watch", [], Expired("gone")),
        ("list", {"metadata": {"resourceVersion": "4"}, "items": []}),
        ("watch", [], Expired("gone again")),  # a second 410 in a row backs off
        ("list", {"metadata": {"resourceVersion": "5"}, "items": []}),
    ]

    class Failing(CannedClient):
        async def list_all(self, kind, namespace=None, **options):
            answer = await super().list_all(kind, namespace, **options)
            if isinstance(answer, Exception):
                raise answer
            return answer

    client = Failing(rounds)
    slept: list[float] = []

    async def sleep(seconds: float) -> None:
        slept.append(seconds)

    async def main() -> None:
        stream = watch_forever(client, Target(SERVICE), sleep=sleep,
                               backoff=Backoff(base=1, cap=8, jitter=0))
        async for _ in stream:
            if not client.rounds:
                break
        await stream.aclose()

    asyncio.run(main())
    assert slept == [1, 2, 1, 1]


@pytest.fixture
def start_informer() -> Iterator:
    running: list[Running] = []

    def start(url: str, kind: Kind = SERVICE, **options) -> Running:
        r = Running(url, kind, **options)
        running.append(r)
        return r

    yield start
    for r in running:
        r.stop()


def fresh_versions(api: Client, kind: Kind, namespace: str | None, **selectors) -> dict:
    return {object_key(o): o["metadata"]["resourceVersion"]
            for o in api.list_all(kind, namespace, **selectors)["items"]}


def converged(running: Running, api: Client, namespace: str | None, **selectors) -> bool:
    want = fresh_versions(api, running.informer.kind, namespace, **selectors)
    return running.store_versions() == want and running.mirror == want


def new_namespace(api: Client) -> str:
    name = f"inf-{next(_names)}"
    api.create(NAMESPACE, {"metadata": {"name": name}})
    return name


def requests_logged(caplog, needle: str) -> int:
    return sum(1 for r in caplog.records if r.name == "httpx" and needle in r.getMessage())


# -- tests ---------------------------------------------------------------------------------


def test_syncs_then_follows_creates_updates_and_deletes(shared_url, start_informer):
    with Client(admin_config(shared_url)) as api:
        ns = new_namespace(api)
        for name in ("a", "b", "c"):
            api.create(SERVICE, service(name), ns)
        inf = start_informer(shared_url, namespace=ns, page_size=2)  # several pages
        wait_until(lambda: inf.informer.has_synced, what="first list")
        assert inf.informer.store.keys() == [f"{ns}/a", f"{ns}/b", f"{ns}/c"]
        assert sorted(c[1] for c in inf.calls if c[0] == "add") == inf.informer.store.keys()

        api.create(SERVICE, service("d"), ns)
        api.patch(SERVICE, "a", {"metadata": {"labels": {"v": "2"}}}, namespace=ns)
        last_b = api.patch(SERVICE, "b", {"metadata": {"labels": {"bye": "1"}}}, namespace=ns)
        api.delete(SERVICE, "b", ns)
        wait_until(lambda: converged(inf, api, ns), what="informer to converge")

        kinds = [(c[0], c[1]) for c in inf.calls[3:]]
        assert kinds == [("add", f"{ns}/d"), ("update", f"{ns}/a"), ("update", f"{ns}/b"),
                         ("delete", f"{ns}/b")]
        # the delete carries the last known state: at least as new as the last update
        assert int(inf.calls[-1][2]) >= int(last_b["metadata"]["resourceVersion"])
        assert int(inf.informer.last_resource_version) >= int(inf.calls[-1][2])


def test_all_namespaces_and_label_selector(shared_url, start_informer):
    with Client(admin_config(shared_url)) as api:
        ns1, ns2 = new_namespace(api), new_namespace(api)
        inf = start_informer(shared_url, label_selector="team=blue")
        wait_until(lambda: inf.informer.has_synced, what="first list")
        api.create(SERVICE, service("x", labels={"team": "blue"}), ns1)
        api.create(SERVICE, service("y", labels={"team": "blue"}), ns2)
        api.create(SERVICE, service("z", labels={"team": "red"}), ns1)
        wait_until(lambda: converged(inf, api, None, label_selector="team=blue"),
                   what="selected services in the cache")
        assert inf.informer.store.keys() == [f"{ns1}/x", f"{ns2}/y"]


def test_indexes_and_a_late_handler(shared_url, start_informer):
    with Client(admin_config(shared_url)) as api:
        ns = new_namespace(api)
        api.create(SERVICE, service("i1", labels={"tier": "fe"}), ns)
        inf = start_informer(shared_url, namespace=ns)
        inf.informer.add_index("tier", lambda o: o["metadata"].get("labels", {}).get("tier"))
        wait_until(lambda: inf.informer.has_synced, what="first list")
        api.create(SERVICE, service("i2", labels={"tier": "fe"}), ns)
        wait_until(lambda: len(inf.informer.store.by_index("tier", "fe")) == 2,
                   what="index to follow the watch")

        late: list[str] = []
        inf._loop.call_soon_threadsafe(
            lambda: inf.informer.add_handler(on_add=lambda o: late.append(object_key(o))))
        wait_until(lambda: sorted(late) == [f"{ns}/i1", f"{ns}/i2"],
                   what="late handler to get the cache")


def test_resync_calls_update_with_the_same_object(shared_url, start_informer):
    with Client(admin_config(shared_url)) as api:
        ns = new_namespace(api)
        api.create(SERVICE, service("r"), ns)
        inf = start_informer(shared_url, namespace=ns, resync_period=0.1)
        wait_until(lambda: sum(1 for c in inf.calls if c[0] == "update") >= 2,
                   what="two resyncs")
        updates = [c for c in inf.calls if c[0] == "update"]
        assert {c[1] for c in updates} == {f"{ns}/r"}
        assert len({c[2] for c in updates}) == 1  # same resourceVersion: nothing changed


def test_rewatches_from_last_version_when_streams_end(shared_url, start_informer, caplog):
    caplog.set_level(logging.INFO)
    with Client(admin_config(shared_url)) as api:
        ns = new_namespace(api)
        inf = start_informer(shared_url, namespace=ns, min_watch_timeout=1)
        wait_until(lambda: inf.informer.has_synced, what="first list")
        api.create(SERVICE, service("early"), ns)
        # each watch lasts 1-2 s; wait until the informer has opened a third one
        wait_until(lambda: requests_logged(caplog, "watch=true") >= 3, timeout=20,
                   what="three watch requests")
        api.create(SERVICE, service("late"), ns)
        wait_until(lambda: converged(inf, api, ns), what="informer to converge")
        assert requests_logged(caplog, "limit=500") == 1  # resumed, never relisted
        assert [c[0] for c in inf.calls] == ["add", "add"]


def test_resumes_after_server_restart(apiserver, start_informer, caplog):
    caplog.set_level(logging.INFO)
    with Client(admin_config(apiserver.url)) as api:
        ns = new_namespace(api)
        api.create(SERVICE, service("one"), ns)
        inf = start_informer(apiserver.url, namespace=ns)
        wait_until(lambda: inf.informer.has_synced, what="first list")

        apiserver.restart()  # graceful: the watch ends, reconnects fail until it is back
        api.create(SERVICE, service("two"), ns)
        api.delete(SERVICE, "one", ns)
        wait_until(lambda: converged(inf, api, ns), what="informer to converge after restart")
        api.create(SERVICE, service("three"), ns)
        wait_until(lambda: converged(inf, api, ns), what="informer to keep following")

        apiserver.kill()  # abrupt: the stream is cut mid-body
        apiserver.start()
        api.delete(SERVICE, "two", ns)
        wait_until(lambda: converged(inf, api, ns), what="informer to converge after kill")
        assert inf.informer.store.keys() == [f"{ns}/three"]
        assert [c[0] for c in inf.calls] == ["add", "add", "delete", "add", "delete"]


def test_relists_after_410_and_converges(make_apiserver, start_informer, caplog):
    caplog.set_level(logging.INFO)
    server = make_apiserver("--event-retention", "5")
    with Client(admin_config(server.url)) as api:
        ns = new_namespace(api)
        for name in ("keep", "change", "remove"):
            api.create(SERVICE, service(name), ns)
        inf = start_informer(server.url, namespace=ns)
        wait_until(lambda: converged(inf, api, ns), what="first sync")
        seen = inf.informer.last_resource_version

        # Disconnect the informer: move the server to another port for the burst, so
        # the informer keeps failing to connect while the writes happen.
        home = server.port
        server.stop()
        server.port = free_port()
        server.start()
        api_burst = Client(admin_config(server.url))
        try:
            api_burst.patch(SERVICE, "change", {"metadata": {"labels": {"v": "2"}}},
                            namespace=ns)
            api_burst.delete(SERVICE, "remove", ns)
            for i in range(10):
                api_burst.create(SERVICE, service(f"burst{i}"), ns)

            def compacted() -> bool:
                try:
                    list(api_burst.watch(SERVICE, ns, resource_version=seen, timeout_seconds=1))
                except Expired:
                    return True
                return False

            wait_until(compacted, timeout=30, what="the informer's version to be compacted")
        finally:
            api_burst.close()
            server.stop()
            server.port = home
        server.start()

    with Client(admin_config(server.url)) as api:
        wait_until(lambda: converged(inf, api, ns), timeout=20, what="convergence after 410")
        assert any("relisted" in r.getMessage() for r in caplog.records
                   if r.name == "client.informer")
        assert ("delete", f"{ns}/remove") in [(c[0], c[1]) for c in inf.calls]
        assert ("update", f"{ns}/change") in [(c[0], c[1]) for c in inf.calls]
        assert f"{ns}/keep" in inf.informer.store


def test_wait_synced_times_out_while_the_server_is_unreachable():
    async def main() -> tuple[bool, bool]:
        async with AsyncClient(server=f"http://127.0.0.1:{free_port()}", timeout=1) as client:
            informer = Informer(client, SERVICE, backoff=FAST)
            task = asyncio.create_task(informer.run())
            synced = await informer.wait_synced(timeout=0.3)
            alive = not task.done()  # connection errors are retried, never raised
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            return synced, alive

    assert asyncio.run(main()) == (False, True)
