"""What a local cluster consists of, as data: namespaces, addresses, commands, objects.

Pure: ``mpctl cluster up`` turns a ``ClusterSpec`` into ``ip`` argument lists,
component command lines and the kube-dns objects, then runs them (``network``,
``supervisor``); ``down`` and the tests use the same names to find what belongs to
a cluster. The layout is DESIGN.md's "Networking of a local cluster": a fabric
namespace with bridge ``br0`` holding ``10.250.0.1`` (where dnsd and the API server
listen for pods, on their own ports), and node ``n`` as namespace
``mp-<cluster>-node-<n>`` with ``eth0`` at ``10.250.0.<n+1>`` on that bridge.

The cluster's PKI is data here too (``PKIPlan``: who gets which certificate, in
which file, with which names); ``credentials`` makes and reuses the files, and
``mpctl cluster pki`` (the compose deployment) runs the same plan.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from apimachinery import names
from apimachinery.kinds import ENDPOINTSLICE, SERVICE, Kind
from componentbase import flags, postgres
from componentbase import pki as pki_lib
from componentbase.addresspool import PoolError, parse_pool
from componentbase.resolvconf import nameservers

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
COMPONENTS = ("postgres", "apiserver", "controllers", "dnsd")
MAX_APISERVERS = 5
STORAGES = ("sqlite", "postgresql")
# The API server also listens on the fabric, for pods (through the `kubernetes`
# Service): dnsd's address, another port (the same as on loopback: the Service's
# EndpointSlice carries one port for both). No new address means no new route.
API_FABRIC_IP = FABRIC_IP
# The `kubernetes` Service's ClusterIP: the first address of the Service CIDR.
API_SERVICE_IP = str(ipaddress.ip_network(SERVICE_CIDR).network_address + 1)
KUBERNETES_NAMES = ("kubernetes", "kubernetes.default", "kubernetes.default.svc",
                    f"kubernetes.default.svc.{CLUSTER_DOMAIN}")
# LoadBalancer Services' addresses (the service-lb controller's pool): on the fabric,
# above every node address, routed by the fabric to the nodes (``lb_route_commands``),
# so they answer from the fabric namespace, never from the host's.
DEFAULT_LB_POOL = "10.250.0.200-10.250.0.250"
# Namespaces without a pod-security.kubernetes.io/enforce label get this level.
POD_SECURITY_DEFAULT = "baseline"
ZONE_LABEL = "topology.kubernetes.io/zone"  # what --zones sets on each Node


# Where dnsd forwards names outside the cluster: the host's resolvers, as CoreDNS's
# `forward . /etc/resolv.conf`. dnsd runs in the host's network namespace (only its
# listening sockets are in the fabric), so it reaches them as the host does.
HOST_RESOLV_CONF = "/etc/resolv.conf"
NO_DNS_UPSTREAM = "none"


class SpecError(ValueError):
    """A flag of ``cluster up`` is unusable; the message is one line."""


def check_name(name: str) -> str:
    if not _NAME.fullmatch(name):
        raise SpecError(f"--name: {name!r} must be 1-20 lowercase letters, digits or '-', "
                        "starting and ending with a letter or digit")
    return name


def check_storage(storage: str) -> str:
    """``sqlite`` (a file, the default) or ``postgresql`` (a private server); for the
    latter, whether one can run here."""
    if storage not in STORAGES:
        raise SpecError(f"--storage: {storage!r} is not one of {', '.join(STORAGES)}")
    if storage == "postgresql" and (why := postgres.unavailable()) is not None:
        raise SpecError(f"--storage postgresql: {why}")
    return storage


def check_apiservers(count: int, storage: str) -> int:
    """1 (the default), or up to ``MAX_APISERVERS`` sharing a PostgreSQL database (SQLite
    has one writer process)."""
    if not 1 <= count <= MAX_APISERVERS:
        raise SpecError(f"--apiservers: {count} is out of range (1-{MAX_APISERVERS})")
    if count > 1 and storage != "postgresql":
        raise SpecError(f"--apiservers {count} needs --storage postgresql (several API "
                        "servers share one database; a SQLite file has one writer)")
    return count


def is_control_plane(process: str) -> bool:
    """Whether a cluster process is of the control plane (``apiserver-2`` too), stopped
    after the node agents."""
    base, _, index = process.rpartition("-")
    return (base if base and index.isdigit() else process) in COMPONENTS


def check_dns_upstream(value: str | None, *, host_resolv_conf: str = HOST_RESOLV_CONF
                       ) -> str:
    """``--dns-upstream``: ``none``, ``HOST:PORT`` (an IP), or a resolv.conf whose
    nameservers dnsd forwards to (an absolute path). Unset, the host's resolv.conf, or
    ``none`` if it names no nameserver (a host without DNS still gets a cluster)."""
    if value is None:
        try:
            with open(host_resolv_conf, encoding="utf-8", errors="replace") as f:
                usable = nameservers(f.read()).addresses
        except OSError:
            usable = ()
        return host_resolv_conf if usable else NO_DNS_UPSTREAM
    if value == NO_DNS_UPSTREAM:
        return value
    if value.startswith("/"):
        try:
            with open(value, encoding="utf-8", errors="replace") as f:
                found = nameservers(f.read())
        except OSError as exc:
            raise SpecError(f"--dns-upstream {value}: {exc.strerror or exc}") from None
        if not found.addresses:
            raise SpecError(f"--dns-upstream {value}: no nameserver line with an IP address")
        return value
    try:
        host, port = flags.parse_host_port(value, ip_only=True, min_port=1)
    except ValueError as exc:
        raise SpecError(f"--dns-upstream: {exc}; or 'none', or a resolv.conf's absolute "
                        "path") from None
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def dns_upstream_flags(upstream: str) -> list[str]:
    """mp-dnsd's flags for a checked ``--dns-upstream``."""
    if upstream == NO_DNS_UPSTREAM:
        return []
    if upstream.startswith("/"):
        return ["--upstream-resolv-conf", upstream]
    return ["--upstream", upstream]


def check_lb_pool(text: str, nodes: int) -> str:
    """The ``--lb-pool`` of ``cluster up``: ``""``/``none`` (no pool), or ranges/CIDRs
    inside the fabric's network that no node, the fabric's own address, or the
    network's first and last address use. Returns the pool as given (normalised)."""
    if text.strip().lower() in ("", "none"):
        return ""
    try:
        pool = parse_pool(text)
    except PoolError as exc:
        raise SpecError(f"--lb-pool: {exc}") from None
    reserved = {str(NODE_NETWORK.network_address), FABRIC_IP,
                str(NODE_NETWORK.broadcast_address)}
    reserved |= {str(NODE_NETWORK.network_address + 1 + i) for i in range(1, nodes + 1)}
    for lo, hi in pool.ranges:
        if lo not in NODE_NETWORK or hi not in NODE_NETWORK:
            raise SpecError(f"--lb-pool: {lo}-{hi} is outside the fabric's {NODE_NETWORK} "
                            "(only the fabric routes it; nothing else may)")
    clash = sorted(reserved & set(pool), key=ipaddress.IPv4Address)
    if clash:
        raise SpecError(f"--lb-pool: {clash[0]} is the fabric's, a node's or the network's "
                        "own address")
    return str(pool)


def check_nodes(count: int) -> int:
    if not 1 <= count <= MAX_NODES:
        raise SpecError(f"--nodes: {count} is out of range (1-{MAX_NODES})")
    return count


def check_zones(text: str | None) -> tuple[str, ...]:
    """``--zones a,b``: zone names (label values), each once."""
    zones = tuple(z.strip() for z in (text or "").split(",") if z.strip())
    for zone in zones:
        if names.is_valid_label_value(zone):
            raise SpecError(f"--zones: {zone!r} is not a valid label value")
    if len(set(zones)) != len(zones):
        raise SpecError("--zones: a zone is named twice")
    return zones


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
    zone: str = ""  # its topology.kubernetes.io/zone label ("" for none)


@dataclass(frozen=True)
class ClusterSpec:
    name: str
    nodes: int
    state_dir: Path
    api_port: int
    dns_port: int
    # component or node name -> the port of its /metrics, /healthz and /readyz
    metrics_ports: dict[str, int]
    storage: str = "sqlite"  # or "postgresql": a private server of the cluster's own
    # the second and later API servers' ports (``api_port`` is the first's)
    more_api_ports: tuple[int, ...] = ()
    # node name -> the port of its agent's API on the host's loopback (nodeagent/api)
    agent_ports: dict[str, int] = field(default_factory=dict)
    # --zones: node-1 in the first, node-2 in the second, … round robin
    zones: tuple[str, ...] = ()
    dns_upstream: str = NO_DNS_UPSTREAM  # a checked --dns-upstream (check_dns_upstream)
    lb_pool: str = DEFAULT_LB_POOL  # "" for none (check_lb_pool)

    @property
    def server(self) -> str:
        return f"https://127.0.0.1:{self.api_port}"

    @property
    def api_ports(self) -> list[int]:
        return [self.api_port, *self.more_api_ports]

    @property
    def servers(self) -> list[str]:
        """Every API server's loopback URL, the first first."""
        return [f"https://127.0.0.1:{port}" for port in self.api_ports]

    @property
    def controller_count(self) -> int:
        """Two controller processes (a leader and a standby) once the control plane has
        more than one API server."""
        return 2 if self.more_api_ports else 1

    @property
    def kubeconfig(self) -> Path:
        """The user's kubeconfig: the admin credential (``mpctl``, ``kubectl``)."""
        return self.state_dir / "kubeconfig"

    def pki(self) -> PKIPlan:
        """Kept under the state dir, so the next ``up`` reuses the CA and credentials."""
        return pki_plan(self.state_dir / "pki", server=",".join(self.servers),
                        admin_kubeconfig=self.kubeconfig,
                        nodes=[n.name for n in self.node_plans()],
                        apiserver_ips=[API_FABRIC_IP], cluster_name=f"miniplane-{self.name}")

    @property
    def fabric(self) -> str:
        return fabric_ns(self.name)

    def node_plans(self) -> list[NodePlan]:
        return [NodePlan(index=i, name=f"node-{i}", namespace=node_ns(self.name, i),
                         ip=str(NODE_NETWORK.network_address + 1 + i), veth=f"n{i}",
                         state_dir=self.state_dir / "nodes" / f"node-{i}",
                         zone=self.zones[(i - 1) % len(self.zones)] if self.zones else "")
                for i in range(1, self.nodes + 1)]

    def log_path(self, component: str) -> Path:
        return self.state_dir / "logs" / f"{component}.log"

    @property
    def postgres_dir(self) -> Path:
        """The private PostgreSQL server's directory: its data and its socket."""
        return self.state_dir.resolve() / "postgres"

    def storage_url(self) -> str:
        if self.storage == "postgresql":
            return postgres.url(self.postgres_dir, postgres.DATABASE)
        return f"sqlite:///{(self.state_dir / 'state.db').resolve()}"


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
    return cmds + lb_route_commands(spec)


def lb_route_commands(spec: ClusterSpec) -> list[list[str]]:
    """Routes in the fabric sending the LoadBalancer pool to the nodes, spread over all
    of them (multipath: each flow sticks to one node), as a router in front of
    MetalLB's speakers would. Every node's proxy programs every LB address, so any
    node answers; the routes are more specific than the fabric's own network."""
    if not spec.lb_pool:
        return []
    hops = [arg for n in spec.node_plans() for arg in ("nexthop", "via", n.ip)]
    return [["ip", "-n", spec.fabric, "route", "replace", cidr, *hops]
            for cidr in parse_pool(spec.lb_pool).cidrs()]


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
    # run as the ``postgres`` user (the server refuses root), in this directory
    as_postgres: Path | None = None


def numbered(component: str, index: int) -> str:
    """``apiserver``, ``apiserver-2``, …: the first of a kind keeps the plain name."""
    return component if index == 1 else f"{component}-{index}"


def component_commands(spec: ClusterSpec, bin_dir: Path) -> list[Command]:
    """The control plane first (API server, controllers, dnsd), then one agent per node.

    Each component reaches the API server with its own kubeconfig (its own client
    certificate); metrics and health stay on loopback.
    """
    def metrics(name: str) -> list[str]:
        return ["--metrics-listen", f"127.0.0.1:{spec.metrics_ports[name]}"]

    pki = spec.pki()

    def kubeconfig(name: str) -> list[str]:
        return ["--kubeconfig", str(pki.credential(name).kubeconfig)]

    def agent_api(name: str) -> list[str]:
        port = spec.agent_ports.get(name)
        return [] if port is None else [
            "--api-listen", f"127.0.0.1:{port}", *agent_pki_flags(pki, name)]

    cmds = [Command("postgres", postgres.server_argv(spec.postgres_dir), spec.log_path("postgres"),
                    as_postgres=spec.postgres_dir)] if spec.storage == "postgresql" else []
    # With several API servers every client gets the whole list (client/failover.py)
    servers = ["--server", ",".join(spec.servers)] if spec.more_api_ports else []
    for i, port in enumerate(spec.api_ports, start=1):
        name = numbered("apiserver", i)
        cmds.append(Command(name, [str(bin_dir / "mp-apiserver"),
                                   "--listen", f"127.0.0.1:{port}",
                                   "--listen", f"netns:{spec.fabric}:{API_FABRIC_IP}:{port}",
                                   "--advertise-address", API_FABRIC_IP,
                                   "--storage-url", spec.storage_url(),
                                   "--service-cluster-ip-range", SERVICE_CIDR,
                                   *apiserver_pki_flags(pki),
                                   # every agent is on this host's loopback (nodeproxy.py)
                                   "--kubelet-dial-host", "127.0.0.1",
                                   "--pod-security-default", POD_SECURITY_DEFAULT],
                            spec.log_path(name)))
    for i in range(1, spec.controller_count + 1):
        name = numbered("controllers", i)
        cmds.append(Command(name, [str(bin_dir / "mp-controllers"), *kubeconfig("controllers"),
                                   *servers, "--cluster-cidr", CLUSTER_CIDR, *metrics(name),
                                   *(["--lb-pool", spec.lb_pool] if spec.lb_pool else [])],
                            spec.log_path(name)))
    cmds.append(Command("dnsd", [str(bin_dir / "mp-dnsd"), *kubeconfig("dnsd"), *servers,
                                 "--listen", f"127.0.0.1:{spec.dns_port}",
                                 "--listen", f"netns:{spec.fabric}:{FABRIC_IP}:53",
                                 "--cluster-domain", CLUSTER_DOMAIN, *metrics("dnsd"),
                                 *dns_upstream_flags(spec.dns_upstream)],
                        spec.log_path("dnsd")))
    for node in spec.node_plans():
        cmds.append(Command(node.name, [
            str(bin_dir / "mp-nodeagent"), *kubeconfig(node.name), *servers, "--node", node.name,
            "--netns", node.namespace, "--cluster-name", spec.name,
            "--state-dir", str(node.state_dir.resolve()), "--cluster-dns", DNS_CLUSTER_IP,
            "--service-cidr", SERVICE_CIDR, "--cluster-cidr", CLUSTER_CIDR,
            "--heartbeat-interval", "5s", *metrics(node.name), *agent_api(node.name),
            *(["--node-labels", f"{ZONE_LABEL}={node.zone}"] if node.zone else [])],
            spec.log_path(node.name)))
    return cmds


# --------------------------------------------------------------------------- PKI

# Who each component is, as its certificate says (CN = user, O = groups), with
# Kubernetes' names where Kubernetes has the component; the API server's RBAC
# bootstrap roles are bound to these.
ADMIN = "admin"
CONTROLLERS = "controllers"
DNSD = "dnsd"
IDENTITIES: dict[str, tuple[str, tuple[str, ...]]] = {
    ADMIN: ("kubernetes-admin", ("system:masters",)),
    CONTROLLERS: ("system:kube-controller-manager", ()),
    DNSD: ("system:miniplane-dnsd", ()),
}
NODE_GROUP = "system:nodes"


def node_identity(node: str) -> tuple[str, tuple[str, ...]]:
    return f"system:node:{node}", (NODE_GROUP,)


@dataclass(frozen=True)
class Credential:
    """One client of the API server: its identity, delivered as a kubeconfig that
    embeds the CA, its certificate and key (the file alone is the credential)."""

    name: str  # admin, controllers, dnsd, node-<n>
    user: str
    groups: tuple[str, ...]
    kubeconfig: Path
    server: str


@dataclass(frozen=True)
class PKIPlan:
    """Every file of a cluster's PKI and what must be in it.

    ``dir`` holds what only the API server reads (the CA, its serving certificate,
    the ServiceAccount signing key), with the names ``mp-apiserver --cert-dir``
    uses; each other credential is ``dir/<name>/kubeconfig``, a directory of its
    own, so a deployment can hand each component its directory and nothing else
    (compose mounts one volume per component there).
    """

    dir: Path
    cluster_name: str  # of the kubeconfigs' cluster, user and context
    serving_names: tuple[str, ...]
    serving_ips: tuple[str, ...]
    credentials: tuple[Credential, ...]

    @property
    def ca_cert(self) -> Path:
        return self.dir / "ca.crt"

    @property
    def ca_key(self) -> Path:
        return self.dir / "ca.key"

    @property
    def serving_cert(self) -> Path:
        return self.dir / "apiserver.crt"

    @property
    def serving_key(self) -> Path:
        return self.dir / "apiserver.key"

    @property
    def sa_key(self) -> Path:
        return self.dir / "sa.key"

    @property
    def kubelet_client_cert(self) -> Path:
        """The API server's client certificate toward node agents (kubeadm's name)."""
        return self.dir / "apiserver-kubelet-client.crt"

    @property
    def kubelet_client_key(self) -> Path:
        return self.dir / "apiserver-kubelet-client.key"

    def agent_files(self, node: str) -> tuple[Path, Path, Path]:
        """A node agent's API serving pair and the CA it checks callers with, in the
        node's own directory (beside its kubeconfig)."""
        d = self.credential(node).kubeconfig.parent
        return d / "kubelet.crt", d / "kubelet.key", d / "ca.crt"

    def credential(self, name: str) -> Credential:
        for cred in self.credentials:
            if cred.name == name:
                return cred
        raise KeyError(name)


def pki_plan(directory: Path, *, server: str, nodes: Iterable[str],
             admin_server: str | None = None, admin_kubeconfig: Path | None = None,
             apiserver_names: Iterable[str] = (), apiserver_ips: Iterable[str] = (),
             cluster_name: str = "miniplane") -> PKIPlan:
    """The PKI of a cluster whose components reach the API server at ``server``.

    The serving certificate names loopback, the `kubernetes` Service (its
    ClusterIP and DNS names, for pods) and ``apiserver_names``/``apiserver_ips``
    (the fabric address; compose's service name). ``admin_server`` is where the
    admin (a person on the host) reaches it, if not at ``server``.
    """
    nodes, apiserver_names, apiserver_ips = (tuple(dict.fromkeys(x)) for x in
                                             (nodes, apiserver_names, apiserver_ips))
    for node in nodes:
        if errors := names.is_dns1123_subdomain(node):
            raise SpecError(f"--node: {node!r}: {errors[0]}")
        if node in IDENTITIES:
            raise SpecError(f"--node: {node!r} is the name of another credential")
    for ip in apiserver_ips:
        if errors := names.is_valid_ip(ip):
            raise SpecError(f"--apiserver-ip: {ip!r}: {errors[0]}")
    for name in apiserver_names:
        if errors := names.is_dns1123_subdomain(name):
            raise SpecError(f"--apiserver-name: {name!r}: {errors[0]}")

    def at(name: str) -> Path:
        return directory / name / "kubeconfig"

    creds = [Credential(ADMIN, *IDENTITIES[ADMIN], admin_kubeconfig or at(ADMIN),
                        admin_server or server)]
    creds += [Credential(name, *IDENTITIES[name], at(name), server)
              for name in (CONTROLLERS, DNSD)]
    creds += [Credential(node, *node_identity(node), at(node), server)
              for node in nodes]
    dns = ("localhost", *KUBERNETES_NAMES, *apiserver_names)
    ips = ("127.0.0.1", API_SERVICE_IP, *apiserver_ips)
    return PKIPlan(dir=directory, cluster_name=cluster_name,
                   serving_names=tuple(dict.fromkeys(dns)),
                   serving_ips=tuple(dict.fromkeys(ips)), credentials=tuple(creds))


def apiserver_pki_flags(pki: PKIPlan) -> list[str]:
    """The API server's bring-your-own flags naming the plan's files."""
    return ["--cert-dir", str(pki.dir), "--client-ca-file", str(pki.ca_cert),
            "--tls-cert-file", str(pki.serving_cert),
            "--tls-private-key-file", str(pki.serving_key),
            "--service-account-signing-key-file", str(pki.sa_key),
            "--kubelet-client-certificate", str(pki.kubelet_client_cert),
            "--kubelet-client-key", str(pki.kubelet_client_key),
            "--kubelet-certificate-authority", str(pki.ca_cert)]


def agent_pki_flags(pki: PKIPlan, node: str) -> list[str]:
    """A node agent's API flags naming the plan's files."""
    cert, key, ca = pki.agent_files(node)
    return ["--tls-cert-file", str(cert), "--tls-private-key-file", str(key),
            "--client-ca-file", str(ca)]


# The API server's identity toward node agents: a dedicated user with no groups, so
# the certificate opens nothing on the API server itself (kubeadm's
# apiserver-kubelet-client is in system:masters).
KUBELET_CLIENT = "kube-apiserver-kubelet-client"


def agent_serving_identity(node: str) -> pki_lib.Identity:
    """What a node agent's serving certificate names: the node, and loopback (a local
    cluster's API server dials 127.0.0.1)."""
    return pki_lib.server_identity(f"system:node:{node}", (node, "localhost"), ("127.0.0.1",))


# --------------------------------------------------------------------------- kube-dns


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
