"""The slice tracker: a sync never plans from a cache behind the controller's own writes."""

from __future__ import annotations

from controllers.slicetracker import EXPECTATION_TIMEOUT, SliceTracker

KEY = "default/web"


def slice_(name: str, rv: str) -> dict:
    return {"metadata": {"name": name, "namespace": "default", "resourceVersion": rv}}


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_stale_until_the_cache_shows_our_version():
    tracker = SliceTracker(Clock())
    tracker.wrote(KEY, slice_("web-a", "10"))
    cache: dict[str, dict] = {}
    assert tracker.stale(KEY, cache.get)  # not there yet
    cache["web-a"] = slice_("web-a", "9")
    assert tracker.stale(KEY, cache.get)  # an older version
    cache["web-a"] = slice_("web-a", "10")
    assert not tracker.stale(KEY, cache.get)
    assert len(tracker) == 0


def test_deleted_slice_is_stale_while_cached():
    tracker = SliceTracker(Clock())
    tracker.deleted(KEY, "web-a")
    assert tracker.stale(KEY, {"web-a": slice_("web-a", "5")}.get)
    assert not tracker.stale(KEY, {}.get)


def test_echo_is_recognised_and_clears_the_expectation():
    tracker = SliceTracker(Clock())
    tracker.wrote(KEY, slice_("web-a", "10"))
    assert not tracker.observe(KEY, slice_("web-a", "9"), deleted=False)  # older: not ours
    assert len(tracker) == 1
    assert tracker.observe(KEY, slice_("web-a", "10"), deleted=False)
    assert len(tracker) == 0
    assert not tracker.observe(KEY, slice_("web-a", "11"), deleted=False)  # nothing expected


def test_someone_elses_delete_of_our_slice_clears_it_and_is_not_ours():
    tracker = SliceTracker(Clock())
    tracker.wrote(KEY, slice_("web-a", "10"))
    assert not tracker.observe(KEY, slice_("web-a", "10"), deleted=True)
    assert len(tracker) == 0
    tracker.deleted(KEY, "web-b")
    assert tracker.observe(KEY, slice_("web-b", "3"), deleted=True)


def test_an_expectation_never_met_expires():
    clock = Clock()
    tracker = SliceTracker(clock)
    tracker.wrote(KEY, slice_("web-a", "10"))
    assert tracker.stale(KEY, {}.get)
    clock.now += EXPECTATION_TIMEOUT + 1
    assert not tracker.stale(KEY, {}.get)
    assert len(tracker) == 0
