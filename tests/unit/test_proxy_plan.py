"""Planning restore payloads: edits, ordering, chunking, stale chains, jumps, drift.

``Kernel`` below is a small model of ``iptables-restore --noflush`` semantics (a
chain line creates or flushes, a rule may only jump to an existing chain, ``-X``
only deletes an unreferenced chain, ``-D`` needs the rule, ``-I`` a valid index,
each table block all-or-nothing). Every plan is run through it and the result is
compared with the desired ruleset; the real iptables gets the same payloads in
the root integration tests.
"""

from __future__ import annotations

import pytest

from nodeagent.proxy.apply import restore_error
from nodeagent.proxy.model import Endpoint as E  # noqa: N817
from nodeagent.proxy.model import ServicePort
from nodeagent.proxy.plan import (
    Limits,
    Saved,
    adopt_order,
    chain_level,
    drift,
    parse_save,
    plan_cleanup,
    plan_collect,
    plan_edit,
    plan_full,
    plan_partial,
    rule_key,
)
from nodeagent.proxy.ruleset import JUMPS, Context, Ruleset, assemble, build_fragment

CTX = Context("node-a")
BUILTIN = {"filter": {"INPUT", "FORWARD", "OUTPUT"},
           "nat": {"PREROUTING", "INPUT", "OUTPUT", "POSTROUTING"}}
VERDICTS = {"ACCEPT", "DROP", "REJECT", "RETURN", "DNAT", "MARK", "MASQUERADE"}


class RestoreFailed(Exception):
    pass


def _target(rule: str) -> str:
    return rule.rsplit("-j ", 1)[-1].split()[0]


class Kernel:
    """A model of the rule state and of iptables-restore --noflush."""

    def __init__(self) -> None:
        self.tables: dict[str, dict[str, list[str]]] = {
            t: {c: [] for c in chains} for t, chains in BUILTIN.items()}

    def restore(self, text: str) -> None:
        table = ""
        work: dict[str, list[str]] = {}
        for line in text.splitlines():
            if line.startswith("*"):
                table = line[1:]
                work = {c: list(r) for c, r in self.tables[table].items()}
            elif line == "COMMIT":
                self.tables[table] = work
            elif line.startswith(":"):
                work[line[1:].split()[0]] = []
            else:
                op, chain, *rest = line.split(" ")
                if chain not in work:
                    raise RestoreFailed(f"no chain {chain}: {line}")
                if op == "-X":
                    if any(_target(r) == chain for rules in work.values() for r in rules):
                        raise RestoreFailed(f"{chain} still referenced")
                    del work[chain]
                    continue
                if op == "-I":
                    position, rest = int(rest[0]), rest[1:]
                body = " ".join(rest)
                if op in ("-A", "-I"):
                    target = _target(body)
                    if target not in VERDICTS and target not in work:
                        raise RestoreFailed(f"jump to missing {target}: {line}")
                if op == "-A":
                    work[chain].append(body)
                elif op == "-I":
                    if not 1 <= position <= len(work[chain]) + 1:
                        raise RestoreFailed(f"index too big: {line}")
                    work[chain].insert(position - 1, body)
                elif op == "-D":
                    if body not in work[chain]:
                        raise RestoreFailed(f"no such rule: {line}")
                    work[chain].remove(body)

    def owned(self) -> dict[tuple[str, str], tuple[str, ...]]:
        return {(t, c): tuple(f"-A {c} {r}" for r in rules) for t, chains in self.tables.items()
                for c, rules in chains.items() if c.startswith("KUBE-")}

    def save(self) -> str:
        out = []
        for table, chains in self.tables.items():
            out.append(f"*{table}")
            out += [f":{c} - [0:0]" for c in chains]
            out += [f"-A {c} {r}" for c, rules in chains.items() for r in rules]
            out.append("COMMIT")
        return "\n".join(out) + "\n"


def ruleset(n: int, *, endpoints: int = 3, skip: int = -1, shift: int = 0) -> Ruleset:
    fragments = {}
    for i in range(n):
        if i == skip:
            continue
        sp = ServicePort("ns", f"s{i}", "http", "TCP", f"10.96.{i // 250}.{i % 250 + 1}", 80,
                         node_port=30000 + i if i % 3 == 0 else None)
        eps = tuple(E(f"10.244.{(i + j + shift) // 250}.{(i + j + shift) % 250 + 2}", 8080)
                    for j in range(endpoints if i % 5 else 0))
        fragments[sp.key] = build_fragment(sp, eps, CTX)
    return assemble(fragments)


def apply_all(kernel: Kernel, payloads: list) -> None:
    for p in payloads:
        kernel.restore(p.text)


def test_full_sync_into_an_empty_kernel_matches_the_ruleset() -> None:
    kernel, want = Kernel(), ruleset(40)
    apply_all(kernel, plan_full(want, parse_save(kernel.save()), Limits()))
    assert kernel.owned() == want.chains()
    jumps = [r for c in ("PREROUTING", "OUTPUT") for r in kernel.tables["nat"][c]]
    assert len(jumps) == 2 and all(r.endswith("-j KUBE-SERVICES") for r in jumps)
    assert drift(want.chains(), parse_save(kernel.save())) == []


@pytest.mark.parametrize("max_chains", [1, 7, 50])
def test_chunked_payloads_are_each_valid_and_converge(max_chains: int) -> None:
    kernel, want = Kernel(), ruleset(40)
    payloads = plan_full(want, parse_save(kernel.save()), Limits(max_chains=max_chains))
    assert len(payloads) > 1
    # a Service's chains are never split (at most 5 here), nor is the first group (9)
    assert all(p.chains_declared <= max(max_chains, 9) for p in payloads)
    apply_all(kernel, payloads)  # raises if any payload names a chain not there yet
    assert kernel.owned() == want.chains()
    # and tearing most of it down again, chunked, deletes in a valid order
    smaller = ruleset(5)
    apply_all(kernel, plan_full(smaller, parse_save(kernel.save()),
                                Limits(max_chains=max_chains)))
    assert kernel.owned() == smaller.chains()


def test_full_sync_is_idempotent_and_fixes_duplicate_jumps() -> None:
    kernel, want = Kernel(), ruleset(10)
    apply_all(kernel, plan_full(want, parse_save(kernel.save()), Limits()))
    kernel.tables["nat"]["OUTPUT"].append(kernel.tables["nat"]["OUTPUT"][0])  # a duplicate
    kernel.tables["nat"]["KUBE-PROXY-CANARY"] = []  # not a prefix of ours: kept
    kernel.tables["nat"]["KUBE-SVC-AAAAAAAAAAAAAAAA"] = ["-j KUBE-MARK-MASQ"]  # stale: removed
    assert drift(want.chains(), parse_save(kernel.save()))
    apply_all(kernel, plan_full(want, parse_save(kernel.save()), Limits()))
    assert len(kernel.tables["nat"]["OUTPUT"]) == 1
    assert "KUBE-SVC-AAAAAAAAAAAAAAAA" not in kernel.tables["nat"]
    owned = kernel.owned()
    owned.pop(("nat", "KUBE-PROXY-CANARY"))
    assert owned == want.chains()


def test_partial_endpoint_change_touches_only_that_service() -> None:
    kernel, old = Kernel(), ruleset(60)
    apply_all(kernel, plan_full(old, parse_save(kernel.save()), Limits()))
    fragments = dict(old.fragments)
    sp = ServicePort("ns", "s7", "http", "TCP", "10.96.0.8", 80)
    fragments[sp.key] = build_fragment(sp, (E("10.244.9.9", 8080),), CTX)
    new = assemble(fragments)
    payloads = plan_partial(old.chains(), old, new, Limits())
    text = "".join(p.text for p in payloads)
    assert "KUBE-SERVICES" not in text  # the shared chains did not change
    assert text.count("\n:KUBE-SVC-") == 1 and text.count("-X KUBE-SEP-") == 3
    apply_all(kernel, payloads)
    assert kernel.owned() == new.chains()


def after(written: dict, payloads: list) -> dict:
    """``written`` with the payloads' effects applied, as the sync layer records them."""
    state = dict(written)
    for p in payloads:
        for key, rules in p.effects:
            if rules is None:
                state.pop(key, None)
            else:
                state[key] = rules
        for key, lines in p.appended.items():
            state[key] = state.get(key, ()) + tuple(lines)
    return state


def same_rules(a: dict, b: dict) -> bool:
    """Equal chains with equal rule sets (the shared chains' order is history)."""
    return a.keys() == b.keys() and all(sorted(a[k]) == sorted(b[k]) for k in a)


def test_partial_service_added_and_removed_edit_kube_services_in_place() -> None:
    kernel, old = Kernel(), ruleset(60, skip=31)
    apply_all(kernel, plan_full(old, parse_save(kernel.save()), Limits()))
    added = ruleset(60)
    payloads = plan_partial(old.chains(), old, added, Limits())
    text = "".join(p.text for p in payloads)
    assert ":KUBE-SERVICES" not in text  # no rewrite of the 50-rule chain…
    assert "\n-I KUBE-SERVICES 1 " in text  # …one insertion at its head instead
    apply_all(kernel, payloads)
    written = after(old.chains(), payloads)
    assert kernel.owned() == written and same_rules(written, added.chains())
    assert written[("nat", "KUBE-SERVICES")][-1] == added.top[("nat", "KUBE-SERVICES")][-1]
    removed = ruleset(60, skip=41)
    payloads = plan_partial(written, added, removed, Limits())
    text = "".join(p.text for p in payloads)
    assert ":KUBE-SERVICES" not in text and "-D KUBE-SERVICES " in text
    assert "-X KUBE-SVC-" in text
    apply_all(kernel, payloads)
    written = after(written, payloads)
    assert kernel.owned() == written and same_rules(written, removed.chains())
    # a full sync keeps the order the kernel has (a restart changes nothing)
    again = plan_full(removed, parse_save(kernel.save()), Limits())
    apply_all(kernel, again)
    assert kernel.owned() == after({}, again) == written


def test_many_changes_rewrite_the_shared_chain_instead() -> None:
    old, new = ruleset(60), ruleset(60, shift=1)
    new_fragments = {k: f for k, f in new.fragments.items() if not k.startswith("ns/s1")}
    payloads = plan_partial(old.chains(), old, assemble(new_fragments), Limits())
    assert ":KUBE-SERVICES - [0:0]" in "".join(p.text for p in payloads)


@pytest.mark.parametrize(("old", "new", "expected"), [
    (list("abcdefgh"), list("abXcdefgh"), ((), ((1, "X"),))),
    (list("abcdefgh"), list("abcdfgh"), (("e",), ())),
    (list("abcdefgh"), list("Zabcdefh"), (("g",), ((1, "Z"),))),
    (list("abcdefgh"), list("XYabcdefgh"), ((), ((1, "Y"), (1, "X")))),
])
def test_plan_edit(old: list[str], new: list[str], expected: tuple) -> None:
    filler = tuple(f"k{i}" for i in range(64))  # big enough to be worth editing
    o, n = tuple(old) + filler, tuple(new) + filler
    edit = plan_edit(("nat", "KUBE-SERVICES"), o, n)
    assert edit is not None and (edit.deletes, edit.inserts) == expected


def test_plan_edit_ignores_order_and_refuses_duplicates_and_small_chains() -> None:
    big = tuple(f"r{i}" for i in range(100))
    reordered = plan_edit(("nat", "C"), big, big[1:2] + big[:1] + big[2:])
    assert reordered is not None and not reordered.deletes and not reordered.inserts
    assert reordered.rules == big  # the kernel's order stays
    assert plan_edit(("nat", "C"), big, big + big[:1]) is None
    assert plan_edit(("nat", "C"), big[:5], big[:6]) is None


def test_cleanup_removes_everything_ours_only() -> None:
    kernel = Kernel()
    apply_all(kernel, plan_full(ruleset(10), parse_save(kernel.save()), Limits()))
    kernel.tables["nat"]["OUTPUT"].append("-j RETURN")  # someone else's rule
    kernel.tables["nat"]["KUBE-OTHER"] = []  # someone else's chain
    apply_all(kernel, plan_cleanup(parse_save(kernel.save())))
    assert kernel.tables["nat"]["OUTPUT"] == ["-j RETURN"]
    assert set(kernel.owned()) == {("nat", "KUBE-OTHER")}


SAVE = """\
# Generated by iptables-nft-save v1.8.9 (nf_tables)
*nat
:PREROUTING ACCEPT [3:180]
:OUTPUT ACCEPT [0:0]
:KUBE-SERVICES - [0:0]
:KUBE-SVC-X - [0:0]
-A PREROUTING -m comment --comment "kubernetes service portals" -j KUBE-SERVICES
-A OUTPUT -j DOCKER
-A KUBE-SERVICES -d 10.96.0.1/32 -p tcp -m comment --comment "a/b cluster IP" -m tcp --dport 80 -j KUBE-SVC-X
COMMIT
"""


def test_parse_save_and_drift() -> None:
    saved = parse_save(SAVE)
    assert saved.owned("nat") == {"KUBE-SERVICES", "KUBE-SVC-X"}
    assert saved.counts[("nat", "KUBE-SERVICES")] == 1 and saved.counts[("nat", "KUBE-SVC-X")] == 0
    key = ("nat", "PREROUTING", "KUBE-SERVICES", "kubernetes service portals")
    assert key in saved.jumps
    problems = drift({("nat", "KUBE-SERVICES"): ("a", "b")}, saved)
    assert "nat/KUBE-SERVICES has 1 rules, want 2" in problems
    assert "nat/KUBE-SVC-X is not ours any more" in problems
    assert sum("jumps to" in p for p in problems) == len(JUMPS) - 1


def test_levels_only_point_down() -> None:
    assert chain_level("nat", "KUBE-MARK-MASQ") < chain_level("nat", "KUBE-SEP-A") \
        < chain_level("nat", "KUBE-SVC-A") < chain_level("nat", "KUBE-EXT-A") \
        < chain_level("nat", "KUBE-SERVICES")
    assert chain_level("nat", "KUBE-NODEPORTS") < chain_level("nat", "KUBE-SERVICES")
    assert chain_level("nat", "KUBE-EXT-A") < chain_level("nat", "KUBE-NODEPORTS")


@pytest.mark.parametrize(("stderr", "line"), [
    ("iptables-nft-restore v1.8.9 (nf_tables): Chain 'KUBE-NOPE' does not exist\n"
     "Error occurred at line: 4\nTry `iptables-nft-restore -h' for more information.\n", 4),
    ("iptables-nft-restore: line 3 failed: Bad rule (does a matching rule exist?).\n", 3),
    ("Another app is currently holding the xtables lock.\n", None),
])
def test_restore_error_names_the_line(stderr: str, line: int | None) -> None:
    payload = "*nat\n:KUBE-A - [0:0]\n-A KUBE-A -j RETURN\n-A KUBE-A -j KUBE-NOPE\nCOMMIT\n"
    err = restore_error(payload, stderr, backend="nft")
    assert err.line == line
    if line is not None:
        assert err.text == payload.splitlines()[line - 1]
        assert f"line {line}: {err.text}" in str(err)
        assert f">{line:6d} {err.text}" in err.context
    else:
        assert "xtables lock" in str(err)


def test_saved_defaults() -> None:
    assert Saved().owned("nat") == set()


def test_deferred_removal_falls_through_then_is_collected() -> None:
    kernel, old = Kernel(), ruleset(60)
    apply_all(kernel, plan_full(old, parse_save(kernel.save()), Limits()))
    new = ruleset(60, skip=41)
    payloads = plan_partial(old.chains(), old, new, Limits(), defer=True)
    text = "".join(p.text for p in payloads)
    svc = next(c.name for c in old.fragments["ns/s41:http/TCP"].chains
               if c.name.startswith("KUBE-SVC-"))
    assert "-D KUBE-SERVICES" not in text  # no read of the big chain on the way
    assert f":{svc} - [0:0]" in text and f"-X {svc}" not in text  # emptied, kept
    assert "-X KUBE-SEP-" in text  # endpoint chains are nobody else's: gone now
    apply_all(kernel, payloads)
    written = after(old.chains(), payloads)
    assert kernel.owned() == written and written[("nat", svc)] == ()
    flushed = [k for p in payloads for k in p.flushed]
    assert flushed == [("nat", svc)] and sum(p.deferred for p in payloads) == 1
    collect = plan_collect(written, new, flushed, Limits())
    assert "-D KUBE-SERVICES" in "".join(p.text for p in collect)
    apply_all(kernel, collect)
    written = after(written, collect)
    assert kernel.owned() == written and same_rules(written, new.chains())


def test_a_removed_service_that_returns_revives_its_leftover() -> None:
    kernel, old = Kernel(), ruleset(60)
    apply_all(kernel, plan_full(old, parse_save(kernel.save()), Limits()))
    gone = ruleset(60, skip=41)
    payloads = plan_partial(old.chains(), old, gone, Limits(), defer=True)
    apply_all(kernel, payloads)
    written = after(old.chains(), payloads)
    back = plan_partial(written, gone, old, Limits(), defer=True)
    assert "-I KUBE-SERVICES" not in "".join(p.text for p in back)  # still there
    apply_all(kernel, back)
    written = after(written, back)
    assert kernel.owned() == written and same_rules(written, old.chains())
    assert plan_collect(written, old, [k for p in payloads for k in p.flushed],
                        Limits()) == []


def test_a_services_external_ips_keep_the_kernels_order() -> None:
    """Several external IPs of one port share comment and target: the destination tells
    their rules apart, in our text and in iptables-save's (``-d IP/32`` moved first),
    so a restart rewrites KUBE-SERVICES in the order the kernel has."""
    sp = ServicePort("demo", "web", "http", "TCP", "10.96.0.20", 80,
                     external_ips=("192.0.2.10", "192.0.2.11"))
    fragment = build_fragment(sp, (E("10.244.1.5", 8080),), CTX)
    ours = tuple(line for _, chain, line in fragment.contributions if chain == "KUBE-SERVICES")
    assert len(ours) == 3 and len({rule_key(line) for line in ours}) == 3
    saved = [f"-A KUBE-SERVICES -d {ip}/32 -p tcp -m comment --comment "
             f'"demo/web:http external IP" -m tcp --dport 80 -j KUBE-EXT-XRY76EGRC3BSCIIJ'
             for ip in ("192.0.2.11", "192.0.2.10")]
    kernel = [rule_key(line) for line in saved]
    assert adopt_order(kernel, ours[1:]) == (ours[2], ours[1])
