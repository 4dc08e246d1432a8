"""The desired iptables ruleset: a pure function of Service ports, endpoints and the node.

Shape (kube-proxy's iptables mode, reference §2–§7)::

    nat    PREROUTING, OUTPUT → KUBE-SERVICES ─┬─ -d VIP --dport P → KUBE-SVC-h / KUBE-SVL-h
                                               ├─ -d externalIP --dport P → KUBE-EXT-h
                                               ├─ -d LB IP --dport P → KUBE-EXT-h / KUBE-FW-h
                                               └─ (last) dst LOCAL  → KUBE-NODEPORTS
           KUBE-NODEPORTS   --dport NODEPORT → KUBE-EXT-h → KUBE-SVC-h / KUBE-SVL-h
           KUBE-FW-h        -s <loadBalancerSourceRange> → KUBE-EXT-h; the rest falls off
           KUBE-SVC-h       [masquerade off-cluster sources] [affinity checks]
                            statistic 1/n, 1/(n-1), …, last unconditional → KUBE-SEP-e
           KUBE-SEP-e       hairpin masquerade, DNAT to ip:port [recent --set]
           POSTROUTING → KUBE-POSTROUTING: marked → clear mark, MASQUERADE --random-fully
    filter FORWARD, OUTPUT → KUBE-SERVICES: REJECT (no endpoints) / DROP (no local ones)
           INPUT, FORWARD → KUBE-EXTERNAL-SERVICES: the same for NodePorts, external
                            IPs and LB IPs
           FORWARD → KUBE-FORWARD: drop INVALID, accept marked and established
           INPUT, OUTPUT, FORWARD → KUBE-PROXY-FIREWALL: DROP what fell off a KUBE-FW
                            chain (still addressed to the LB IP: not DNATed)
           INPUT, OUTPUT → KUBE-FIREWALL: drop martian traffic to 127/8 (NodePorts
                            answer on 127.0.0.1: the node sets route_localnet=1)

The unit of change is a ``Fragment``: everything one Service port contributes (its
own chains, and its rules inside the shared top-level chains). The sync layer
memoises fragments, so an endpoint change rebuilds one fragment, and ``plan``
compares fragments by identity to find what to write.

Every rule is assembled from tokens that are checked against a restore-safe
alphabet (``UnsafeRule``), so even a bug upstream of here cannot put a newline,
quote or stray option into the restore text.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cache
from typing import NamedTuple

from nodeagent.proxy import chains as ch
from nodeagent.proxy.model import Endpoint, ServicePort

NAT = "nat"
FILTER = "filter"
TABLES = (FILTER, NAT)

MASQ_MARK = "0x4000"  # bit 14, kube-proxy's default --iptables-masquerade-bit
# kube-proxy's "large cluster mode": past this many endpoints, per-endpoint comments
# are left out, which shrinks the ruleset by about 40% (reference §2.3).
LARGE_CLUSTER_ENDPOINTS = 1000

# Top-level chains, in render order, with their fixed rules (the service-dependent
# ones are filled in by ``assemble``).
TOP_CHAINS: tuple[tuple[str, str], ...] = (
    (FILTER, ch.KUBE_SERVICES),
    (FILTER, ch.KUBE_EXTERNAL_SERVICES),
    (FILTER, ch.KUBE_FORWARD),
    (FILTER, ch.KUBE_PROXY_FIREWALL),
    (FILTER, ch.KUBE_FIREWALL),
    (NAT, ch.KUBE_SERVICES),
    (NAT, ch.KUBE_NODEPORTS),
    (NAT, ch.KUBE_POSTROUTING),
    (NAT, ch.KUBE_MARK_MASQ),
)

# Jumps from built-in chains into ours: (table, built-in chain, rule args). They are
# inserted at position 1 once (only if missing), never rewritten: restating a built-in
# chain would mean owning every other component's rules in it.
JUMPS: tuple[tuple[str, str, str], ...] = (
    (FILTER, "INPUT", '-m comment --comment "kubernetes externally-visible service portals"'
     " -m conntrack --ctstate NEW -j KUBE-EXTERNAL-SERVICES"),
    (FILTER, "FORWARD", '-m comment --comment "kubernetes forwarding rules" -j KUBE-FORWARD'),
    (FILTER, "FORWARD", '-m comment --comment "kubernetes service portals"'
     " -m conntrack --ctstate NEW -j KUBE-SERVICES"),
    (FILTER, "FORWARD", '-m comment --comment "kubernetes externally-visible service portals"'
     " -m conntrack --ctstate NEW -j KUBE-EXTERNAL-SERVICES"),
    (FILTER, "OUTPUT", '-m comment --comment "kubernetes service portals"'
     " -m conntrack --ctstate NEW -j KUBE-SERVICES"),
    (NAT, "PREROUTING", '-m comment --comment "kubernetes service portals" -j KUBE-SERVICES'),
    (NAT, "OUTPUT", '-m comment --comment "kubernetes service portals" -j KUBE-SERVICES'),
    (NAT, "POSTROUTING", '-m comment --comment "kubernetes postrouting rules"'
     " -j KUBE-POSTROUTING"),
    # kube-proxy's KUBE-FIREWALL jumps carry no comment (kubelet's chain of that name)
    (FILTER, "INPUT", "-j KUBE-FIREWALL"),
    (FILTER, "OUTPUT", "-j KUBE-FIREWALL"),
    # last: inserted at position 1, so they end up first, as kube-proxy's do
    *((FILTER, builtin, '-m comment --comment "kubernetes load balancer firewall"'
       " -m conntrack --ctstate NEW -j KUBE-PROXY-FIREWALL")
      for builtin in ("INPUT", "OUTPUT", "FORWARD")),
)

# Used with fullmatch. Tokens: one or more words of the safe alphabet, single spaces.
_SAFE_ARGS = re.compile(r"[A-Za-z0-9_.:/!,+-]+(?: [A-Za-z0-9_.:/!,+-]+)*")
_SAFE_COMMENT = re.compile(r"[A-Za-z0-9_.:/ >;,()=-]+")


class UnsafeRule(ValueError):
    """A rule token outside the restore-safe alphabet: a bug or hostile input upstream."""


@dataclass(frozen=True)
class Context:
    """Node-wide facts every fragment depends on. A change rebuilds every fragment."""

    node_name: str
    cluster_cidr: str | None = "10.244.0.0/16"  # traffic from outside it is masqueraded
    large_cluster: bool = False  # leave out per-endpoint comments
    sctp: bool = True  # the kernel has SCTP; without it SCTP ports get no rules
    zone: str = ""  # the node's topology.kubernetes.io/zone label (topology hints)


class Chain(NamedTuple):
    """One chain we own: its table, name and complete rule lines (``-A NAME …``)."""

    table: str
    name: str
    rules: tuple[str, ...]


@dataclass(frozen=True)
class Fragment:
    """What one Service port puts into the ruleset."""

    key: str
    chains: tuple[Chain, ...] = ()  # its own nat chains, leaves first
    # (table, top-level chain, rule line) it adds to the shared chains
    contributions: tuple[tuple[str, str, str], ...] = ()
    # "internal"/"external" when that Local policy found no local endpoint (a metric)
    no_local_endpoints: tuple[str, ...] = ()


@dataclass(frozen=True)
class Ruleset:
    """The complete desired state of the chains we own."""

    top: Mapping[tuple[str, str], tuple[str, ...]]
    fragments: Mapping[str, Fragment] = field(default_factory=dict)

    def chains(self) -> dict[tuple[str, str], tuple[str, ...]]:
        """Every owned chain ``(table, name) → rules``: top-level first, then by fragment."""
        out = dict(self.top)
        for key in sorted(self.fragments):
            for chain in self.fragments[key].chains:
                out[(chain.table, chain.name)] = chain.rules
        return out

    def rule_count(self, table: str) -> int:
        return sum(len(rules) for (t, _), rules in self.chains().items() if t == table)


# -- rule text -------------------------------------------------------------------------


def rule(chain: str, *args: str, comment: str | None = None) -> str:
    """``-A chain [-m comment --comment "…"] args…`` after checking every token."""
    if not ch.is_valid_chain(chain):
        raise UnsafeRule(f"chain name {chain!r}")
    # Each token is one word (no space) and all of them together use only the safe
    # alphabet: one regex over the joined text instead of one per token (this runs
    # for 170,000 rules at 10,000 Services).
    text = " ".join(args)
    if args and (not _SAFE_ARGS.fullmatch(text) or text.count(" ") != len(args) - 1):
        bad = next((t for t in args if " " in t or not _SAFE_ARGS.fullmatch(t)), text)
        raise UnsafeRule(f"token {bad!r} in a rule of {chain}")
    head = ["-A", chain]
    if comment is not None:
        if not _SAFE_COMMENT.fullmatch(comment):
            raise UnsafeRule(f"comment {comment!r} in a rule of {chain}")
        head += ["-m", "comment", "--comment", f'"{comment}"']
    return " ".join([*head, text]) if text else " ".join(head)


def _proto(protocol: str) -> tuple[str, ...]:
    p = protocol.lower()
    return ("-m", p, "-p", p)


@cache
def probability(n: int) -> str:
    """kube-proxy's ``%0.10f`` of 1/n (``0.3333333333``), cached as upstream does."""
    return f"{1.0 / n:0.10f}"


# -- endpoints -------------------------------------------------------------------------


def topology_mode(endpoints: Sequence[Endpoint], node_name: str, zone: str) -> str:
    """Which hints to follow: "node", "zone" or "" (all endpoints), as kube-proxy's
    ``topologyModeFromHints``: a kind of hint is used only when every ready endpoint
    has one and at least one is for this node (zone); node hints first."""
    ready = [e for e in endpoints if e.ready]
    if not ready:
        return ""
    if all(e.node_hints for e in ready) and any(node_name in e.node_hints for e in ready):
        return "node"
    if all(e.zone_hints for e in ready) and any(zone in e.zone_hints for e in ready):
        return "zone"
    return ""


def usable_endpoints(endpoints: Sequence[Endpoint], node_name: str, *, zone: str = ""
                     ) -> tuple[tuple[Endpoint, ...], tuple[Endpoint, ...]]:
    """(cluster, local) endpoint sets, kube-proxy's ``CategorizeEndpoints``.

    Cluster: the ready endpoints the topology hints leave for this node (all of them
    unless ``topology_mode`` says otherwise), or, when none is ready anywhere, the
    serving-and-terminating ones. Local (for the Local traffic policies, which ignore
    hints): this node's ready endpoints, else its serving-and-terminating ones."""
    mode = topology_mode(endpoints, node_name, zone)
    ready = [e for e in endpoints if e.ready]
    fallback = [e for e in endpoints if e.serving and e.terminating]
    near = [e for e in ready if mode == "" or (node_name in e.node_hints if mode == "node"
                                               else zone in e.zone_hints)]
    cluster = near or fallback
    local = [e for e in ready if e.node_name == node_name] or \
        [e for e in fallback if e.node_name == node_name]
    return tuple(cluster), tuple(local)


# -- one Service port --------------------------------------------------------------------


def build_fragment(sp: ServicePort, endpoints: Sequence[Endpoint], ctx: Context) -> Fragment:
    """Everything ``sp`` contributes, given its endpoints (sorted by ``ip:port``)."""
    if sp.protocol == "SCTP" and not ctx.sctp:
        return Fragment(key=sp.key)
    spn, proto = sp.service_port_name, sp.protocol.lower()
    h = ch.port_hash(spn, proto)  # all of a port's chains share it
    svc, svl, ext, fw = "KUBE-SVC-" + h, "KUBE-SVL-" + h, "KUBE-EXT-" + h, "KUBE-FW-" + h
    cluster, local = usable_endpoints(endpoints, ctx.node_name, zone=ctx.zone)
    internal_chain, internal_eps = (svl, local) if sp.internal_local else (svc, cluster)
    external_chain, external_eps = (svl, local) if sp.external_local else (svc, cluster)
    has_internal = bool(internal_eps)
    has_external = sp.is_external and bool(external_eps)
    uses_svc = bool(cluster) and (not sp.internal_local or
                                  (sp.is_external and not sp.external_local))
    uses_svl = bool(local) and (sp.internal_local or (sp.is_external and sp.external_local))
    # The EXT chain exists when it has somewhere to send traffic: its own policy's
    # endpoints, or (Local policy) the short-circuit for pods and the node itself.
    uses_ext = sp.is_external and (has_external or (sp.external_local and has_internal))
    # Source ranges filter LB IPs only (never NodePorts or external IPs, as upstream).
    uses_fw = uses_ext and sp.uses_firewall
    match = (*_proto(sp.protocol), "-d", sp.cluster_ip, "--dport", str(sp.port))
    cluster_comment = f"{spn} cluster IP"

    contributions: list[tuple[str, str, str]] = []
    no_local: list[str] = []
    if has_internal:
        contributions.append((NAT, ch.KUBE_SERVICES, rule(
            ch.KUBE_SERVICES, *match, "-j", internal_chain, comment=cluster_comment)))
    else:
        if sp.internal_local and cluster:
            no_local.append("internal")
        verdict, why = ("DROP", "has no local endpoints") if sp.internal_local and cluster \
            else ("REJECT", "has no endpoints")
        contributions.append((FILTER, ch.KUBE_SERVICES, rule(
            ch.KUBE_SERVICES, *match, "-j", verdict, comment=f"{spn} {why}")))
    if sp.is_external:
        # Either no endpoints at all (REJECT) or none for external traffic (DROP what
        # KUBE-EXT did not short-circuit), for every external destination.
        verdict, why = ("DROP", "has no local endpoints") \
            if sp.external_local and cluster else ("REJECT", "has no endpoints")
        if not has_external and sp.external_local and cluster:
            no_local.append("external")
        contributions += _external_destinations(
            sp, ext=ext, lb_chain=fw if uses_fw else ext, nat=uses_ext,
            filter_verdict=None if has_external else (verdict, f"{spn} {why}"),
            firewall=fw if uses_fw else None)

    masquerade: list[str] = []
    if has_internal and ctx.cluster_cidr:
        masquerade.append(rule(internal_chain, *match, "!", "-s", ctx.cluster_cidr, "-j",
                               ch.KUBE_MARK_MASQ, comment=cluster_comment))
    own: list[Chain] = []
    endpoint_chains: dict[str, Chain] = {}
    seps = {e.address: ch.endpoint_chain(spn, proto, e.address) for e in (*cluster, *local)}
    for chain, eps, used in ((svc, cluster, uses_svc), (svl, local, uses_svl)):
        if not used:
            continue
        head = masquerade if chain == internal_chain else []
        own.append(Chain(NAT, chain, (*head, *_dispatch(chain, sp, eps, seps, ctx))))
        for e in eps:
            sep = seps[e.address]
            if sep not in endpoint_chains:
                endpoint_chains[sep] = Chain(NAT, sep, _endpoint_rules(sep, sp, e, ctx))
    if uses_ext:
        own.append(Chain(NAT, ext, _external_rules(
            ext, sp, ctx, internal_chain=internal_chain if has_internal else None,
            external_chain=external_chain if has_external else None)))
    if uses_fw:
        own.append(Chain(NAT, fw, _firewall_rules(fw, ext, sp)))
    leaves = tuple(endpoint_chains[name] for name in sorted(endpoint_chains))
    return Fragment(key=sp.key, chains=(*leaves, *own), contributions=tuple(contributions),
                    no_local_endpoints=tuple(no_local))


def _external_destinations(sp: ServicePort, *, ext: str, lb_chain: str, nat: bool,
                           filter_verdict: tuple[str, str] | None, firewall: str | None
                           ) -> list[tuple[str, str, str]]:
    """The shared-chain rules of a port's external destinations, in kube-proxy's order:
    each external IP (nat → EXT; filter REJECT/DROP when external traffic has nowhere
    to go), each LB IP (nat → FW or EXT; filter DROP of what the firewall left), the
    LB IPs' REJECT/DROP, then the NodePort (matched on any local address)."""
    spn, proto, port = sp.service_port_name, _proto(sp.protocol), str(sp.port)
    out: list[tuple[str, str, str]] = []

    def refuse(*dest: str) -> None:
        if filter_verdict is not None:
            verdict, comment = filter_verdict
            out.append((FILTER, ch.KUBE_EXTERNAL_SERVICES, rule(
                ch.KUBE_EXTERNAL_SERVICES, *dest, "-j", verdict, comment=comment)))

    for ip in sp.external_ips:
        if nat:
            out.append((NAT, ch.KUBE_SERVICES, rule(
                ch.KUBE_SERVICES, *proto, "-d", ip, "--dport", port, "-j", ext,
                comment=f"{spn} external IP")))
        refuse(*proto, "-d", ip, "--dport", port)
    for ip in sp.load_balancer_ips:
        if nat:
            out.append((NAT, ch.KUBE_SERVICES, rule(
                ch.KUBE_SERVICES, *proto, "-d", ip, "--dport", port, "-j", lb_chain,
                comment=f"{spn} loadbalancer IP")))
        if firewall is not None:
            out.append((FILTER, ch.KUBE_PROXY_FIREWALL, rule(
                ch.KUBE_PROXY_FIREWALL, *proto, "-d", ip, "--dport", port, "-j", "DROP",
                comment=f"{spn} traffic not accepted by {firewall}")))
    for ip in sp.load_balancer_ips:
        refuse(*proto, "-d", ip, "--dport", port)
    if sp.node_port is not None:
        node_port = str(sp.node_port)
        if nat:
            out.append((NAT, ch.KUBE_NODEPORTS, rule(
                ch.KUBE_NODEPORTS, *proto, "--dport", node_port, "-j", ext, comment=spn)))
        refuse("-m", "addrtype", "--dst-type", "LOCAL", *proto, "--dport", node_port)
    return out


def _firewall_rules(fw: str, ext: str, sp: ServicePort) -> tuple[str, ...]:
    """KUBE-FW: an allowed source range goes on to KUBE-EXT; anything else falls off the
    end un-DNATed, still addressed to the LB IP, and KUBE-PROXY-FIREWALL drops it."""
    spn = sp.service_port_name
    allowed = [rule(fw, "-s", cidr, "-j", ext, comment=f"{spn} loadbalancer IP")
               for cidr in sp.source_ranges]
    return (*allowed, rule(
        fw, comment=f"other traffic to {spn} will be dropped by KUBE-PROXY-FIREWALL"))


def _dispatch(chain: str, sp: ServicePort, eps: Sequence[Endpoint], names: Mapping[str, str],
              ctx: Context) -> list[str]:
    spn = sp.service_port_name
    seps = [(names[e.address], e) for e in eps]
    out: list[str] = []

    def comment(e: Endpoint) -> str | None:
        return None if ctx.large_cluster else f"{spn} -> {e.address}"

    if sp.affinity_seconds is not None:
        # Affinity checks come first: a client seen recently goes back to its endpoint.
        for sep, e in seps:
            out.append(rule(chain, "-m", "recent", "--name", sep, "--rcheck", "--seconds",
                            str(sp.affinity_seconds), "--reap", "-j", sep,
                            comment=comment(e)))
    n = len(seps)
    for i, (sep, e) in enumerate(seps):
        if i < n - 1:
            out.append(rule(chain, "-m", "statistic", "--mode", "random", "--probability",
                            probability(n - i), "-j", sep, comment=comment(e)))
        else:
            out.append(rule(chain, "-j", sep, comment=comment(e)))
    return out


def _endpoint_rules(sep: str, sp: ServicePort, e: Endpoint, ctx: Context) -> tuple[str, ...]:
    spn = None if ctx.large_cluster else sp.service_port_name
    affinity = ("-m", "recent", "--name", sep, "--set") if sp.affinity_seconds is not None \
        else ()
    return (
        # hairpin: a pod reaching itself through its Service must see another source
        rule(sep, "-s", e.ip, "-j", ch.KUBE_MARK_MASQ, comment=spn),
        rule(sep, *_proto(sp.protocol), *affinity, "-j", "DNAT", "--to-destination",
             e.address, comment=spn),
    )


def _external_rules(ext: str, sp: ServicePort, ctx: Context, *, internal_chain: str | None,
                    external_chain: str | None) -> tuple[str, ...]:
    spn = sp.service_port_name
    out: list[str] = []
    if not sp.external_local:
        # Cluster policy: the connection may go to another node, so always masquerade.
        out.append(rule(ext, "-j", ch.KUBE_MARK_MASQ,
                        comment=f"masquerade traffic for {spn} external destinations"))
    elif internal_chain is not None:
        # Local policy keeps the client's address for outside traffic; traffic from pods
        # and from the node itself behaves as if it had gone to the Service's ClusterIP.
        if ctx.cluster_cidr:
            out.append(rule(ext, "-s", ctx.cluster_cidr, "-j", internal_chain,
                            comment=f"pod traffic for {spn} external destinations"))
        out.append(rule(ext, "-m", "addrtype", "--src-type", "LOCAL", "-j", ch.KUBE_MARK_MASQ,
                        comment=f"masquerade LOCAL traffic for {spn} external destinations"))
        out.append(rule(ext, "-m", "addrtype", "--src-type", "LOCAL", "-j", internal_chain,
                        comment=f"route LOCAL traffic for {spn} external destinations"))
    if external_chain is not None:
        out.append(rule(ext, "-j", external_chain))
    return tuple(out)


# -- the whole ruleset ---------------------------------------------------------------------


def fixed_rules() -> dict[tuple[str, str], tuple[str, ...]]:
    """The rules of top-level chains that do not depend on any Service."""
    return {
        (FILTER, ch.KUBE_FORWARD): (
            rule(ch.KUBE_FORWARD, "-m", "conntrack", "--ctstate", "INVALID", "-j", "DROP"),
            rule(ch.KUBE_FORWARD, "-m", "mark", "--mark", f"{MASQ_MARK}/{MASQ_MARK}",
                 "-j", "ACCEPT", comment="kubernetes forwarding rules"),
            rule(ch.KUBE_FORWARD, "-m", "conntrack", "--ctstate", "RELATED,ESTABLISHED",
                 "-j", "ACCEPT", comment="kubernetes forwarding conntrack rule"),
        ),
        (NAT, ch.KUBE_POSTROUTING): (
            rule(ch.KUBE_POSTROUTING, "-m", "mark", "!", "--mark", f"{MASQ_MARK}/{MASQ_MARK}",
                 "-j", "RETURN"),
            # clear the mark so a packet that traverses again is not masqueraded twice
            rule(ch.KUBE_POSTROUTING, "-j", "MARK", "--xor-mark", MASQ_MARK),
            rule(ch.KUBE_POSTROUTING, "-j", "MASQUERADE", "--random-fully",
                 comment="kubernetes service traffic requiring SNAT"),
        ),
        (NAT, ch.KUBE_MARK_MASQ): (
            rule(ch.KUBE_MARK_MASQ, "-j", "MARK", "--or-mark", MASQ_MARK),
        ),
        # route_localnet=1 (set for localhost NodePorts) would let packets from
        # elsewhere reach 127/8 services; this drops them (k8s #90259).
        (FILTER, ch.KUBE_FIREWALL): (
            rule(ch.KUBE_FIREWALL, "-d", "127.0.0.0/8", "!", "-s", "127.0.0.0/8", "-m",
                 "conntrack", "!", "--ctstate", "RELATED,ESTABLISHED,DNAT", "-j", "DROP",
                 comment="block incoming localnet connections"),
        ),
    }


# Every local address, 127.0.0.1 included (kube-proxy's --iptables-localhost-nodeports,
# on by default for IPv4): the node's loopback answers on NodePorts.
NODEPORTS_TAIL = rule(
    ch.KUBE_SERVICES, "-m", "addrtype", "--dst-type", "LOCAL", "-j", ch.KUBE_NODEPORTS,
    comment="kubernetes service nodeports; NOTE: this must be the last rule in this chain")


def assemble(fragments: Mapping[str, Fragment]) -> Ruleset:
    """The ruleset of these fragments: top-level chains filled in fragment-key order
    (so the text is stable), the NodePort tail rule last in nat KUBE-SERVICES."""
    fixed = fixed_rules()
    filled: dict[tuple[str, str], list[str]] = {key: [] for key in TOP_CHAINS}
    for key in sorted(fragments):
        for table, chain, line in fragments[key].contributions:
            filled[(table, chain)].append(line)
    filled[(NAT, ch.KUBE_SERVICES)].append(NODEPORTS_TAIL)
    top = {key: fixed.get(key, ()) + tuple(filled[key]) for key in TOP_CHAINS}
    return Ruleset(top=top, fragments=dict(fragments))


def reassemble(previous: Ruleset, fragments: Mapping[str, Fragment], changed: Iterable[str]
               ) -> Ruleset:
    """``assemble(fragments)``, reusing ``previous.top`` when none of the ``changed``
    fragments changed its contributions — the common case of an endpoint change,
    which then costs nothing per other Service."""
    for key in changed:
        before, after = previous.fragments.get(key), fragments.get(key)
        if (before.contributions if before else ()) != (after.contributions if after else ()):
            return assemble(fragments)
    return Ruleset(top=previous.top, fragments=dict(fragments))


def build_ruleset(ports: Iterable[tuple[ServicePort, Sequence[Endpoint]]], ctx: Context
                  ) -> Ruleset:
    """The whole desired ruleset, from scratch (the sync layer memoises fragments)."""
    fragments: dict[str, Fragment] = {}
    for sp, endpoints in ports:
        fragments[sp.key] = build_fragment(sp, endpoints, ctx)
    return assemble(fragments)


def render(ruleset: Ruleset) -> str:
    """The complete ``iptables-restore`` text (both tables) of ``ruleset``."""
    lines: list[str] = []
    everything = ruleset.chains()
    for table in TABLES:
        chains = [(name, rules) for (t, name), rules in everything.items() if t == table]
        lines.append(f"*{table}")
        lines.extend(f":{name} - [0:0]" for name, _ in chains)
        for _, rules in chains:
            lines.extend(rules)
        lines.append("COMMIT")
    return "\n".join(lines) + "\n"
