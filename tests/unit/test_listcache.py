"""The list cache's first load against a real store: a cancelled first caller (its
request timeout) leaves the load running for everyone else, a load is never begun
twice at once, and a failed load is a 500 for its waiters and retried by the next."""

from __future__ import annotations

import asyncio
import gc
import sqlite3
import threading
from collections.abc import AsyncGenerator, Callable, Iterator
from pathlib import Path
from typing import Any, cast

import httpx
import orjson
import pytest

from apimachinery.labels import parse_field_selector, parse_label_selector
from apiserver.app import Config, create_app
from apiserver.auth.authn import AuthenticationOptions, Authenticator
from apiserver.errors import APIError, Timeout
from apiserver.inflight import READ_ONLY, InFlight
from apiserver.listcache import ListCache
from apiserver.listopts import ListOptions
from apiserver.registry.service import STRATEGY as SERVICES
from apiserver.storage.backend import Page, Txn
from apiserver.storage.store import Store
from apiserver.watch import Watcher, WatchRequest
from apiserver.watchhub import WatchHub

LIMITS = InFlight(0, 0, 60.0)


class GatedStore(Store):
    """The real SQLite store whose full-collection lists wait for ``gate``: a read that
    takes longer than a request's deadline, which a small test database can't cause on
    demand. ``begun`` counts the lists started."""

    def __init__(self, url: str) -> None:
        super().__init__(url)
        self.gate = threading.Event()
        self.gate.set()
        self.begun = 0
        self._lock = threading.Lock()

    def list(self, *args: Any, **kwargs: Any) -> Page:
        with self._lock:
            self.begun += 1
        assert self.gate.wait(30), "the test never opened the gate"
        return super().list(*args, **kwargs)


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "state.db"


@pytest.fixture
def store(db: Path) -> Iterator[GatedStore]:
    s = GatedStore(f"sqlite:///{db}")
    s.start()
    for i, ns in enumerate(("a", "b", "a")):
        s.submit(put(f"s{i}", ns)).result(10)
    yield s
    s.gate.set()
    s.close()


def put(name: str, ns: str) -> Callable[[Txn], dict]:
    def run(txn: Txn) -> dict:
        obj = {"metadata": {"name": name, "namespace": ns}}
        return txn.put("services", ns, name, obj, txn.get("services", ns, name))
    return run


async def until(ready: Callable[[], bool], what: str) -> None:
    """Poll ``ready`` on the loop, failing after 10 s."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 10
    while not ready():
        assert loop.time() < deadline, what
        await asyncio.sleep(0.005)


def rv0_watch(store: Store, hub: WatchHub, cache: ListCache) -> AsyncGenerator[bytes, None]:
    """An rv=0 watch's stream: its initial events come from the cache."""
    opts = ListOptions(labels=parse_label_selector(None),
                       fields=parse_field_selector(None, SERVICES.field_selectors),
                       resource_version="0", timeout_seconds=1)
    req = WatchRequest(SERVICES, None, opts)
    stream = Watcher(store, hub, cache=cache).stream(req, hub.subscribe("services", None))
    return cast(AsyncGenerator[bytes, None], stream)  # an async generator: it can be closed


def events(chunk: bytes) -> list[dict]:
    return [orjson.loads(ln) for ln in chunk.split(b"\n") if ln]


async def timed_out_first_caller(store: GatedStore, cache: ListCache) -> None:
    """A list whose request deadline passes while it loads the view: answered 504."""
    store.gate.clear()
    with pytest.raises(Timeout):
        await LIMITS.within(cache.page("services", None), False, timeout=0.05)
    assert store.begun == 1


def test_waiters_get_the_list_when_the_first_caller_times_out(store: GatedStore):
    async def main() -> None:
        hub = WatchHub(store.revision)
        cache = ListCache(store, lambda: hub.last_rv)
        store.gate.clear()
        first = asyncio.ensure_future(
            LIMITS.within(cache.page("services", None), False, timeout=0.05))
        await until(lambda: store.begun == 1, "the first list starts the load")
        joined = asyncio.ensure_future(LIMITS.within(cache.joined("services", None), False))
        in_a = asyncio.ensure_future(LIMITS.within(cache.page("services", "a"), False))
        watch = rv0_watch(store, hub, cache)
        initial = asyncio.ensure_future(anext(watch))
        with pytest.raises(Timeout):
            await first
        store.gate.set()
        want = store.list("services", None)
        assert await joined == (want.revision, ",".join(want.items).encode())
        assert (await in_a).items == store.list("services", "a").items
        added = events(await initial)
        assert [(e["type"], e["object"]["metadata"]["name"]) for e in added] == \
            [("ADDED", "s0"), ("ADDED", "s2"), ("ADDED", "s1")]
        await watch.aclose()
        assert store.begun == 3  # the one load, and this test's two reads

    asyncio.run(main())


def test_a_list_after_a_timed_out_first_caller_joins_its_load(store: GatedStore):
    async def main() -> None:
        hub = WatchHub(store.revision)
        cache = ListCache(store, lambda: hub.last_rv)
        await timed_out_first_caller(store, cache)
        retry = asyncio.ensure_future(cache.page("services", None))
        again = asyncio.ensure_future(
            LIMITS.within(cache.page("services", None), False, timeout=0.05))
        with pytest.raises(Timeout):
            await again  # a retry that times out too
        assert store.begun == 1 and not retry.done()  # still the first load, not another
        store.gate.set()
        assert (await retry).items == store.list("services", None).items
        assert store.begun == 2  # the one load, and this test's read

    asyncio.run(main())


def test_a_load_nobody_waits_for_still_completes(store: GatedStore):
    async def main() -> None:
        hub = WatchHub(store.revision)
        cache = ListCache(store, lambda: hub.last_rv)
        await timed_out_first_caller(store, cache)
        gc.collect()  # the cache holds the load: it isn't collected without a waiter
        store.gate.set()
        await until(lambda: cache.resources == {"services": 3}, "the load completes")
        assert (await cache.page("services", None)).items == store.list("services", None).items
        assert store.begun == 2

    asyncio.run(main())


def test_a_view_dropped_while_it_loads_is_not_served(store: GatedStore):
    """skip_to (the follower skipped revisions) during a load: the loading view no longer
    hears events, so its waiters get the view a new load builds."""
    async def main() -> None:
        hub = WatchHub(store.revision)
        cache = ListCache(store, lambda: hub.last_rv)
        store.gate.clear()
        waiter = asyncio.ensure_future(cache.page("services", None))
        await until(lambda: store.begun == 1, "the list starts the load")
        cache.skip_to(store.revision)
        store.gate.set()
        assert (await waiter).items == store.list("services", None).items
        assert store.begun == 3  # the dropped load, the new one, and this test's read
        assert cache.resources == {"services": 3}

    asyncio.run(main())


def test_close_cancels_a_load_in_progress(store: GatedStore):
    async def main() -> None:
        hub = WatchHub(store.revision)
        cache = ListCache(store, lambda: hub.last_rv)
        await timed_out_first_caller(store, cache)
        await asyncio.wait_for(cache.close(), 10)  # not waiting for the read's thread
        assert cache.resources == {}
        assert not [t for t in asyncio.all_tasks() if t.get_name().startswith("list cache")]
        store.gate.set()  # the worker thread finishes its read; nothing keeps its result

    asyncio.run(main())


def test_a_failed_load_is_a_500_for_its_waiters_and_the_next_list_loads_again(
        store: GatedStore, db: Path):
    async def main() -> None:
        hub = WatchHub(store.revision)
        cache = ListCache(store, lambda: hub.last_rv)
        with sqlite3.connect(db) as conn:  # a real read failure: the table is gone
            conn.execute("ALTER TABLE objects RENAME TO objects_away")
        store.gate.clear()
        waiters = [asyncio.ensure_future(LIMITS.within(cache.page("services", ns), False))
                   for ns in (None, "a")]
        watch = rv0_watch(store, hub, cache)
        initial = asyncio.ensure_future(anext(watch))
        await until(lambda: store.begun == 1, "the first list starts the load")
        store.gate.set()
        for waiter in waiters:
            with pytest.raises(APIError) as failed:
                await waiter
            assert failed.value.status()["code"] == 500
            assert "no such table" in failed.value.status()["message"]
        [error] = events(await initial)
        assert error["type"] == "ERROR" and error["object"]["code"] == 500
        await watch.aclose()
        assert store.begun == 1 and cache.resources == {}
        with sqlite3.connect(db) as conn:
            conn.execute("ALTER TABLE objects_away RENAME TO objects")
        assert (await cache.page("services", None)).items == store.list("services", None).items
        assert store.begun == 3  # loaded again, and this test's read

    asyncio.run(main())


def test_over_http_the_lists_behind_a_timed_out_first_one_are_answered(tmp_path: Path):
    """The whole server in process (its filters, the request timeout, the handler): the
    list that started the load gets 504, the ones waiting for it 200, not uvicorn's 500."""
    tokens = tmp_path / "tokens.csv"
    tokens.write_text("admin-token,admin,uid-admin,system:masters\n")
    authenticator = Authenticator.from_options(AuthenticationOptions(
        service_account_signing_key_file=tmp_path / "sa.key", token_auth_file=tokens))
    store = GatedStore(f"sqlite:///{tmp_path}/state.db")
    app = create_app(Config(storage_url=store.url), authenticator, store)
    path = "/api/v1/namespaces/default/serviceaccounts"

    async def main() -> None:
        async with app.app.router.lifespan_context(app.app), httpx.AsyncClient(
                transport=httpx.ASGITransport(app, raise_app_exceptions=False),
                base_url="http://apiserver", headers={"Authorization": "Bearer admin-token"},
        ) as http:
            for name in ("x", "y"):
                made = await http.post(path, json={"metadata": {"name": name}})
                assert made.status_code == 201, made.text
            store.gate.clear()
            begun = store.begun
            first = asyncio.ensure_future(http.get(path + "?resourceVersion=0&timeout=1s"))
            await until(lambda: store.begun == begun + 1, "the first list starts the load")
            others = [asyncio.ensure_future(http.get(path + "?resourceVersion=0"))
                      for _ in range(2)]
            await until(lambda: app.inflight.current[READ_ONLY] == 3, "all three are served")
            timed_out = await first
            assert timed_out.status_code == 504, timed_out.text
            store.gate.set()
            for other in others:
                answer = await other
                assert answer.status_code == 200, answer.text
                assert [o["metadata"]["name"] for o in answer.json()["items"]] == ["x", "y"]
            assert store.begun == begun + 1

    asyncio.run(main())
