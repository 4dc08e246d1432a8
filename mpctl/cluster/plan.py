"""What a local cluster consists of, as data: namespaces, addresses, commands, objects.

Pure: ``mpctl cluster up`` turns a ``ClusterSpec`` into ``ip`` argument lists,
component command lines and the kube-dns objects, then runs them (``network``,
``supervisor``); ``down`` and the tests use the same names to find what belongs to
a cluster. The layout is DESIGN.md's "Networking of a local cluster": a fabric
namespace with bridge ``br0`` holding ``10.250.0.1`` (where dnsd listens for pods),
and node ``n`` as namespace ``mp-<cluster>-node-<n>`` with ``eth0`` at
``10.250.0.<n+1>`` on that bridge.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from apimachinery.kinds import ENDPOINTSLICE, SERVICE, Kind

NODE_NETWORK = ipaddress.ip_network("10.250.0.0/24")
FABRIC_IP = str(NODE_NETWORK.network_address + 1)
SERVICE_CIDR = "10.96.0.0/16"
CLUSTER_CIDR = "10.244.0.0/16"
DNS_CLUSTER_IP = "10.96.0.10"
CLUSTER_DOMAIN = "cluster.local"
MAX_NODES = 100
# Limited by the node agent's pod namespace names (mp-<cluster>-pod-<8 hex>).
_NAME = re.compile(r"[a-z0-9]([a-z0-9-]{0,18}[a-z0-9])?")
# The ports people see; taken when free, else any free port (a second cluster).
PREFERRED_API_PORT = 6443
PREFERRED_DNS_PORT = 5353
COMPONENTS = ("apiserver", "controllers", "dnsd")


class SpecError(ValueError):
    """A flag of ``cluster up`` is unusable; the message is one line."""


def check_name(name: str) -> str:
    if not _NAME.fullmatch(name):
        raise SpecError(f"--name: {name!r} must be 1-20 lowercase letters, digits or '-', "
                        "starting and ending with a letter or digit")
    return name


def check_nodes(count: int) -> int:
    if not 1 <= count <= MAX_NODES:
        raise SpecError(f"--nodes: {count} is out of range (1-{MAX_NODES})")
    return count


def default_state_dir(name: str) -> Path:
    return Path(".miniplane") / name


def fabric_ns(cluster: str) -> str:
    return f"mp-{cluster}-fabric"


def node_ns(cluster: str, index: int) -> str:
    return f"mp-{cluster}-node-{index}"


def owns_namespace(cluster: str, namespace: str) -> bool:
    """Whether ``namespace`` is one ``cluster`` creates (fabric, node or pod).

    An exact pattern, not a prefix: cluster ``mp`` must not claim ``mp-mp-x-fabric``,
    which belongs to a cluster named ``mp-x``.
    """
    return re.fullmatch(rf"mp-{re.escape(cluster)}-(fabric|node-[0-9]+|pod-[0-9a-f]{{8}})",
                        namespace) is not None


@dataclass(frozen=True)
class NodePlan:
    index: int
    name: str
    namespace: str
    ip: str
    veth: str  # the fabric end of the node's eth0
    state_dir: Path


@dataclass(frozen=True)
class ClusterSpec:
    name: str
    nodes: int
    state_dir: Path
    api_port: int
    dns_port: int
    # component or node name -> the port of its /metrics, /healthz and /readyz
    metrics_ports: dict[str, int]

    @property
    def server(self) -> str:
        return f"http://127.0.0.1:{self.api_port}"

    @property
    def fabric(self) -> str:
        return fabric_ns(self.name)

    def node_plans(self) -> list[NodePlan]:
        return [NodePlan(index=i, name=f"node-{i}", namespace=node_ns(self.name, i),
                         ip=str(NODE_NETWORK.network_address + 1 + i), veth=f"n{i}",
                         state_dir=self.state_dir / "nodes" / f"node-{i}")
                for i in range(1, self.nodes + 1)]

    def log_path(self, component: str) -> Path:
        return self.state_dir / "logs" / f"{component}.log"


def network_commands(spec: ClusterSpec) -> list[list[str]]:
    """``ip`` commands building the fabric and every node's link into it, in order.

    Every command names a namespace of the cluster (``ip -n``), and veth pairs are
    created inside the fabric with their peer moved straight into the node, so the
    host's root namespace never holds an interface, even for a moment.
    """
    fab = spec.fabric
    cmds = [["ip", "netns", "add", fab],
            ["ip", "-n", fab, "link", "set", "lo", "up"],
            ["ip", "-n", fab, "link", "add", "br0", "type", "bridge"],
            ["ip", "-n", fab, "addr", "add", f"{FABRIC_IP}/{NODE_NETWORK.prefixlen}",
             "dev", "br0"],
            ["ip", "-n", fab, "link", "set", "br0", "up"]]
    for node in spec.node_plans():
        ns = node.namespace
        cmds += [["ip", "netns", "add", ns],
                 ["ip", "-n", ns, "link", "set", "lo", "up"],
                 ["ip", "-n", fab, "link", "add", node.veth, "type", "veth",
                  "peer", "name", "eth0", "netns", ns],
                 ["ip", "-n", fab, "link", "set", node.veth, "master", "br0"],
                 ["ip", "-n", fab, "link", "set", node.veth, "up"],
                 ["ip", "-n", ns, "addr", "add", f"{node.ip}/{NODE_NETWORK.prefixlen}",
                  "dev", "eth0"],
                 ["ip", "-n", ns, "link", "set", "eth0", "up"]]
    return cmds


def fabric_route_commands(spec: ClusterSpec, pod_cidrs: dict[str, str]) -> list[list[str]]:
    """Routes in the fabric to each node's pod CIDR (node name -> CIDR).

    dnsd answers pods from the fabric; without these its replies to a pod's address
    would have nowhere to go (nodes route pod CIDRs among themselves already).
    """
    ips = {n.name: n.ip for n in spec.node_plans()}
    return [["ip", "-n", spec.fabric, "route", "replace", cidr, "via", ips[node]]
            for node, cidr in sorted(pod_cidrs.items()) if node in ips]


@dataclass(frozen=True)
class Command:
    """One child process of the cluster: what to run and where its output goes."""

    name: str
    argv: list[str]
    log: Path


def component_commands(spec: ClusterSpec, bin_dir: Path) -> list[Command]:
    """The control plane first (API server, controllers, dnsd), then one agent per node."""
    def metrics(name: str) -> list[str]:
        return ["--metrics-listen", f"127.0.0.1:{spec.metrics_ports[name]}"]

    server = ["--server", spec.server]
    db = (spec.state_dir / "state.db").resolve()
    cmds = [
        Command("apiserver", [str(bin_dir / "mp-apiserver"),
                              "--listen", f"127.0.0.1:{spec.api_port}",
                              "--storage-url", f"sqlite:///{db}",
                              "--service-cluster-ip-range", SERVICE_CIDR],
                spec.log_path("apiserver")),
        Command("controllers", [str(bin_dir / "mp-controllers"), *server,
                                "--cluster-cidr", CLUSTER_CIDR, *metrics("controllers")],
                spec.log_path("controllers")),
        Command("dnsd", [str(bin_dir / "mp-dnsd"), *server,
                         "--listen", f"127.0.0.1:{spec.dns_port}",
                         "--listen", f"netns:{spec.fabric}:{FABRIC_IP}:53",
                         "--cluster-domain", CLUSTER_DOMAIN, *metrics("dnsd")],
                spec.log_path("dnsd")),
    ]
    for node in spec.node_plans():
        cmds.append(Command(node.name, [
            str(bin_dir / "mp-nodeagent"), *server, "--node", node.name,
            "--netns", node.namespace, "--cluster-name", spec.name,
            "--state-dir", str(node.state_dir.resolve()), "--cluster-dns", DNS_CLUSTER_IP,
            "--service-cidr", SERVICE_CIDR, "--cluster-cidr", CLUSTER_CIDR,
            "--heartbeat-interval", "5s", *metrics(node.name)], spec.log_path(node.name)))
    return cmds


def kube_dns_objects() -> list[tuple[Kind, dict[str, Any]]]:
    """The ``kube-dns`` Service at the DNS ClusterIP and its hand-made EndpointSlice.

    dnsd is not a pod, so no selector: the slice names dnsd's fabric address, and
    its ``managed-by`` keeps the EndpointSlice controller's hands off it.
    """
    ports = [{"name": "dns", "port": 53, "protocol": "UDP"},
             {"name": "dns-tcp", "port": 53, "protocol": "TCP"}]
    labels = {"k8s-app": "kube-dns", "kubernetes.io/name": "CoreDNS"}
    service = {"apiVersion": "v1", "kind": "Service",
               "metadata": {"name": "kube-dns", "namespace": "kube-system", "labels": labels},
               "spec": {"clusterIP": DNS_CLUSTER_IP,
                        "ports": [{**p, "targetPort": 53} for p in ports]}}
    slice_ = {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
              "metadata": {"name": "kube-dns-mpctl", "namespace": "kube-system",
                           "labels": {"kubernetes.io/service-name": "kube-dns",
                                      "endpointslice.kubernetes.io/managed-by": "mpctl"}},
              "addressType": "IPv4",
              "endpoints": [{"addresses": [FABRIC_IP],
                             "conditions": {"ready": True, "serving": True,
                                            "terminating": False}}],
              "ports": ports}
    return [(SERVICE, service), (ENDPOINTSLICE, slice_)]
