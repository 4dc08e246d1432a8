"""From (what the kernel holds, what we want) to the ``iptables-restore`` payloads to send.

Pure. The sync layer keeps, in memory, every chain it wrote (``Written``); this
module turns a desired ``Ruleset`` into *units* and packs them into payloads:

- ``Write``: declare a chain (create or flush) and state all its rules;
- ``Append``: add rules at the end of a chain without declaring it (filling an
  empty top-level chain Service by Service during the first sync);
- ``Edit``: ``-D``/``-I CHAIN 1`` single rules of a big shared chain — how a
  Service added or removed changes ``KUBE-SERVICES`` without rewriting its 10,000
  rules (``plan_edit`` says why at the head);
- ``Delete``: declare and ``-X`` a chain that went away;
- ``Flush``: empty a chain that went away but that a deferred rule still names
  (``plan_partial(defer=True)``; ``plan_collect`` deletes both later);
- ``Jump``: insert a missing jump from a built-in chain (or drop a duplicate).

Each payload is atomic (one transaction per table). A rule may only name a chain
that exists when it runs, and a chain may only be deleted once nothing names it,
so units travel in *groups* that are never split: one Service's chains (its
jumps then resolve inside the payload), then the top-level chains, then the
deletions, top-down (``chain_level``). Payloads are cut between groups at
``max_chains`` declarations: iptables-nft 1.8.9's restore cost grows with the
square of the chains a payload touches (reference §11: 10,000 Services in one
payload take minutes; in slices, seconds).
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import NamedTuple

from nodeagent.proxy import chains as ch
from nodeagent.proxy.ruleset import FILTER, JUMPS, TABLES, TOP_CHAINS, Ruleset, fixed_rules

ChainKey = tuple[str, str]  # (table, chain)
Written = dict[ChainKey, tuple[str, ...]]
TOP = frozenset(TOP_CHAINS)

# Chains smaller than this are rewritten whole: a rewrite is as cheap and simpler.
EDIT_MIN_RULES = 32
JUMP_LEVEL = 6


def chain_level(table: str, name: str) -> int:
    """Rank in the reference graph: a chain only jumps to chains of lower level."""
    if table == FILTER:
        return 5  # filter chains jump only to verdicts
    if name == ch.KUBE_MARK_MASQ:
        return 0
    if name.startswith(ch.ENDPOINT_PREFIX):
        return 1
    if name.startswith(("KUBE-SVC-", "KUBE-SVL-")):
        return 2
    if name.startswith("KUBE-EXT-"):
        return 3
    if name.startswith("KUBE-FW-") or name == ch.KUBE_NODEPORTS:
        return 4
    return 5  # KUBE-SERVICES, KUBE-POSTROUTING


# -- units (NamedTuples: a full sync at 10,000 Services makes 60,000 of them) ----------------


class Write(NamedTuple):
    table: str
    name: str
    rules: tuple[str, ...]


class Edit(NamedTuple):
    table: str
    name: str
    deletes: tuple[str, ...]  # rule lines (``-A …``) to remove
    inserts: tuple[tuple[int, str], ...]  # (1-based position in the result, rule line)
    rules: tuple[str, ...]  # the chain afterwards
    deferred: int = 0  # unwanted rules left in place for ``plan_collect``


class Flush(NamedTuple):
    """Empty a chain instead of deleting it: a deferred rule still jumps to it."""

    table: str
    name: str


class Append(NamedTuple):
    table: str
    name: str
    lines: tuple[str, ...]  # rule lines (``-A …``) added at the end


class Delete(NamedTuple):
    table: str
    name: str


class Jump(NamedTuple):
    table: str
    chain: str  # built-in chain
    args: str
    insert: bool = True  # False: delete one copy (a duplicate)


Unit = Write | Append | Edit | Flush | Delete | Jump


@dataclass
class Payload:
    """One ``iptables-restore --noflush`` input and what it does to ``Written``."""

    text: str
    effects: list[tuple[ChainKey, tuple[str, ...] | None]] = field(default_factory=list)
    # rules appended to chains, applied after ``effects``
    appended: dict[ChainKey, list[str]] = field(default_factory=dict)
    flushed: list[ChainKey] = field(default_factory=list)  # emptied, to delete later
    deferred: int = 0  # unwanted rules left in shared chains, to delete later
    rules_written: Counter[str] = field(default_factory=Counter)  # by table
    chains_declared: int = 0
    jumps: int = 0


@dataclass(frozen=True)
class Limits:
    """How a backend wants its payloads cut."""

    max_chains: int | None = None  # chain declarations per payload; None: no limit


# -- what iptables-save shows ---------------------------------------------------------------

_COMMENT = re.compile(r'--comment (?:"([^"]*)"|(\S+))')
_TARGET = re.compile(r"(?:^| )-j (\S+)")
_DEST = re.compile(r" -d (\S+)")


@dataclass
class Saved:
    """The parts of an ``iptables-save`` that concern us, per table."""

    chains: dict[str, set[str]] = field(default_factory=dict)  # table → chain names
    counts: dict[ChainKey, int] = field(default_factory=dict)  # owned chain → rule count
    jumps: dict[tuple[str, str, str, str], list[str]] = field(default_factory=dict)
    rules: dict[ChainKey, list[str]] = field(default_factory=dict)  # top-level chains' lines

    def owned(self, table: str) -> set[str]:
        return {c for c in self.chains.get(table, set()) if c.startswith("KUBE-")}


def rule_key(line: str) -> tuple[str, str, str]:
    """(comment, target, destination) of a rule line: unique per rule in our top-level
    chains (a Service's external IPs share comment and target), and the same in our
    text and in iptables-save's normalised text of it (which writes ``-d IP/32``)."""
    target = _TARGET.search(" " + line)
    comment = _COMMENT.search(line)
    dest = _DEST.search(" " + line)
    return ((comment.group(1) or comment.group(2) or "") if comment else "",
            target.group(1) if target else "",
            dest.group(1).removesuffix("/32") if dest else "")


def jump_key(table: str, chain: str, args: str) -> tuple[str, str, str, str]:
    """(table, built-in chain, target, comment): how a jump is recognised in a save,
    whatever order or spelling iptables-save normalises its matches to."""
    target = _TARGET.search(" " + args)
    comment = _COMMENT.search(args)
    return (table, chain, target.group(1) if target else "",
            (comment.group(1) or comment.group(2) or "") if comment else "")


def parse_save(text: str) -> Saved:
    """Parse ``iptables-save`` output (any tables) into a ``Saved``.

    Runs on every full sync and drift check over up to 200,000 lines, so it looks
    at each line's first character and splits a rule line only up to its chain."""
    saved = Saved()
    counts = saved.counts
    table = ""
    names: set[str] = set()
    for line in text.splitlines():
        if not line:
            continue
        first = line[0]
        if first == "-":
            if not line.startswith("-A "):
                continue
            end = line.find(" ", 3)
            name = line[3:end] if end > 0 else line[3:]
            if name.startswith("KUBE-"):
                key = (table, name)
                counts[key] = counts.get(key, 0) + 1
                if key in TOP:
                    saved.rules.setdefault(key, []).append(line)
            else:
                jump = jump_key(table, name, line)
                if jump[2].startswith("KUBE-"):
                    saved.jumps.setdefault(jump, []).append(line)
        elif first == ":":
            end = line.find(" ", 1)
            name = line[1:end] if end > 0 else line[1:]
            names.add(name)
            if name.startswith("KUBE-"):
                counts.setdefault((table, name), 0)
        elif first == "*":
            table = line[1:].strip()
            names = saved.chains.setdefault(table, set())
    return saved


def drift(written: Mapping[ChainKey, tuple[str, ...]], saved: Saved) -> list[str]:
    """What differs between what we wrote and what the kernel holds (empty: no drift).

    Compares chain sets, rule counts and the built-in jumps — not rule text, which
    iptables-save normalises (probabilities come back with 11 decimals)."""
    problems: list[str] = []
    for (table, name), rules in written.items():
        have = saved.counts.get((table, name))
        if have is None:
            problems.append(f"{table}/{name} is missing")
        elif have != len(rules):
            problems.append(f"{table}/{name} has {have} rules, want {len(rules)}")
    for table in TABLES:
        for name in sorted(saved.owned(table)):
            if ch.is_hashed_chain(name) and (table, name) not in written:
                problems.append(f"{table}/{name} is not ours any more")
    for table, chain, args in JUMPS:
        found = len(saved.jumps.get(jump_key(table, chain, args), []))
        if found != 1:
            problems.append(f"{table}/{chain} has {found} jumps to "
                            f"{jump_key(table, chain, args)[2]}")
    return problems


# -- planning -----------------------------------------------------------------------------


def plan_full(new: Ruleset, saved: Saved, limits: Limits) -> list[Payload]:
    """Rewrite every chain of ``new``, delete our stale chains, fix the jumps.

    Packed per Service: one Service's chains (endpoint, service, external) always
    travel in one payload, so its jumps resolve to chains declared in that payload —
    iptables-nft makes a jump to a chain that exists only in the kernel cost a
    lookup, and 10,000 of them cost seconds. A top-level chain that is empty in the
    kernel (the first sync on a node) is created in the first payload and filled by
    appending each Service's rules in that Service's payload, in the same order a
    whole write would give; a top-level chain that has rules is rewritten whole, in
    the last payload, so traffic never sees it half-written.
    """
    fixed = fixed_rules()
    filling = [key for key in new.top if saved.counts.get(key, 0) == 0]
    state: dict[ChainKey, list[str]] = {}
    first: list[Unit] = []
    for key in filling:
        state[key] = list(fixed.get(key, ()))
        first.append(Write(*key, fixed.get(key, ())))
    groups: list[list[Unit]] = [first]
    for fkey in sorted(new.fragments):
        fragment = new.fragments[fkey]
        units: list[Unit] = [Write(c.table, c.name, c.rules) for c in fragment.chains]
        appended: dict[ChainKey, list[str]] = {}
        for table, chain, line in fragment.contributions:
            if (table, chain) in state:
                appended.setdefault((table, chain), []).append(line)
        for key, lines in appended.items():
            state[key].extend(lines)
            units.append(Append(*key, tuple(lines)))
        groups.append(units)
    last: list[Unit] = []
    for key, rules in new.top.items():
        if key not in state:
            # Rewritten whole, in the order the kernel has: a restart changes nothing.
            last.append(Write(*key, adopt_order([rule_key(r) for r in saved.rules.get(key, [])],
                                                rules)))
        elif len(state[key]) != len(rules):  # what follows the Services' rules (the tail)
            done = len(state[key])
            assert rules[:done] == tuple(state[key]), f"{key} is not filled in order"
            last.append(Append(*key, rules[done:]))
    for table, chain, args in JUMPS:
        copies = saved.jumps.get(jump_key(table, chain, args), [])
        if not copies:
            last.append(Jump(table, chain, args))
        for extra in copies[1:]:
            last.append(Jump(table, chain, extra.split(" ", 2)[2], insert=False))
    groups.append(last)
    wanted = new.chains()
    stale = [Delete(table, n) for table in TABLES for n in sorted(saved.owned(table))
             if ch.is_hashed_chain(n) and (table, n) not in wanted]
    groups += [[d] for d in sorted(stale, key=_level, reverse=True)]
    return pack_groups(groups, limits)


def plan_partial(written: Mapping[ChainKey, tuple[str, ...]], old: Ruleset, new: Ruleset,
                 limits: Limits, *, keys: Iterable[str] | None = None,
                 defer: bool = False) -> list[Payload]:
    """Write only what changed since ``old`` (which ``written`` reflects).

    ``keys`` names the fragments that may have changed (the sync layer knows);
    without it every fragment is compared, by identity first. Each changed
    Service's chains go in one group (one payload), then the top-level chains —
    edited rule by rule where that is possible — then the deletions, top-down.

    With ``defer``, a rule that should leave a big shared chain stays (a ``-D``
    there makes iptables-nft read the whole chain: 0.15–0.2 s at 10,000 rules,
    measured) and the chain it jumps to is emptied instead of deleted, so the rule
    falls through: to packets it is as if it were gone. New rules go to the head,
    in front of any such leftover. ``plan_collect`` removes the leftovers later,
    in one batch, off the path of the change.
    """
    groups: list[list[Unit]] = []
    gone: set[ChainKey] = set()
    candidates = sorted(old.fragments.keys() | new.fragments.keys()) if keys is None \
        else sorted(set(keys))
    for key in candidates:
        before, after = old.fragments.get(key), new.fragments.get(key)
        if before is after or before == after:
            continue
        was = {(c.table, c.name) for c in before.chains} if before else set()
        units: list[Unit] = []
        for c in after.chains if after else ():
            if written.get((c.table, c.name)) != c.rules:
                units.append(Write(c.table, c.name, c.rules))
            was.discard((c.table, c.name))
        gone |= was
        if units:
            groups.append(units)
    top: list[Unit] = []
    kept: set[str] = set()  # chains that rules left in shared chains still jump to
    for chain_key, rules in new.top.items():
        before_rules = written.get(chain_key)
        if before_rules is None:
            top.append(Write(*chain_key, rules))
        elif new.top is not old.top and before_rules is not rules:
            edit = plan_edit(chain_key, before_rules, rules)
            if edit is None:
                top.append(Write(*chain_key, arrange(before_rules, rules)))
                continue
            if defer and edit.deletes:
                kept.update(rule_key(r)[1] for r in edit.deletes)
                edit = edit._replace(deletes=(), deferred=len(edit.deletes),
                                     rules=tuple(r for _, r in reversed(edit.inserts))
                                     + before_rules)
            if edit.deletes or edit.inserts or edit.deferred:
                top.append(edit)
    groups.append(top)
    flushes: list[Unit] = [Flush(t, n) for (t, n) in gone if (t, n) in written and n in kept]
    deletes = [Delete(t, n) for (t, n) in gone if (t, n) in written and n not in kept]
    if flushes:
        groups.append(flushes)
    groups += [[d] for d in sorted(deletes, key=lambda d: (-_level(d), d.name))]
    return pack_groups(groups, limits)


def plan_collect(written: Mapping[ChainKey, tuple[str, ...]], new: Ruleset,
                 flushed: Iterable[ChainKey], limits: Limits) -> list[Payload]:
    """Remove what ``plan_partial(defer=True)`` left behind: the unwanted rules of
    the shared chains (one ``-D`` batch per chain) and the emptied chains nothing
    wants any more."""
    units: list[Unit] = []
    for chain_key, rules in new.top.items():
        current = written.get(chain_key)
        if current is None:
            continue
        wanted = set(rules)
        deletes = tuple(r for r in current if r not in wanted)
        if deletes:
            units.append(Edit(*chain_key, deletes=deletes, inserts=(),
                              rules=tuple(r for r in current if r in wanted)))
    desired = {(c.table, c.name) for f in new.fragments.values() for c in f.chains}
    units += [Delete(t, n) for (t, n) in sorted(set(flushed))
              if (t, n) in written and (t, n) not in desired]
    return pack_groups([units], limits)


def plan_cleanup(saved: Saved) -> list[Payload]:
    """Remove everything this proxy ever writes: the jumps, then all KUBE-* chains we
    own (top-level names and hashed ones). Used by ``--cleanup`` and to clear the
    other iptables backend, whose rules would otherwise still apply."""
    ours = {n for _, n in TOP_CHAINS}
    units: list[Unit] = []
    for key, lines in sorted(saved.jumps.items()):
        if key[2] in ours:
            units += [Jump(key[0], key[1], line.split(" ", 2)[2], insert=False)
                      for line in lines]
    for table in TABLES:
        units += [Delete(table, n) for n in sorted(saved.owned(table))
                  if n in ours or ch.is_hashed_chain(n)]
    return pack(units, Limits())


def plan_edit(chain_key: ChainKey, current: tuple[str, ...], desired: tuple[str, ...]
              ) -> Edit | None:
    """Delete the rules of ``current`` not in ``desired`` (``-D`` by rule text) and
    insert the new ones at the head (``-I CHAIN 1``); None when a whole rewrite is
    the better choice (a small chain, many changes, or a rule appearing twice).

    New rules go to the head because iptables-nft inserts there without reading the
    chain, while ``-I CHAIN <n>`` first fetches every rule of it (0.2 s for 10,000
    rules, measured). Order among a Service's rules in these chains carries no
    meaning — each matches its own VIP:port, NodePort or comment — except for the
    NodePort tail rule, which never moves. So the chain's order is whatever the
    kernel holds (``arrange``); ``plan_full`` adopts it from iptables-save, so a
    restart rewrites the same order.
    """
    desired_set = set(desired)
    current_set = set(current)
    if len(desired_set) != len(desired) or len(current_set) != len(current):
        return None
    deletes = tuple(r for r in current if r not in desired_set)
    adds = [r for r in desired if r not in current_set]
    if len(desired) < EDIT_MIN_RULES and (deletes or adds):
        return None
    if 2 * (len(deletes) + len(adds)) > len(desired):
        return None
    return Edit(*chain_key, deletes=deletes, inserts=tuple((1, r) for r in reversed(adds)),
                rules=arrange(current, desired))


def arrange(current: tuple[str, ...], desired: tuple[str, ...]) -> tuple[str, ...]:
    """``desired``'s rules in ``current``'s order, new ones first (as ``plan_edit``
    inserts them). The fixed rules of a top-level chain never change, so they stay
    where they are — the NodePort tail last."""
    desired_set = set(desired)
    current_set = set(current)
    return tuple(r for r in desired if r not in current_set) + \
        tuple(r for r in current if r in desired_set)


def adopt_order(kernel: list[tuple[str, str, str]], desired: tuple[str, ...]
                ) -> tuple[str, ...]:
    """``desired`` in the order the kernel has its rules in (matched by ``rule_key``),
    rules the kernel lacks first. Falls back to ``desired`` as is if keys repeat."""
    position: dict[tuple[str, str, str], int] = {}
    for i, key in enumerate(kernel):
        position.setdefault(key, i)
    keys = [rule_key(r) for r in desired]
    if len(set(keys)) != len(keys):
        return desired
    fresh = tuple(r for r, k in zip(desired, keys, strict=True) if k not in position)
    known = sorted((position[k], r) for r, k in zip(desired, keys, strict=True) if k in position)
    return fresh + tuple(r for _, r in known)


# -- packing -----------------------------------------------------------------------------


def _level(unit: Unit) -> int:
    if isinstance(unit, Jump):
        return JUMP_LEVEL
    return chain_level(unit.table, unit.name)


def pack(units: Iterable[Unit], limits: Limits) -> list[Payload]:
    """Units with no grouping: writes bottom-up, then deletes top-down, so any cut
    leaves every payload valid."""
    units = list(units)
    building = sorted((u for u in units if not isinstance(u, Delete)), key=_level)
    tearing = sorted((u for u in units if isinstance(u, Delete)), key=_level, reverse=True)
    return pack_groups([[u] for u in [*building, *tearing]], limits)


def pack_groups(groups: Iterable[list[Unit]], limits: Limits) -> list[Payload]:
    """Cut a sequence of groups into payloads of at most ``limits.max_chains`` chain
    declarations, never splitting a group (one larger than the limit goes alone)."""
    payloads: list[Payload] = []
    batch: list[Unit] = []
    declared = 0
    for group in groups:
        if not group:
            continue
        cost = sum(1 for u in group if isinstance(u, Write | Delete | Flush))
        if batch and limits.max_chains is not None and declared + cost > limits.max_chains:
            payloads.append(render_payload(batch))
            batch, declared = [], 0
        batch.extend(group)
        declared += cost
    if batch:
        payloads.append(render_payload(batch))
    return payloads


def render_payload(units: list[Unit]) -> Payload:
    """One restore input. Per table: chain lines, then rule deletions, then rules and
    insertions, then ``-X``; so a rule only names chains declared above it, and a
    chain is deleted only after the rules naming it were flushed or deleted."""
    payload = Payload(text="")
    out: list[str] = []
    for table in TABLES:
        mine = [u for u in units if u.table == table]
        if not mine:
            continue
        declares: list[str] = []
        removals: list[str] = []
        additions: list[str] = []
        drops: list[str] = []
        for u in mine:
            if isinstance(u, Write):
                declares.append(f":{u.name} - [0:0]")
                additions.extend(u.rules)
                payload.effects.append(((table, u.name), u.rules))
                payload.rules_written[table] += len(u.rules)
            elif isinstance(u, Append):
                additions.extend(u.lines)
                payload.appended.setdefault((table, u.name), []).extend(u.lines)
                payload.rules_written[table] += len(u.lines)
            elif isinstance(u, Delete):
                declares.append(f":{u.name} - [0:0]")
                drops.append(f"-X {u.name}")
                payload.effects.append(((table, u.name), None))
            elif isinstance(u, Flush):
                declares.append(f":{u.name} - [0:0]")
                payload.effects.append(((table, u.name), ()))
                payload.flushed.append((table, u.name))
            elif isinstance(u, Edit):
                removals.extend("-D" + line[2:] for line in u.deletes)
                length = len(u.rules) - len(u.inserts)
                for position, line in u.inserts:
                    if position == length + 1:
                        additions.append(line)
                    else:
                        additions.append(f"-I {u.name} {position}" + line[3 + len(u.name):])
                    length += 1
                payload.effects.append(((table, u.name), u.rules))
                payload.rules_written[table] += len(u.inserts)
                payload.deferred += u.deferred
            else:
                if u.insert:
                    additions.append(f"-I {u.chain} 1 {u.args}")
                    payload.rules_written[table] += 1
                else:
                    removals.append(f"-D {u.chain} {u.args}")
                payload.jumps += 1
        payload.chains_declared += len(declares)
        out += [f"*{table}", *declares, *removals, *additions, *drops, "COMMIT"]
    payload.text = "\n".join(out) + "\n"
    return payload
