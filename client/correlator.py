"""client-go's EventCorrelator: which events to write, merge into one, or drop.

Pure bookkeeping with an injected clock, no I/O (``client.events`` does the writes).
Three steps, in client-go's order, each keyed on a different part of the event:

1. **Aggregate** (``EventAggregator``): events alike but for their message (same
   source, object, type, reason) are counted per distinct message within
   ``AGGREGATE_INTERVAL``; from the ``MAX_SIMILAR``-th distinct message on they
   become one event "(combined from similar events): <latest message>".
2. **De-duplicate** (``eventLogger``): an event equal to one seen before (source,
   object, type, reason, message) becomes a patch of that Event's ``count``,
   ``lastTimestamp`` and ``message`` instead of a new object. Remembered in an LRU
   of ``LRU_SIZE`` keys.
3. **Spam filter** (``EventSourceObjectSpamFilter``): a token bucket per source +
   object (``SPAM_BURST``, one token back every ``SPAM_REFILL`` seconds); an event
   without a token is dropped. Step 2 counted it already, so the next write that
   gets through carries the true count.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from apimachinery.timestamps import format_time

# client-go's defaults (tools/record/events_cache.go): enough to remember every
# object a busy component touches, and a flapping probe's 25 events before it is
# throttled to one every five minutes.
LRU_SIZE = 4096
MAX_SIMILAR = 10
AGGREGATE_INTERVAL = 600.0  # seconds
SPAM_BURST = 25
SPAM_REFILL = 300.0  # seconds per token
COMBINED_PREFIX = "(combined from similar events): "

K = TypeVar("K")
V = TypeVar("V")


class Lru(Generic[K, V]):
    """A bounded map that forgets the least recently used key first."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._items: OrderedDict[K, V] = OrderedDict()

    def get(self, key: K) -> V | None:
        value = self._items.get(key)
        if value is not None:
            self._items.move_to_end(key)
        return value

    def put(self, key: K, value: V) -> None:
        self._items[key] = value
        self._items.move_to_end(key)
        while len(self._items) > self.size:
            self._items.popitem(last=False)

    def __len__(self) -> int:
        return len(self._items)


@dataclass
class TokenBucket:
    """``burst`` tokens, one back every ``refill`` seconds (golang.org/x/time/rate)."""

    burst: int
    refill: float
    tokens: float
    last: float

    def take(self, now: float) -> bool:
        self.tokens = min(float(self.burst), self.tokens + max(0.0, now - self.last) / self.refill)
        self.last = now
        if self.tokens < 1.0:
            return False
        self.tokens -= 1.0
        return True


def _ref(ev: Mapping[str, Any]) -> list[str]:
    involved = ev.get("involvedObject") or {}
    return [str(involved.get(k) or "") for k in
            ("kind", "namespace", "name", "uid", "apiVersion")]


def _source(ev: Mapping[str, Any]) -> list[str]:
    source = ev.get("source") or {}
    return [str(source.get("component") or ""), str(source.get("host") or "")]


def event_key(ev: Mapping[str, Any]) -> str:
    """What makes two events the same one (client-go's ``getEventKey``)."""
    involved = ev.get("involvedObject") or {}
    return "\x00".join([*_source(ev), *_ref(ev), str(involved.get("fieldPath") or ""),
                        str(ev.get("type") or ""), str(ev.get("reason") or ""),
                        str(ev.get("message") or "")])


def aggregate_key(ev: Mapping[str, Any]) -> str:
    """What makes two events similar: all but the message (``EventAggregatorByReasonFunc``)."""
    return "\x00".join([*_source(ev), *_ref(ev), str(ev.get("type") or ""),
                        str(ev.get("reason") or ""), str(ev.get("reportingComponent") or ""),
                        str(ev.get("reportingInstance") or "")])


def spam_key(ev: Mapping[str, Any]) -> str:
    """One bucket per source and object (``getSpamKey``)."""
    return "\x00".join([*_source(ev), *_ref(ev)])


def event_name(object_name: str, now: float) -> str:
    """``<object>.<nanoseconds in hex>``, as client-go names events."""
    return f"{object_name}.{int(now * 1e9):x}"


class EventNamer:
    """``event_name`` made unique within a process: two events in the same nanosecond
    (or under a coarse or fake clock) get successive numbers instead of one name,
    which would make the second write patch the first event."""

    def __init__(self) -> None:
        self._last = 0

    def __call__(self, object_name: str, now: float) -> str:
        nanos = max(int(now * 1e9), self._last + 1)
        self._last = nanos
        return f"{object_name}.{nanos:x}"


def stamp(now: float) -> str:
    """metav1.Time: whole seconds."""
    return format_time(float(int(now)))


@dataclass
class Observation:
    """What was last written for one event key (client-go's ``eventLog``)."""

    name: str
    count: int
    first_timestamp: str


@dataclass
class _Similar:
    messages: set[str] = field(default_factory=set)
    last: float = 0.0


@dataclass(frozen=True)
class Write:
    """What to send: ``body`` is the whole Event (a create, or the fallback when the
    patched one is gone); ``patch`` the merge patch when it updates an existing one."""

    key: str
    body: dict[str, Any]
    patch: dict[str, Any] | None


class EventCorrelator:
    """Turns each recorded event into a ``Write`` or None (dropped as spam)."""

    def __init__(self, *, clock: Callable[[], float], lru_size: int = LRU_SIZE,
                 max_similar: int = MAX_SIMILAR, aggregate_interval: float = AGGREGATE_INTERVAL,
                 burst: int = SPAM_BURST, refill: float = SPAM_REFILL,
                 namer: Callable[[str, float], str] | None = None) -> None:
        self._clock = clock
        self.namer = namer or EventNamer()
        self._max_similar = max_similar
        self._interval = aggregate_interval
        self._burst, self._refill = burst, refill
        self._similar: Lru[str, _Similar] = Lru(lru_size)
        self._seen: Lru[str, Observation] = Lru(lru_size)
        self._buckets: Lru[str, TokenBucket] = Lru(lru_size)

    def correlate(self, event: Mapping[str, Any]) -> Write | None:
        now = self._clock()
        ev, key = self._aggregate(event, now)
        write = self._observe(ev, key)
        return write if self._allowed(write.body, now) else None

    def update_state(self, key: str, written: Mapping[str, Any]) -> None:
        """Remember what the server holds after a successful write.

        Writes are sent after ``correlate`` returns (client-go writes each event
        before correlating the next), so repeats counted while this write waited
        must not be forgotten: the count never goes back for the same Event."""
        meta = written.get("metadata") or {}
        name = str(meta.get("name") or "")
        count = int(written.get("count") or 1)
        current = self._seen.get(key)
        if current is not None and current.name == name:
            count = max(count, current.count)
        self._seen.put(key, Observation(name=name, count=count,
                                        first_timestamp=str(written.get("firstTimestamp") or "")))

    def _aggregate(self, event: Mapping[str, Any], now: float) -> tuple[dict[str, Any], str]:
        agg = aggregate_key(event)
        record = self._similar.get(agg)
        if record is None or now - record.last > self._interval:
            record = _Similar()
        record.messages.add(str(event.get("message") or ""))
        record.last = now
        self._similar.put(agg, record)
        if len(record.messages) < self._max_similar:
            return dict(event), event_key(event)
        record.messages.pop()  # keep the set one short of the limit, as client-go does
        involved = event.get("involvedObject") or {}
        combined = {**event, "message": COMBINED_PREFIX + str(event.get("message") or ""),
                    "metadata": {**(event.get("metadata") or {}),
                                 "name": self.namer(str(involved.get("name") or ""), now)},
                    "firstTimestamp": stamp(now), "lastTimestamp": stamp(now), "count": 1}
        return combined, agg

    def _observe(self, ev: dict[str, Any], key: str) -> Write:
        last = self._seen.get(key)
        if last is None:
            self._seen.put(key, Observation(name=ev["metadata"]["name"], count=1,
                                            first_timestamp=str(ev.get("firstTimestamp"))))
            return Write(key=key, body={**ev, "count": 1}, patch=None)
        count = last.count + 1
        body = {**ev, "metadata": {**ev["metadata"], "name": last.name}, "count": count,
                "firstTimestamp": last.first_timestamp}
        self._seen.put(key, Observation(name=last.name, count=count,
                                        first_timestamp=last.first_timestamp))
        patch = {"count": count, "lastTimestamp": ev.get("lastTimestamp"),
                 "message": ev.get("message")}
        return Write(key=key, body=body, patch=patch)

    def _allowed(self, ev: Mapping[str, Any], now: float) -> bool:
        key = spam_key(ev)
        bucket = self._buckets.get(key)
        if bucket is None:
            bucket = TokenBucket(self._burst, self._refill, float(self._burst), now)
            self._buckets.put(key, bucket)
        return bucket.take(now)
