"""Golden tests of the generated ruleset: one Service port → exactly these lines.

Each case lists the rules a Service port contributes to the shared chains
(``[table]`` prefix) and then its own chains' rules. The expected text was checked
by hand against kube-proxy's layout (reference §2–§7); a change here changes what
every node programs, so update goldens only on purpose.
"""

from __future__ import annotations

import pytest

from nodeagent.proxy.model import Endpoint as E  # noqa: N817 - keeps the tables short
from nodeagent.proxy.model import ServicePort
from nodeagent.proxy.ruleset import (
    NODEPORTS_TAIL,
    Context,
    Fragment,
    assemble,
    build_fragment,
    build_ruleset,
    probability,
    render,
)

CTX = Context("node-a")


def SP(port_name: str, protocol: str, port: int, **kw: object) -> ServicePort:  # noqa: N802
    return ServicePort("demo", "web", port_name, protocol, "10.96.0.20", port, **kw)  # type: ignore[arg-type]


def fragment_text(fragment: Fragment) -> str:
    lines = [f"[{table}] {line}" for table, _, line in fragment.contributions]
    for chain in fragment.chains:
        lines += chain.rules
    return "\n".join(lines) + "\n"


CASES = [
    ("multi-port http", SP("http", "TCP", 80),
     (E("10.244.1.5", 8080, "node-a"), E("10.244.2.9", 8080, "node-b"), E("10.244.1.10", 8080, "node-a")),
     """\
[nat] -A KUBE-SERVICES -m comment --comment "demo/web:http cluster IP" -m tcp -p tcp -d 10.96.0.20 --dport 80 -j KUBE-SVC-XRY76EGRC3BSCIIJ
-A KUBE-SEP-HEYAT6BZNHOVKI2P -m comment --comment "demo/web:http" -s 10.244.2.9 -j KUBE-MARK-MASQ
-A KUBE-SEP-HEYAT6BZNHOVKI2P -m comment --comment "demo/web:http" -m tcp -p tcp -j DNAT --to-destination 10.244.2.9:8080
-A KUBE-SEP-NW5VICAF3Z2QABHQ -m comment --comment "demo/web:http" -s 10.244.1.5 -j KUBE-MARK-MASQ
-A KUBE-SEP-NW5VICAF3Z2QABHQ -m comment --comment "demo/web:http" -m tcp -p tcp -j DNAT --to-destination 10.244.1.5:8080
-A KUBE-SEP-SI62D7XAGVO2CP3X -m comment --comment "demo/web:http" -s 10.244.1.10 -j KUBE-MARK-MASQ
-A KUBE-SEP-SI62D7XAGVO2CP3X -m comment --comment "demo/web:http" -m tcp -p tcp -j DNAT --to-destination 10.244.1.10:8080
-A KUBE-SVC-XRY76EGRC3BSCIIJ -m comment --comment "demo/web:http cluster IP" -m tcp -p tcp -d 10.96.0.20 --dport 80 ! -s 10.244.0.0/16 -j KUBE-MARK-MASQ
-A KUBE-SVC-XRY76EGRC3BSCIIJ -m comment --comment "demo/web:http -> 10.244.1.10:8080" -m statistic --mode random --probability 0.3333333333 -j KUBE-SEP-SI62D7XAGVO2CP3X
-A KUBE-SVC-XRY76EGRC3BSCIIJ -m comment --comment "demo/web:http -> 10.244.1.5:8080" -m statistic --mode random --probability 0.5000000000 -j KUBE-SEP-NW5VICAF3Z2QABHQ
-A KUBE-SVC-XRY76EGRC3BSCIIJ -m comment --comment "demo/web:http -> 10.244.2.9:8080" -j KUBE-SEP-HEYAT6BZNHOVKI2P
"""),
    ("multi-port dns", SP("dns", "UDP", 53),
     (E("10.244.1.5", 5353, "node-a"),),
     """\
[nat] -A KUBE-SERVICES -m comment --comment "demo/web:dns cluster IP" -m udp -p udp -d 10.96.0.20 --dport 53 -j KUBE-SVC-S4P2ZY2RGUQ3VBJP
-A KUBE-SEP-PIIDCHZ47XCFUOOK -m comment --comment "demo/web:dns" -s 10.244.1.5 -j KUBE-MARK-MASQ
-A KUBE-SEP-PIIDCHZ47XCFUOOK -m comment --comment "demo/web:dns" -m udp -p udp -j DNAT --to-destination 10.244.1.5:5353
-A KUBE-SVC-S4P2ZY2RGUQ3VBJP -m comment --comment "demo/web:dns cluster IP" -m udp -p udp -d 10.96.0.20 --dport 53 ! -s 10.244.0.0/16 -j KUBE-MARK-MASQ
-A KUBE-SVC-S4P2ZY2RGUQ3VBJP -m comment --comment "demo/web:dns -> 10.244.1.5:5353" -j KUBE-SEP-PIIDCHZ47XCFUOOK
"""),
    ("no endpoints", SP("http", "TCP", 80, node_port=30080),
     (),
     """\
[filter] -A KUBE-SERVICES -m comment --comment "demo/web:http has no endpoints" -m tcp -p tcp -d 10.96.0.20 --dport 80 -j REJECT
[filter] -A KUBE-EXTERNAL-SERVICES -m comment --comment "demo/web:http has no endpoints" -m addrtype --dst-type LOCAL -m tcp -p tcp --dport 30080 -j REJECT
"""),
    ("affinity", SP("http", "UDP", 53, affinity_seconds=600),
     (E("10.244.1.5", 5353, "node-a"), E("10.244.2.9", 5353, "node-b")),
     """\
[nat] -A KUBE-SERVICES -m comment --comment "demo/web:http cluster IP" -m udp -p udp -d 10.96.0.20 --dport 53 -j KUBE-SVC-XEAXRXNGUXT62T3N
-A KUBE-SEP-KUYYONGO22RTM5BW -m comment --comment "demo/web:http" -s 10.244.2.9 -j KUBE-MARK-MASQ
-A KUBE-SEP-KUYYONGO22RTM5BW -m comment --comment "demo/web:http" -m udp -p udp -m recent --name KUBE-SEP-KUYYONGO22RTM5BW --set -j DNAT --to-destination 10.244.2.9:5353
-A KUBE-SEP-LRPJB3O5HQXVN3OC -m comment --comment "demo/web:http" -s 10.244.1.5 -j KUBE-MARK-MASQ
-A KUBE-SEP-LRPJB3O5HQXVN3OC -m comment --comment "demo/web:http" -m udp -p udp -m recent --name KUBE-SEP-LRPJB3O5HQXVN3OC --set -j DNAT --to-destination 10.244.1.5:5353
-A KUBE-SVC-XEAXRXNGUXT62T3N -m comment --comment "demo/web:http cluster IP" -m udp -p udp -d 10.96.0.20 --dport 53 ! -s 10.244.0.0/16 -j KUBE-MARK-MASQ
-A KUBE-SVC-XEAXRXNGUXT62T3N -m comment --comment "demo/web:http -> 10.244.1.5:5353" -m recent --name KUBE-SEP-LRPJB3O5HQXVN3OC --rcheck --seconds 600 --reap -j KUBE-SEP-LRPJB3O5HQXVN3OC
-A KUBE-SVC-XEAXRXNGUXT62T3N -m comment --comment "demo/web:http -> 10.244.2.9:5353" -m recent --name KUBE-SEP-KUYYONGO22RTM5BW --rcheck --seconds 600 --reap -j KUBE-SEP-KUYYONGO22RTM5BW
-A KUBE-SVC-XEAXRXNGUXT62T3N -m comment --comment "demo/web:http -> 10.244.1.5:5353" -m statistic --mode random --probability 0.5000000000 -j KUBE-SEP-LRPJB3O5HQXVN3OC
-A KUBE-SVC-XEAXRXNGUXT62T3N -m comment --comment "demo/web:http -> 10.244.2.9:5353" -j KUBE-SEP-KUYYONGO22RTM5BW
"""),
    ("nodeport", SP("http", "TCP", 80, node_port=30080),
     (E("10.244.1.5", 8080, "node-a"),),
     """\
[nat] -A KUBE-SERVICES -m comment --comment "demo/web:http cluster IP" -m tcp -p tcp -d 10.96.0.20 --dport 80 -j KUBE-SVC-XRY76EGRC3BSCIIJ
[nat] -A KUBE-NODEPORTS -m comment --comment "demo/web:http" -m tcp -p tcp --dport 30080 -j KUBE-EXT-XRY76EGRC3BSCIIJ
-A KUBE-SEP-NW5VICAF3Z2QABHQ -m comment --comment "demo/web:http" -s 10.244.1.5 -j KUBE-MARK-MASQ
-A KUBE-SEP-NW5VICAF3Z2QABHQ -m comment --comment "demo/web:http" -m tcp -p tcp -j DNAT --to-destination 10.244.1.5:8080
-A KUBE-SVC-XRY76EGRC3BSCIIJ -m comment --comment "demo/web:http cluster IP" -m tcp -p tcp -d 10.96.0.20 --dport 80 ! -s 10.244.0.0/16 -j KUBE-MARK-MASQ
-A KUBE-SVC-XRY76EGRC3BSCIIJ -m comment --comment "demo/web:http -> 10.244.1.5:8080" -j KUBE-SEP-NW5VICAF3Z2QABHQ
-A KUBE-EXT-XRY76EGRC3BSCIIJ -m comment --comment "masquerade traffic for demo/web:http external destinations" -j KUBE-MARK-MASQ
-A KUBE-EXT-XRY76EGRC3BSCIIJ -j KUBE-SVC-XRY76EGRC3BSCIIJ
"""),
    ("external local", SP("http", "TCP", 80, node_port=30080, external_local=True),
     (E("10.244.1.5", 8080, "node-a"), E("10.244.2.9", 8080, "node-b")),
     """\
[nat] -A KUBE-SERVICES -m comment --comment "demo/web:http cluster IP" -m tcp -p tcp -d 10.96.0.20 --dport 80 -j KUBE-SVC-XRY76EGRC3BSCIIJ
[nat] -A KUBE-NODEPORTS -m comment --comment "demo/web:http" -m tcp -p tcp --dport 30080 -j KUBE-EXT-XRY76EGRC3BSCIIJ
-A KUBE-SEP-HEYAT6BZNHOVKI2P -m comment --comment "demo/web:http" -s 10.244.2.9 -j KUBE-MARK-MASQ
-A KUBE-SEP-HEYAT6BZNHOVKI2P -m comment --comment "demo/web:http" -m tcp -p tcp -j DNAT --to-destination 10.244.2.9:8080
-A KUBE-SEP-NW5VICAF3Z2QABHQ -m comment --comment "demo/web:http" -s 10.244.1.5 -j KUBE-MARK-MASQ
-A KUBE-SEP-NW5VICAF3Z2QABHQ -m comment --comment "demo/web:http" -m tcp -p tcp -j DNAT --to-destination 10.244.1.5:8080
-A KUBE-SVC-XRY76EGRC3BSCIIJ -m comment --comment "demo/web:http cluster IP" -m tcp -p tcp -d 10.96.0.20 --dport 80 ! -s 10.244.0.0/16 -j KUBE-MARK-MASQ
-A KUBE-SVC-XRY76EGRC3BSCIIJ -m comment --comment "demo/web:http -> 10.244.1.5:8080" -m statistic --mode random --probability 0.5000000000 -j KUBE-SEP-NW5VICAF3Z2QABHQ
-A KUBE-SVC-XRY76EGRC3BSCIIJ -m comment --comment "demo/web:http -> 10.244.2.9:8080" -j KUBE-SEP-HEYAT6BZNHOVKI2P
-A KUBE-SVL-XRY76EGRC3BSCIIJ -m comment --comment "demo/web:http -> 10.244.1.5:8080" -j KUBE-SEP-NW5VICAF3Z2QABHQ
-A KUBE-EXT-XRY76EGRC3BSCIIJ -m comment --comment "pod traffic for demo/web:http external destinations" -s 10.244.0.0/16 -j KUBE-SVC-XRY76EGRC3BSCIIJ
-A KUBE-EXT-XRY76EGRC3BSCIIJ -m comment --comment "masquerade LOCAL traffic for demo/web:http external destinations" -m addrtype --src-type LOCAL -j KUBE-MARK-MASQ
-A KUBE-EXT-XRY76EGRC3BSCIIJ -m comment --comment "route LOCAL traffic for demo/web:http external destinations" -m addrtype --src-type LOCAL -j KUBE-SVC-XRY76EGRC3BSCIIJ
-A KUBE-EXT-XRY76EGRC3BSCIIJ -j KUBE-SVL-XRY76EGRC3BSCIIJ
"""),
    ("external local, none local", SP("http", "TCP", 80, node_port=30080, external_local=True),
     (E("10.244.2.9", 8080, "node-b"),),
     """\
[nat] -A KUBE-SERVICES -m comment --comment "demo/web:http cluster IP" -m tcp -p tcp -d 10.96.0.20 --dport 80 -j KUBE-SVC-XRY76EGRC3BSCIIJ
[nat] -A KUBE-NODEPORTS -m comment --comment "demo/web:http" -m tcp -p tcp --dport 30080 -j KUBE-EXT-XRY76EGRC3BSCIIJ
[filter] -A KUBE-EXTERNAL-SERVICES -m comment --comment "demo/web:http has no local endpoints" -m addrtype --dst-type LOCAL -m tcp -p tcp --dport 30080 -j DROP
-A KUBE-SEP-HEYAT6BZNHOVKI2P -m comment --comment "demo/web:http" -s 10.244.2.9 -j KUBE-MARK-MASQ
-A KUBE-SEP-HEYAT6BZNHOVKI2P -m comment --comment "demo/web:http" -m tcp -p tcp -j DNAT --to-destination 10.244.2.9:8080
-A KUBE-SVC-XRY76EGRC3BSCIIJ -m comment --comment "demo/web:http cluster IP" -m tcp -p tcp -d 10.96.0.20 --dport 80 ! -s 10.244.0.0/16 -j KUBE-MARK-MASQ
-A KUBE-SVC-XRY76EGRC3BSCIIJ -m comment --comment "demo/web:http -> 10.244.2.9:8080" -j KUBE-SEP-HEYAT6BZNHOVKI2P
-A KUBE-EXT-XRY76EGRC3BSCIIJ -m comment --comment "pod traffic for demo/web:http external destinations" -s 10.244.0.0/16 -j KUBE-SVC-XRY76EGRC3BSCIIJ
-A KUBE-EXT-XRY76EGRC3BSCIIJ -m comment --comment "masquerade LOCAL traffic for demo/web:http external destinations" -m addrtype --src-type LOCAL -j KUBE-MARK-MASQ
-A KUBE-EXT-XRY76EGRC3BSCIIJ -m comment --comment "route LOCAL traffic for demo/web:http external destinations" -m addrtype --src-type LOCAL -j KUBE-SVC-XRY76EGRC3BSCIIJ
"""),
    ("internal local", SP("", "TCP", 80, internal_local=True),
     (E("10.244.1.5", 8080, "node-a"), E("10.244.2.9", 8080, "node-b")),
     """\
[nat] -A KUBE-SERVICES -m comment --comment "demo/web cluster IP" -m tcp -p tcp -d 10.96.0.20 --dport 80 -j KUBE-SVL-YTGZ2JEENUBCE3T3
-A KUBE-SEP-C2FIVY6UUUTSJSY5 -m comment --comment "demo/web" -s 10.244.1.5 -j KUBE-MARK-MASQ
-A KUBE-SEP-C2FIVY6UUUTSJSY5 -m comment --comment "demo/web" -m tcp -p tcp -j DNAT --to-destination 10.244.1.5:8080
-A KUBE-SVL-YTGZ2JEENUBCE3T3 -m comment --comment "demo/web cluster IP" -m tcp -p tcp -d 10.96.0.20 --dport 80 ! -s 10.244.0.0/16 -j KUBE-MARK-MASQ
-A KUBE-SVL-YTGZ2JEENUBCE3T3 -m comment --comment "demo/web -> 10.244.1.5:8080" -j KUBE-SEP-C2FIVY6UUUTSJSY5
"""),
    ("internal local, none local", SP("", "TCP", 80, internal_local=True),
     (E("10.244.2.9", 8080, "node-b"),),
     """\
[filter] -A KUBE-SERVICES -m comment --comment "demo/web has no local endpoints" -m tcp -p tcp -d 10.96.0.20 --dport 80 -j DROP
"""),
    ("terminating fallback", SP("http", "TCP", 80),
     (E("10.244.1.5", 8080, "node-a", ready=False, serving=True, terminating=True),
      E("10.244.2.9", 8080, "node-b", ready=False, serving=False, terminating=True),
      E("10.244.3.3", 8080, "node-c", ready=False, serving=False, terminating=False)),
     """\
[nat] -A KUBE-SERVICES -m comment --comment "demo/web:http cluster IP" -m tcp -p tcp -d 10.96.0.20 --dport 80 -j KUBE-SVC-XRY76EGRC3BSCIIJ
-A KUBE-SEP-NW5VICAF3Z2QABHQ -m comment --comment "demo/web:http" -s 10.244.1.5 -j KUBE-MARK-MASQ
-A KUBE-SEP-NW5VICAF3Z2QABHQ -m comment --comment "demo/web:http" -m tcp -p tcp -j DNAT --to-destination 10.244.1.5:8080
-A KUBE-SVC-XRY76EGRC3BSCIIJ -m comment --comment "demo/web:http cluster IP" -m tcp -p tcp -d 10.96.0.20 --dport 80 ! -s 10.244.0.0/16 -j KUBE-MARK-MASQ
-A KUBE-SVC-XRY76EGRC3BSCIIJ -m comment --comment "demo/web:http -> 10.244.1.5:8080" -j KUBE-SEP-NW5VICAF3Z2QABHQ
"""),
    ("ready beats terminating", SP("http", "TCP", 80),
     (E("10.244.1.5", 8080, "node-a", ready=False, serving=True, terminating=True),
      E("10.244.2.9", 8080, "node-b")),
     """\
[nat] -A KUBE-SERVICES -m comment --comment "demo/web:http cluster IP" -m tcp -p tcp -d 10.96.0.20 --dport 80 -j KUBE-SVC-XRY76EGRC3BSCIIJ
-A KUBE-SEP-HEYAT6BZNHOVKI2P -m comment --comment "demo/web:http" -s 10.244.2.9 -j KUBE-MARK-MASQ
-A KUBE-SEP-HEYAT6BZNHOVKI2P -m comment --comment "demo/web:http" -m tcp -p tcp -j DNAT --to-destination 10.244.2.9:8080
-A KUBE-SVC-XRY76EGRC3BSCIIJ -m comment --comment "demo/web:http cluster IP" -m tcp -p tcp -d 10.96.0.20 --dport 80 ! -s 10.244.0.0/16 -j KUBE-MARK-MASQ
-A KUBE-SVC-XRY76EGRC3BSCIIJ -m comment --comment "demo/web:http -> 10.244.2.9:8080" -j KUBE-SEP-HEYAT6BZNHOVKI2P
"""),
    ("sctp", SP("sig", "SCTP", 3868),
     (E("10.244.1.5", 3868, "node-a"),),
     """\
[nat] -A KUBE-SERVICES -m comment --comment "demo/web:sig cluster IP" -m sctp -p sctp -d 10.96.0.20 --dport 3868 -j KUBE-SVC-NWSTZ5FIDWM76NDR
-A KUBE-SEP-4YATL3IXMV5I5PXK -m comment --comment "demo/web:sig" -s 10.244.1.5 -j KUBE-MARK-MASQ
-A KUBE-SEP-4YATL3IXMV5I5PXK -m comment --comment "demo/web:sig" -m sctp -p sctp -j DNAT --to-destination 10.244.1.5:3868
-A KUBE-SVC-NWSTZ5FIDWM76NDR -m comment --comment "demo/web:sig cluster IP" -m sctp -p sctp -d 10.96.0.20 --dport 3868 ! -s 10.244.0.0/16 -j KUBE-MARK-MASQ
-A KUBE-SVC-NWSTZ5FIDWM76NDR -m comment --comment "demo/web:sig -> 10.244.1.5:3868" -j KUBE-SEP-4YATL3IXMV5I5PXK
"""),
    # kube-proxy's TestOverallIPTablesRules shapes: an external IP goes to KUBE-EXT; an LB
    # IP with source ranges to KUBE-FW, whose allowed ranges go on to KUBE-EXT and whose
    # leftovers KUBE-PROXY-FIREWALL drops (they were never DNATed).
    ("external IP, LB IP behind source ranges, NodePort",
     SP("http", "TCP", 80, node_port=30080, external_ips=("192.0.2.10",),
        load_balancer_ips=("10.250.0.200",), source_ranges=("10.250.0.1/32",)),
     (E("10.244.1.5", 8080, "node-a"),),
     """\
[nat] -A KUBE-SERVICES -m comment --comment "demo/web:http cluster IP" -m tcp -p tcp -d 10.96.0.20 --dport 80 -j KUBE-SVC-XRY76EGRC3BSCIIJ
[nat] -A KUBE-SERVICES -m comment --comment "demo/web:http external IP" -m tcp -p tcp -d 192.0.2.10 --dport 80 -j KUBE-EXT-XRY76EGRC3BSCIIJ
[nat] -A KUBE-SERVICES -m comment --comment "demo/web:http loadbalancer IP" -m tcp -p tcp -d 10.250.0.200 --dport 80 -j KUBE-FW-XRY76EGRC3BSCIIJ
[filter] -A KUBE-PROXY-FIREWALL -m comment --comment "demo/web:http traffic not accepted by KUBE-FW-XRY76EGRC3BSCIIJ" -m tcp -p tcp -d 10.250.0.200 --dport 80 -j DROP
[nat] -A KUBE-NODEPORTS -m comment --comment "demo/web:http" -m tcp -p tcp --dport 30080 -j KUBE-EXT-XRY76EGRC3BSCIIJ
-A KUBE-SEP-NW5VICAF3Z2QABHQ -m comment --comment "demo/web:http" -s 10.244.1.5 -j KUBE-MARK-MASQ
-A KUBE-SEP-NW5VICAF3Z2QABHQ -m comment --comment "demo/web:http" -m tcp -p tcp -j DNAT --to-destination 10.244.1.5:8080
-A KUBE-SVC-XRY76EGRC3BSCIIJ -m comment --comment "demo/web:http cluster IP" -m tcp -p tcp -d 10.96.0.20 --dport 80 ! -s 10.244.0.0/16 -j KUBE-MARK-MASQ
-A KUBE-SVC-XRY76EGRC3BSCIIJ -m comment --comment "demo/web:http -> 10.244.1.5:8080" -j KUBE-SEP-NW5VICAF3Z2QABHQ
-A KUBE-EXT-XRY76EGRC3BSCIIJ -m comment --comment "masquerade traffic for demo/web:http external destinations" -j KUBE-MARK-MASQ
-A KUBE-EXT-XRY76EGRC3BSCIIJ -j KUBE-SVC-XRY76EGRC3BSCIIJ
-A KUBE-FW-XRY76EGRC3BSCIIJ -m comment --comment "demo/web:http loadbalancer IP" -s 10.250.0.1/32 -j KUBE-EXT-XRY76EGRC3BSCIIJ
-A KUBE-FW-XRY76EGRC3BSCIIJ -m comment --comment "other traffic to demo/web:http will be dropped by KUBE-PROXY-FIREWALL"
"""),
    ("external destinations without endpoints are rejected",
     SP("http", "TCP", 80, node_port=30080, external_ips=("192.0.2.10",),
        load_balancer_ips=("10.250.0.200",), source_ranges=("10.250.0.1/32",)),
     (),
     """\
[filter] -A KUBE-SERVICES -m comment --comment "demo/web:http has no endpoints" -m tcp -p tcp -d 10.96.0.20 --dport 80 -j REJECT
[filter] -A KUBE-EXTERNAL-SERVICES -m comment --comment "demo/web:http has no endpoints" -m tcp -p tcp -d 192.0.2.10 --dport 80 -j REJECT
[filter] -A KUBE-EXTERNAL-SERVICES -m comment --comment "demo/web:http has no endpoints" -m tcp -p tcp -d 10.250.0.200 --dport 80 -j REJECT
[filter] -A KUBE-EXTERNAL-SERVICES -m comment --comment "demo/web:http has no endpoints" -m addrtype --dst-type LOCAL -m tcp -p tcp --dport 30080 -j REJECT
"""),
    ("LB IP with Local policy and no local endpoint: dropped, pods short-circuit",
     SP("http", "TCP", 80, external_local=True, load_balancer_ips=("10.250.0.200",)),
     (E("10.244.2.9", 8080, "node-b"),),
     """\
[nat] -A KUBE-SERVICES -m comment --comment "demo/web:http cluster IP" -m tcp -p tcp -d 10.96.0.20 --dport 80 -j KUBE-SVC-XRY76EGRC3BSCIIJ
[nat] -A KUBE-SERVICES -m comment --comment "demo/web:http loadbalancer IP" -m tcp -p tcp -d 10.250.0.200 --dport 80 -j KUBE-EXT-XRY76EGRC3BSCIIJ
[filter] -A KUBE-EXTERNAL-SERVICES -m comment --comment "demo/web:http has no local endpoints" -m tcp -p tcp -d 10.250.0.200 --dport 80 -j DROP
-A KUBE-SEP-HEYAT6BZNHOVKI2P -m comment --comment "demo/web:http" -s 10.244.2.9 -j KUBE-MARK-MASQ
-A KUBE-SEP-HEYAT6BZNHOVKI2P -m comment --comment "demo/web:http" -m tcp -p tcp -j DNAT --to-destination 10.244.2.9:8080
-A KUBE-SVC-XRY76EGRC3BSCIIJ -m comment --comment "demo/web:http cluster IP" -m tcp -p tcp -d 10.96.0.20 --dport 80 ! -s 10.244.0.0/16 -j KUBE-MARK-MASQ
-A KUBE-SVC-XRY76EGRC3BSCIIJ -m comment --comment "demo/web:http -> 10.244.2.9:8080" -j KUBE-SEP-HEYAT6BZNHOVKI2P
-A KUBE-EXT-XRY76EGRC3BSCIIJ -m comment --comment "pod traffic for demo/web:http external destinations" -s 10.244.0.0/16 -j KUBE-SVC-XRY76EGRC3BSCIIJ
-A KUBE-EXT-XRY76EGRC3BSCIIJ -m comment --comment "masquerade LOCAL traffic for demo/web:http external destinations" -m addrtype --src-type LOCAL -j KUBE-MARK-MASQ
-A KUBE-EXT-XRY76EGRC3BSCIIJ -m comment --comment "route LOCAL traffic for demo/web:http external destinations" -m addrtype --src-type LOCAL -j KUBE-SVC-XRY76EGRC3BSCIIJ
"""),
]


@pytest.mark.parametrize(("title", "sp", "endpoints", "expected"), CASES,
                         ids=[c[0] for c in CASES])
def test_golden_fragment(title: str, sp: ServicePort, endpoints: tuple[E, ...],
                         expected: str) -> None:
    ordered = tuple(sorted(endpoints, key=lambda e: e.address))  # as merge_endpoints sorts
    assert fragment_text(build_fragment(sp, ordered, CTX)) == expected


# The reference's constructed example (§2.5), in large-cluster mode (no per-endpoint
# comments), rendered whole: the names and lines match the reference's text.
REFERENCE_EXAMPLE = """\
*filter
:KUBE-SERVICES - [0:0]
:KUBE-EXTERNAL-SERVICES - [0:0]
:KUBE-FORWARD - [0:0]
:KUBE-PROXY-FIREWALL - [0:0]
:KUBE-FIREWALL - [0:0]
-A KUBE-FORWARD -m conntrack --ctstate INVALID -j DROP
-A KUBE-FORWARD -m comment --comment "kubernetes forwarding rules" -m mark --mark 0x4000/0x4000 -j ACCEPT
-A KUBE-FORWARD -m comment --comment "kubernetes forwarding conntrack rule" -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT
-A KUBE-FIREWALL -m comment --comment "block incoming localnet connections" -d 127.0.0.0/8 ! -s 127.0.0.0/8 -m conntrack ! --ctstate RELATED,ESTABLISHED,DNAT -j DROP
COMMIT
*nat
:KUBE-SERVICES - [0:0]
:KUBE-NODEPORTS - [0:0]
:KUBE-POSTROUTING - [0:0]
:KUBE-MARK-MASQ - [0:0]
:KUBE-SEP-HEYAT6BZNHOVKI2P - [0:0]
:KUBE-SEP-NW5VICAF3Z2QABHQ - [0:0]
:KUBE-SVC-XRY76EGRC3BSCIIJ - [0:0]
-A KUBE-SERVICES -m comment --comment "demo/web:http cluster IP" -m tcp -p tcp -d 10.96.0.20 --dport 80 -j KUBE-SVC-XRY76EGRC3BSCIIJ
-A KUBE-SERVICES -m comment --comment "kubernetes service nodeports; NOTE: this must be the last rule in this chain" -m addrtype --dst-type LOCAL -j KUBE-NODEPORTS
-A KUBE-POSTROUTING -m mark ! --mark 0x4000/0x4000 -j RETURN
-A KUBE-POSTROUTING -j MARK --xor-mark 0x4000
-A KUBE-POSTROUTING -m comment --comment "kubernetes service traffic requiring SNAT" -j MASQUERADE --random-fully
-A KUBE-MARK-MASQ -j MARK --or-mark 0x4000
-A KUBE-SEP-HEYAT6BZNHOVKI2P -s 10.244.2.9 -j KUBE-MARK-MASQ
-A KUBE-SEP-HEYAT6BZNHOVKI2P -m tcp -p tcp -j DNAT --to-destination 10.244.2.9:8080
-A KUBE-SEP-NW5VICAF3Z2QABHQ -s 10.244.1.5 -j KUBE-MARK-MASQ
-A KUBE-SEP-NW5VICAF3Z2QABHQ -m tcp -p tcp -j DNAT --to-destination 10.244.1.5:8080
-A KUBE-SVC-XRY76EGRC3BSCIIJ -m comment --comment "demo/web:http cluster IP" -m tcp -p tcp -d 10.96.0.20 --dport 80 ! -s 10.244.0.0/16 -j KUBE-MARK-MASQ
-A KUBE-SVC-XRY76EGRC3BSCIIJ -m statistic --mode random --probability 0.5000000000 -j KUBE-SEP-NW5VICAF3Z2QABHQ
-A KUBE-SVC-XRY76EGRC3BSCIIJ -j KUBE-SEP-HEYAT6BZNHOVKI2P
COMMIT
"""


def test_golden_whole_ruleset_reference_example() -> None:
    sp = SP("http", "TCP", 80)
    endpoints = (E("10.244.1.5", 8080), E("10.244.2.9", 8080))
    text = render(build_ruleset([(sp, endpoints)], Context("node-a", large_cluster=True)))
    assert text == REFERENCE_EXAMPLE


def test_probabilities_are_kube_proxys() -> None:
    assert [probability(n) for n in (5, 4, 3, 2)] == \
        ["0.2000000000", "0.2500000000", "0.3333333333", "0.5000000000"]
    endpoints = tuple(E(f"10.244.1.{i}", 80) for i in range(2, 7))
    [svc] = [c for c in build_fragment(SP("http", "TCP", 80), endpoints, CTX).chains
             if c.name.startswith("KUBE-SVC-")]
    dispatch = svc.rules[1:]
    assert [r.split("--probability ")[1].split()[0] for r in dispatch[:-1]] == \
        ["0.2000000000", "0.2500000000", "0.3333333333", "0.5000000000"]
    assert "statistic" not in dispatch[-1]  # the last endpoint is unconditional


def test_output_is_stable_and_order_independent() -> None:
    ports = [(ServicePort("ns", f"s{i}", "", "TCP", f"10.96.0.{i + 1}", 80),
              (E(f"10.244.1.{i + 2}", 80),)) for i in range(20)]
    a = render(build_ruleset(ports, CTX))
    b = render(build_ruleset(list(reversed(ports)), CTX))
    assert a == b
    nat_services = [line for line in a.split("*nat")[1].splitlines()
                    if line.startswith("-A KUBE-SERVICES")]
    assert nat_services[-1] == NODEPORTS_TAIL and len(nat_services) == 21


def test_sctp_without_kernel_support_gets_no_rules() -> None:
    fragment = build_fragment(SP("sig", "SCTP", 3868), (E("10.244.1.5", 3868),),
                              Context("node-a", sctp=False))
    assert fragment.chains == () and fragment.contributions == ()


def test_no_masquerade_rule_without_cluster_cidr() -> None:
    fragment = build_fragment(SP("http", "TCP", 80), (E("10.244.1.5", 80),),
                              Context("node-a", cluster_cidr=None))
    assert not any("! -s" in r for c in fragment.chains for r in c.rules)


def test_no_local_endpoint_policies_are_reported() -> None:
    remote = (E("10.244.2.9", 80, "node-b"),)
    f = build_fragment(SP("http", "TCP", 80, node_port=30080, external_local=True,
                          internal_local=True), remote, CTX)
    assert f.no_local_endpoints == ("internal", "external")


def test_assemble_keeps_fixed_chains_for_an_empty_cluster() -> None:
    ruleset = assemble({})
    assert ruleset.rule_count("nat") == 1 + 3 + 1  # tail, KUBE-POSTROUTING, KUBE-MARK-MASQ
    assert ruleset.rule_count("filter") == 3 + 1  # KUBE-FORWARD, KUBE-FIREWALL


def test_localhost_node_ports_and_the_martian_drop() -> None:
    """As kube-proxy with --iptables-localhost-nodeports (the IPv4 default): the tail
    matches every local address, 127.0.0.1 included, and KUBE-FIREWALL drops traffic
    to 127/8 that did not start there (what route_localnet=1 would let in)."""
    ruleset = assemble({})
    assert ruleset.top[("nat", "KUBE-SERVICES")][-1] == NODEPORTS_TAIL
    assert "127.0.0.0/8" not in NODEPORTS_TAIL and "--dst-type LOCAL" in NODEPORTS_TAIL
    assert ruleset.top[("filter", "KUBE-FIREWALL")] == (
        '-A KUBE-FIREWALL -m comment --comment "block incoming localnet connections" '
        "-d 127.0.0.0/8 ! -s 127.0.0.0/8 -m conntrack ! --ctstate RELATED,ESTABLISHED,DNAT "
        "-j DROP",)
    assert ruleset.top[("filter", "KUBE-PROXY-FIREWALL")] == ()
