"""Watch fan-out and the list cache: events encoded once and shared, batches per
(resource, namespace), the bounded buffer, and the cache's state against storage."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from pathlib import Path

import orjson
import pytest

from apimachinery.labels import parse_field_selector, parse_label_selector
from apiserver.listcache import ListCache, serves
from apiserver.listopts import ListOptions
from apiserver.registry.service import STRATEGY as SERVICES
from apiserver.storage.backend import Event, Txn
from apiserver.storage.follower import LogFollower
from apiserver.storage.store import Store
from apiserver.watch import WatchRequest, chunks
from apiserver.watchhub import WatchHub


def svc(rv: int, name: str, ns: str = "a", labels: dict | None = None, kind: str = "ADDED",
        prev_labels: dict | None = None) -> Event:
    def doc(lab: dict | None) -> str:
        return orjson.dumps({"metadata": {"name": name, "namespace": ns, "labels": lab or {},
                                          "resourceVersion": str(rv)}}).decode()
    prev = doc(prev_labels) if kind != "ADDED" else None
    return Event(rv, kind, "services", ns, name, doc(labels), prev)


def opts(labels: str | None = None, **kw) -> ListOptions:
    return ListOptions(labels=parse_label_selector(labels),
                       fields=parse_field_selector(None, SERVICES.field_selectors), **kw)


def lines_of(chunk: bytes) -> list[dict]:
    return [orjson.loads(ln) for ln in chunk.split(b"\n") if ln]


def test_unfiltered_watchers_share_one_encoding_of_each_batch():
    async def main() -> None:
        hub = WatchHub(0)
        one, two = hub.subscribe("services", None), hub.subscribe("services", None)
        hub.publish([svc(1, "x"), svc(2, "y", ns="b")])
        req = WatchRequest(SERVICES, None, opts())
        first, last1 = req.batch_lines(one.drain(), 0, None)
        second, last2 = req.batch_lines(two.drain(), 0, None)
        assert first[0] is second[0]  # the same bytes object: built once, shared
        assert last1 == last2 == 2
        assert [e["object"]["metadata"]["name"] for e in lines_of(first[0])] == ["x", "y"]
        assert [e["type"] for e in lines_of(first[0])] == ["ADDED", "ADDED"]

    asyncio.run(main())


def test_namespace_and_selector_watchers_see_their_own_view_of_shared_events():
    async def main() -> None:
        hub = WatchHub(0)
        in_a = hub.subscribe("services", "a")
        web = hub.subscribe("services", None)
        events = [svc(1, "x", labels={"app": "web"}),
                  svc(2, "y", ns="b", labels={"app": "web"}),
                  svc(3, "x", kind="MODIFIED", labels={"app": "db"}, prev_labels={"app": "web"}),
                  svc(4, "z", labels={"app": "db"})]
        hub.publish(events)
        plain = WatchRequest(SERVICES, "a", opts())
        a_lines, _ = plain.batch_lines(in_a.drain(), 0, None)
        assert [(e["type"], e["object"]["metadata"]["name"]) for ln in a_lines
                for e in lines_of(ln)] == [("ADDED", "x"), ("MODIFIED", "x"), ("ADDED", "z")]
        selected = WatchRequest(SERVICES, None, opts("app=web"))
        keep = selected.opts.matcher()
        w_lines, last = selected.batch_lines(web.drain(), 0, keep)
        seen = [(e["type"], e["object"]["metadata"]["name"],
                 e["object"]["metadata"]["resourceVersion"]) for ln in w_lines
                for e in lines_of(ln)]
        # x leaving the selector arrives as DELETED at the revision it left
        assert seen == [("ADDED", "x", "1"), ("ADDED", "y", "2"), ("DELETED", "x", "3")]
        assert last == 4

    asyncio.run(main())


def test_a_resumed_watcher_skips_what_it_has_seen_inside_a_shared_batch():
    async def main() -> None:
        hub = WatchHub(0)
        sub = hub.subscribe("services", None)
        hub.publish([svc(1, "x"), svc(2, "y"), svc(3, "z")])
        req = WatchRequest(SERVICES, None, opts())
        lines, last = req.batch_lines(sub.drain(), 2, None)
        assert [e["object"]["metadata"]["name"] for ln in lines for e in lines_of(ln)] == ["z"]
        assert last == 3

    asyncio.run(main())


def test_a_watcher_more_than_buffer_events_behind_is_cut_and_leaves_the_hub():
    async def main() -> None:
        hub = WatchHub(0, buffer=3)
        slow, fast = hub.subscribe("services", None), hub.subscribe("services", None)
        hub.publish([svc(1, "a"), svc(2, "b")])
        fast.drain()
        hub.publish([svc(3, "c"), svc(4, "d")])
        assert slow.closed and slow.overflowed and slow.cut.done()
        assert not fast.closed and hub.watchers == 1 and hub.cut == 1

    asyncio.run(main())


def test_wakes_are_paced_under_load_but_a_quiet_hub_wakes_at_once():
    async def main() -> None:
        hub = WatchHub(0)
        subs = [hub.subscribe("services", None) for _ in range(500)]
        loop = asyncio.get_running_loop()
        waiting = [asyncio.ensure_future(s.wait(10)) for s in subs]
        await asyncio.sleep(0)
        hub.publish([svc(1, "a")])
        await asyncio.wait(waiting, timeout=5)
        assert all(w.done() for w in waiting)  # the first event after quiet: at once
        for s in subs:
            s.drain()
        started = loop.time()
        waiting = [asyncio.ensure_future(s.wait(10)) for s in subs]
        await asyncio.sleep(0)
        hub.publish([svc(2, "b")])
        await asyncio.wait(waiting)
        # the next round waits out the window (500 watchers: 100 ms), not the timeout
        assert loop.time() - started < 5

    asyncio.run(main())


def test_chunks_join_lines_without_splitting_one():
    assert list(chunks([b"a\n", b"b\n"])) == [b"a\nb\n"]
    assert list(chunks([b"aaa\n", b"bb\n", b"c\n"], limit=6)) == [b"aaa\n", b"bb\nc\n"]
    assert list(chunks([b"x" * 10], limit=4)) == [b"x" * 10]
    assert list(chunks([])) == []


@pytest.mark.parametrize(("params", "cached"), [
    ({}, False),  # consistent read: storage
    ({"resource_version": "0"}, True),
    ({"resource_version": "0", "limit": 5}, True),  # limit ignored, as kube-apiserver
    ({"resource_version": "7"}, True),
    ({"resource_version": "7", "resource_version_match": "NotOlderThan"}, True),
    ({"resource_version": "7", "limit": 5}, False),  # paged from a revision: storage
    ({"resource_version": "7", "resource_version_match": "Exact"}, False),
    ({"resource_version": "7", "continue_from": (7, ("a", "b"))}, False),
])
def test_which_lists_the_cache_serves(params, cached):
    assert serves(opts(**params)) is cached


# -- the list cache against a real store ------------------------------------------------


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    s = Store(f"sqlite:///{tmp_path}/state.db")
    s.start()
    yield s
    s.close()


def put(name: str, ns: str, labels: dict | None = None) -> Callable[[Txn], dict]:
    def run(txn: Txn) -> dict:
        prev = txn.get("services", ns, name)
        obj = {"metadata": {"name": name, "namespace": ns, "labels": labels or {}}}
        return txn.put("services", ns, name, obj, prev)
    return run


def remove(name: str, ns: str) -> Callable[[Txn], dict]:
    def run(txn: Txn) -> dict:
        obj = txn.get("services", ns, name)
        assert obj is not None
        return txn.remove("services", ns, name, obj)
    return run


def test_the_cache_follows_writes_made_while_it_loads_and_after(store: Store):
    async def main() -> None:
        hub = WatchHub(store.revision)
        cache = ListCache(store, lambda: hub.last_rv)

        class Both:
            def publish(self, events: list[Event]) -> None:
                cache.publish(events)
                hub.publish(events)

            def skip_to(self, revision: int) -> None:
                cache.skip_to(revision)
                hub.skip_to(revision)

        follower = LogFollower(store, Both(), after=store.revision)
        follower.start()
        try:
            for i in range(20):
                store.submit(put(f"s{i:02}", "a" if i % 2 else "b", {"odd": str(i % 2)}))
            loading = asyncio.ensure_future(cache.page("services", None))
            for i in range(20, 30):  # while the first list loads
                store.submit(put(f"s{i:02}", "a"))
            await loading
            await asyncio.wrap_future(store.submit(remove("s03", "a")))
            await asyncio.wrap_future(store.submit(put("s04", "b", {"odd": "no"})))
            deadline = asyncio.get_running_loop().time() + 10
            while hub.last_rv < store.revision:
                assert asyncio.get_running_loop().time() < deadline
                await asyncio.sleep(0.01)
            for ns in (None, "a", "b"):
                page = await cache.page("services", ns)
                assert page.items == store.list("services", ns).items
                assert page.revision == store.revision
                revision, joined = await cache.joined("services", ns)
                assert joined == ",".join(page.items).encode() and revision == page.revision
            keep = opts("odd=1").matcher()
            assert (await cache.page("services", None, keep)).items == \
                store.list("services", None, keep=keep).items
            _, once = await cache.joined("services", "a")
            _, again = await cache.joined("services", "a")
            assert once is again  # one build per state, shared
        finally:
            await follower.stop()

    asyncio.run(main())
