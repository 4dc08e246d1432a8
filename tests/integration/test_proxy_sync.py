"""The sync engine against real iptables in a real namespace, on both backends.

No API server here: objects go straight into the proxier's tracker, so each test
controls exactly what changed. Each test makes its own ``mp-t<random>-…``
namespace and deletes it at teardown, even on failure; nothing touches the root
namespace's rules.
"""

from __future__ import annotations

import asyncio
import re
import time
from typing import Any

import pytest

from nodeagent.proxy.apply import Backend, RestoreError
from nodeagent.proxy.chains import port_hash
from nodeagent.proxy.model import ServicePort
from nodeagent.proxy.plan import Limits, parse_save
from nodeagent.proxy.ruleset import Context, build_ruleset, render
from nodeagent.proxy.sync import Proxier, ProxyConfig, SyncFailed
from tests.netns import Lab, have_root_tools, sh
from tests.unit.test_proxy_ruleset import CASES

pytestmark = [pytest.mark.root,
              pytest.mark.skipif(have_root_tools() is not None,
                                 reason=have_root_tools() or "")]

BACKENDS = ["nft", "legacy"]


def service(i: int, *, rv: str = "1", **spec: Any) -> dict[str, Any]:
    return {"metadata": {"namespace": "demo", "name": f"s{i}", "resourceVersion": rv},
            "spec": {"type": "ClusterIP", "clusterIP": f"10.96.0.{i + 1}",
                     "ports": [{"name": "http", "port": 80, "protocol": "TCP"}], **spec}}


def endpoint_slice(i: int, ips: list[str], *, rv: str = "1") -> dict[str, Any]:
    return {"metadata": {"namespace": "demo", "name": f"s{i}-x", "resourceVersion": rv,
                         "labels": {"kubernetes.io/service-name": f"s{i}"}},
            "addressType": "IPv4", "endpoints": [{"addresses": [ip]} for ip in ips],
            "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}]}


def populate(p: Proxier, n: int) -> None:
    for i in range(n):
        p.tracker.service_added(service(i))
        p.tracker.slice_added(endpoint_slice(i, [f"10.244.1.{i % 200 + 2}",
                                                 f"10.244.2.{i % 200 + 2}"]))


def normalized_save(backend: Backend) -> str:
    """iptables-save without the header comments and packet counters."""
    text = backend.save()
    text = re.sub(r"\[\d+:\d+\]", "[0:0]", text)
    return "\n".join(line for line in text.splitlines() if not line.startswith("#"))


def record_syncs(p: Proxier) -> list[float]:
    """The start time of every sync ``p`` runs from now on."""
    syncs: list[float] = []
    original = p.sync

    def counting(changes: Any, **kw: Any) -> Any:
        syncs.append(time.monotonic())
        return original(changes, **kw)

    p.sync = counting  # type: ignore[method-assign]
    return syncs


async def first_sync(p: Proxier, runner: asyncio.Task, within: float = 10.0) -> None:
    """Until ``p``'s first sync is done; a sync loop that died or never syncs fails the
    test with its reason instead of hanging it."""
    deadline = time.monotonic() + within
    while not p.synced_once:
        if runner.done():
            runner.result()  # its exception, if it raised
            raise AssertionError("the sync loop ended before its first sync")
        assert time.monotonic() < deadline, f"no sync within {within} s"
        await asyncio.sleep(0.01)


def make(lab: Lab, kind: str, **config: Any) -> Proxier:
    ns = lab.ns(f"{kind}{len(lab.namespaces)}")
    return Proxier(Backend(kind, ns), ProxyConfig(node_name="node-a", **config))


@pytest.mark.parametrize("kind", BACKENDS)
def test_every_golden_case_restores_on_the_real_backend(lab: Lab, kind: str) -> None:
    ports = []
    for i, (_, sp, endpoints, _) in enumerate(CASES):
        sp = ServicePort(sp.namespace, f"c{i}", sp.port_name, sp.protocol, f"10.96.1.{i + 1}",
                         sp.port, node_port=30000 + i if sp.node_port else None,
                         affinity_seconds=sp.affinity_seconds, external_local=sp.external_local,
                         internal_local=sp.internal_local)
        ports.append((sp, tuple(sorted(endpoints, key=lambda e: e.address))))
    ns = lab.ns(kind)
    Backend(kind, ns).restore(render(build_ruleset(ports, Context("node-a"))))


@pytest.mark.parametrize("kind", BACKENDS)
def test_full_then_partial_syncs(lab: Lab, kind: str) -> None:
    p = make(lab, kind)
    populate(p, 60)
    report = p.sync(p.tracker.everything())
    assert report.full and p.check() == []
    saved = parse_save(p.backend.save())
    assert saved.counts[("nat", "KUBE-SERVICES")] == 61

    # an endpoint change writes that Service's chains only
    p.tracker.slice_updated(endpoint_slice(7, []), endpoint_slice(7, ["10.244.9.9"], rv="2"))
    report = p.sync(p.tracker.take()[0])
    assert not report.full and report.rules_written == {"filter": 0, "nat": 2 + 2}
    # a Service added: its chains plus one inserted KUBE-SERVICES rule
    p.tracker.service_added(service(100))
    p.tracker.slice_added(endpoint_slice(100, ["10.244.3.3"]))
    report = p.sync(p.tracker.take()[0])
    assert report.rules_written == {"filter": 0, "nat": 2 + 2 + 1}
    # a Service removed: its chains emptied or dropped, its KUBE-SERVICES rule left
    # to fall through (no -D in the big chain on the way)…
    p.tracker.service_deleted(service(3))
    p.tracker.slice_deleted(endpoint_slice(3, []))
    report = p.sync(p.tracker.take()[0])
    assert report.rules_written == {"filter": 0, "nat": 0}
    assert p.check() == [] and p.garbage
    svc3 = "KUBE-SVC-" + port_hash("demo/s3:http", "tcp")
    saved = parse_save(p.backend.save())
    assert saved.counts[("nat", svc3)] == 0 and "KUBE-SEP-" not in "".join(
        line for line in p.backend.save().splitlines() if "10.244.1.5:" in line)
    # …until the leftovers are collected in one batch
    assert p.collect() == 2  # the rule and the emptied chain
    assert p.check() == [] and not p.garbage
    text = p.backend.save()
    assert "10.244.9.9:8080" in text and "10.96.0.101" in text and "10.96.0.4/32" not in text
    assert svc3 not in text


@pytest.mark.parametrize("kind", BACKENDS)
def test_restart_converges_to_identical_rules(lab: Lab, kind: str) -> None:
    first = make(lab, kind)
    populate(first, 30)
    first.sync(first.tracker.everything())
    # some history of partial syncs, so the kernel's order is not just a full write
    first.tracker.service_deleted(service(4))
    first.sync(first.tracker.take()[0])
    first.tracker.service_added(service(4))
    first.sync(first.tracker.take()[0])
    before = normalized_save(first.backend)
    second = Proxier(first.backend, ProxyConfig(node_name="node-a"))
    populate(second, 30)
    second.sync(second.tracker.everything())
    assert normalized_save(second.backend) == before
    assert second.check() == []


@pytest.mark.parametrize("kind", ["nft"])
def test_chunked_sync_equals_one_payload(lab: Lab, kind: str, monkeypatch:
                                         pytest.MonkeyPatch) -> None:
    whole, sliced = make(lab, kind), make(lab, kind)
    monkeypatch.setattr(Backend, "limits", property(
        lambda self: Limits(max_chains=7 if self is sliced.backend else None)))
    for p in (whole, sliced):
        populate(p, 25)
        report = p.sync(p.tracker.everything())
    assert report.payloads > 5
    assert normalized_save(whole.backend) == normalized_save(sliced.backend)


@pytest.mark.parametrize("kind", BACKENDS)
def test_stale_chains_of_an_earlier_run_are_removed(lab: Lab, kind: str) -> None:
    p = make(lab, kind)
    p.backend.restore("*nat\n:KUBE-SEP-AAAAAAAAAAAAAAAA - [0:0]\n"
                      ":KUBE-SVC-AAAAAAAAAAAAAAAA - [0:0]\n"
                      "-A KUBE-SVC-AAAAAAAAAAAAAAAA -j KUBE-SEP-AAAAAAAAAAAAAAAA\n"
                      ":KUBE-PROXY-CANARY - [0:0]\nCOMMIT\n")
    populate(p, 3)
    p.sync(p.tracker.everything())
    owned = parse_save(p.backend.save()).owned("nat")
    assert "KUBE-SVC-AAAAAAAAAAAAAAAA" not in owned and "KUBE-SEP-AAAAAAAAAAAAAAAA" not in owned
    assert "KUBE-PROXY-CANARY" in owned  # not ours: left alone


@pytest.mark.parametrize("kind", BACKENDS)
def test_drift_is_detected_and_repaired(lab: Lab, kind: str) -> None:
    p = make(lab, kind)
    populate(p, 5)
    p.sync(p.tracker.everything())
    lab.exec(p.backend.netns, f"iptables-{kind}", "-t", "nat", "-F", "KUBE-SERVICES")
    lab.exec(p.backend.netns, f"iptables-{kind}", "-t", "nat", "-D", "OUTPUT", "-m", "comment",
             "--comment", "kubernetes service portals", "-j", "KUBE-SERVICES")
    problems = p.check()
    assert any("KUBE-SERVICES has 0 rules" in x for x in problems)
    assert any("nat/OUTPUT has 0 jumps" in x for x in problems)
    p.need_full = True
    p.sync({})
    assert p.check() == []


def test_drift_is_repaired_while_changes_keep_coming(lab: Lab) -> None:
    """Changes every 50 ms, a sync at most every 0.3 s, a check every 1 s: the check
    still happens, and checks falling due never let syncs go faster."""
    p = make(lab, "nft", min_sync_period=0.3, sync_period=1.0)
    populate(p, 3)
    ipt = ("ip", "netns", "exec", p.backend.netns, "iptables-nft", "-t", "nat")
    jump = ("-m", "comment", "--comment", "kubernetes service portals", "-j", "KUBE-SERVICES")
    syncs = record_syncs(p)

    async def scenario() -> None:
        runner = asyncio.create_task(p.run(lambda: asyncio.sleep(0)))
        try:
            await first_sync(p, runner)
            sh(*ipt, "-D", "OUTPUT", *jump)  # partial syncs never touch the jumps
            started = time.monotonic()
            i = 0
            while p.metrics.drift_repairs == 0 or time.monotonic() - started < 3 or \
                    "KUBE-SERVICES" not in sh(*ipt, "-S", "OUTPUT").stdout:
                assert time.monotonic() - started < 10, "the drift was never noticed"
                p.tracker.service_added(service(100 + i % 50, rv=str(i)))
                i += 1
                await asyncio.sleep(0.05)
        finally:
            p.stop()
            await runner

    asyncio.run(scenario())
    gaps = [b - a for a, b in zip(syncs, syncs[1:], strict=False)]
    assert len(gaps) >= 5 and min(gaps) >= 0.25, f"syncs closer than min_sync_period: {gaps}"


@pytest.mark.parametrize("kind", BACKENDS)
def test_failed_partial_restore_falls_back_to_full(lab: Lab, kind: str) -> None:
    p = make(lab, kind)
    populate(p, 40)
    p.sync(p.tracker.everything())
    # Someone removes the chain the next partial sync inserts into.
    ipt = ("ip", "netns", "exec", p.backend.netns, f"iptables-{kind}", "-t", "nat")
    for builtin in ("PREROUTING", "OUTPUT"):
        sh(*ipt, "-D", builtin, "-m", "comment", "--comment", "kubernetes service portals",
           "-j", "KUBE-SERVICES")
    sh(*ipt, "-F", "KUBE-SERVICES")
    sh(*ipt, "-X", "KUBE-SERVICES")
    p.tracker.service_added(service(100))
    p.tracker.slice_added(endpoint_slice(100, ["10.244.3.3"]))
    with pytest.raises(SyncFailed) as failure:
        p.sync(p.tracker.take()[0])
    cause = failure.value.__cause__
    assert isinstance(cause, RestoreError) and cause.line is not None
    assert "KUBE-SERVICES" in cause.context
    assert p.need_full and p.metrics.partial_restore_failures == 1
    report = p.sync({})
    assert report.full and p.check() == []


def test_rules_left_in_the_other_backend_are_removed(lab: Lab) -> None:
    legacy = make(lab, "legacy")
    populate(legacy, 3)
    legacy.sync(legacy.tracker.everything())
    nft = Proxier(Backend("nft", legacy.backend.netns), ProxyConfig(node_name="node-a"),
                  other_backend=legacy.backend)
    populate(nft, 3)
    nft.sync(nft.tracker.everything())
    assert "KUBE-" not in legacy.backend.save()
    assert nft.check() == []


def test_bursts_are_coalesced_and_a_quiet_change_is_immediate(lab: Lab) -> None:
    p = make(lab, "nft", min_sync_period=0.5, sync_period=30.0)
    populate(p, 3)
    syncs = record_syncs(p)

    async def scenario() -> None:
        runner = asyncio.create_task(p.run(lambda: asyncio.sleep(0)))
        await first_sync(p, runner)
        await asyncio.sleep(0.6)  # quiet spell
        changed = time.monotonic()
        p.tracker.service_added(service(50))
        while len(syncs) < 2:
            assert time.monotonic() - changed < 5, "the change was never synced"
            await asyncio.sleep(0.005)
        assert syncs[1] - changed < 0.2  # applied at once, not after min_sync_period
        for i in range(30):  # a burst
            p.tracker.service_added(service(60 + i))
            await asyncio.sleep(0.01)
        await asyncio.sleep(1.2)
        p.stop()
        await runner

    asyncio.run(scenario())
    burst = syncs[2:]
    assert 1 <= len(burst) <= 2  # 30 changes over 0.3 s: one or two syncs, not 30
    gaps = [b - a for a, b in zip(syncs, syncs[1:], strict=False)]
    assert all(g >= 0.45 for g in gaps[1:])  # never closer than min_sync_period
    # the Services without endpoints each got their REJECT rule
    assert parse_save(p.backend.save()).counts[("filter", "KUBE-SERVICES")] == 1 + 30


def test_unknown_endpoint_port_programs_nothing_for_it(lab: Lab) -> None:
    p = make(lab, "nft")
    p.tracker.service_added(service(1))
    p.tracker.slice_added({**endpoint_slice(1, ["10.244.1.2"]),
                           "ports": [{"name": "other", "port": 9, "protocol": "TCP"}]})
    p.sync(p.tracker.everything())
    # the slice's port matched no Service port: a REJECT, not a DNAT
    assert "has no endpoints" in p.backend.save(["filter"])
    assert "DNAT" not in p.backend.save(["nat"])
