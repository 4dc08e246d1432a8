"""End to end: a real 2-node cluster from ``mpctl cluster up``, driven as a user would.

The demo of ``examples/`` (Service ``web`` over a Deployment of three HTTP pods, a
``client`` pod)
runs on it; every check runs a command inside the client pod with ``mpctl exec``,
so names resolve through the pod's resolv.conf and search path, and traffic goes
through the nodes' real iptables rules. The cluster is named ``e<random>`` and
``mpctl cluster down`` in the fixture's finalizer must leave no namespace and no
process of it behind, even when a test failed.
"""

from __future__ import annotations

import contextlib
import json
import os
import pwd
import secrets
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
import pytest
import yaml

from apimachinery.kinds import EVENT, LEASE, NODE, POD, SERVICE
from apimachinery.nodelease import NODE_LEASE_NAMESPACE
from client.config import load_config
from client.errors import NotFound
from client.http import Client
from componentbase import pki as certs
from componentbase.procs import same_process
from dnsd.upstream import DEFAULT_TIMEOUT
from mpctl.cluster import plan
from tests.conftest import BIN, REPO, USER_KUBECTL, wait_until
from tests.dnsstub import SOA_TTL, StubDns
from tests.netns import have_root_tools, sweep
from tests.podscripts import CONNECT

pytestmark = [pytest.mark.root,
              pytest.mark.skipif(have_root_tools() is not None,
                                 reason=have_root_tools() or "")]

EXAMPLES = REPO / "examples"
# Tests never send DNS off the machine: every `cluster up` here forwards nowhere
# unless the test names its own stub upstream (`mpctl` adds this to `cluster up`).
NO_DNS_UPSTREAM = ("--dns-upstream", "none")
REPLICAS = 3  # the demo Deployment's

# Runs in the client pod: N requests to URL, each on a new connection; one JSON line.
REQUESTS = """
import json, sys, urllib.request
url, n = sys.argv[1], int(sys.argv[2])
seen, errors = [], []
for _ in range(n):
    try:
        seen.append(urllib.request.urlopen(url, timeout=2).read().decode().split()[0])
    except OSError as exc:
        errors.append(repr(exc))
print(json.dumps({"seen": seen, "errors": errors}))
"""

# Runs in the client pod: requests back to back for SECONDS, one JSON line each with
# the start time, so the test can place each against the moment it deleted a pod.
LOOP = """
import json, sys, time, urllib.request
url, until = sys.argv[1], time.time() + float(sys.argv[2])
while time.time() < until:
    t = time.time()
    try:
        name = urllib.request.urlopen(url, timeout=2).read().decode().split()[0]
        print(json.dumps({"t": t, "ok": name}), flush=True)
    except OSError as exc:
        print(json.dumps({"t": t, "error": repr(exc)}), flush=True)
"""


def mpctl(*args: str, state_dir: Path | None = None, check: bool = False, timeout: float = 90,
          ) -> subprocess.CompletedProcess[str]:
    if args[:2] == ("cluster", "up") and "--dns-upstream" not in args:
        args = (*args, *NO_DNS_UPSTREAM)
    env = dict(os.environ)
    env.pop("MINIPLANE_SERVER", None)
    if state_dir is not None:
        env["KUBECONFIG"] = str(state_dir / "kubeconfig")
    result = subprocess.run([str(BIN / "mpctl"), *args], capture_output=True, text=True,
                            env=env, cwd=REPO, timeout=timeout)
    if check and result.returncode != 0:
        raise AssertionError(f"mpctl {' '.join(args)} exited {result.returncode}:\n"
                             f"{result.stdout}{result.stderr}")
    return result


def admin_client(state_dir: Path) -> Client:
    """As the user: the kubeconfig ``up`` wrote (CA, admin certificate, https server)."""
    config = load_config(kubeconfig=state_dir / "kubeconfig")
    assert config.server.startswith("https://") and config.client_cert and config.ca_file
    return Client(config)


def namespaces_of(name: str) -> list[str]:
    listing = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    return [line.split()[0] for line in listing.splitlines()
            if line.split() and plan.owns_namespace(name, line.split()[0])]


@dataclass
class LocalCluster:
    name: str
    state_dir: Path
    client: Client

    def mpctl(self, *args: str, check: bool = False, timeout: float = 90
              ) -> subprocess.CompletedProcess[str]:
        return mpctl(*args, state_dir=self.state_dir, check=check, timeout=timeout)

    def in_client(self, *cmd: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return self.mpctl("exec", "client", "--", *cmd, check=check)

    def python_in_client(self, script: str, *args: str) -> str:
        return self.in_client("python3", "-c", script, *args).stdout.strip()

    def record(self) -> dict[str, Any]:
        return json.loads((self.state_dir / "cluster.json").read_text())

    def ready_pods(self, selector: str) -> dict[str, str]:
        """name -> pod IP of the Ready pods matching ``selector``."""
        out = {}
        for pod in self.client.list(POD, "default", label_selector=selector)["items"]:
            status = pod.get("status", {})
            conds = {c["type"]: c["status"] for c in status.get("conditions") or []}
            if conds.get("Ready") == "True" and not pod["metadata"].get("deletionTimestamp"):
                out[pod["metadata"]["name"]] = status.get("podIP")
        return out

    def wait_ready(self, selector: str, names: set[str], timeout: float = 40) -> dict[str, str]:
        try:
            return wait_until(lambda: (p := self.ready_pods(selector)) and set(p) == names
                              and p, timeout=timeout, what=f"pods {sorted(names)} to be Ready")
        except AssertionError as exc:
            pods = self.client.list(POD, "default", label_selector=selector)["items"]
            states = {p["metadata"]["name"]: (p.get("status", {}).get("phase"),
                                              p.get("status", {}).get("conditions"),
                                              p["metadata"].get("deletionTimestamp"))
                      for p in pods}
            raise AssertionError(f"{exc}; pods now: {states}") from None

    def wait_replicas(self, selector: str, count: int, timeout: float = 60
                      ) -> dict[str, str]:
        """name -> pod IP of ``count`` Ready pods matching ``selector``, once exactly
        that many are (a Deployment's pods have generated names)."""
        ready: dict[str, str] = wait_until(
            lambda: len(p := self.ready_pods(selector)) == count and p,
            timeout=timeout, what=f"{count} Ready pods for {selector}")
        return ready

    def apply_demo(self, *, kubectl: bool = False) -> None:
        """The demo applied (by mpctl, or the real kubectl), its pods Ready, and ``web``
        answering the client pod: Ready in the API comes a few milliseconds before the
        client's node has the rules."""
        if kubectl:
            subprocess.run([str(USER_KUBECTL), "--kubeconfig", str(self.state_dir / "kubeconfig"),
                            "apply", "-f", str(EXAMPLES)], check=True, capture_output=True,
                           timeout=60)
        else:
            self.mpctl("apply", "-f", str(EXAMPLES), check=True)
        ips = set(self.wait_replicas("app=web", REPLICAS).values())
        wait_until(lambda: self.client.get(POD, "client", "default")["status"].get("phase")
                   == "Running", timeout=40, what="the client pod to run")
        script = ("import urllib.request\n"
                  "print(urllib.request.urlopen('http://web/', timeout=2).read().decode())")
        wait_until(lambda: (out := self.in_client("python3", "-c", script, check=False))
                   .returncode == 0 and out.stdout.split()[1] in ips, timeout=30,
                   what="web to answer the client pod")


def assert_gone(name: str, record: dict[str, Any]) -> None:
    """Nothing of cluster ``name`` left: namespaces, /etc/netns entries, processes."""
    assert namespaces_of(name) == []
    assert not [d for d in Path("/etc/netns").glob(f"mp-{name}-*")] \
        if Path("/etc/netns").is_dir() else True
    alive = [p["name"] for p in record["processes"] if same_process(p["pid"], p["start"])]
    assert alive == []


def force_cleanup(name: str, record: dict[str, Any] | None) -> None:
    """The last resort after a failed ``down``: kill recorded pids, sweep namespaces."""
    for p in (record or {}).get("processes", []):
        if same_process(p["pid"], p["start"]):
            with contextlib.suppress(ProcessLookupError):
                os.kill(p["pid"], signal.SIGKILL)
    sweep(f"mp-{name}-")


@contextlib.contextmanager
def running_cluster(state_root: Path, prefix: str = "e", *args: str
                    ) -> Iterator[LocalCluster]:
    """A detached ``cluster up`` named ``<prefix><random>`` under ``state_root``;
    ``down`` afterwards must leave nothing of it, and whatever it left is killed and
    swept anyway, even when the body failed."""
    name = f"{prefix}{secrets.token_hex(3)}"
    state_dir = state_root / name
    record: dict[str, Any] | None = None
    try:
        mpctl("cluster", "up", "--name", name, "--state-dir", str(state_dir), "--detach", "-q",
              *args, check=True)
        record = json.loads((state_dir / "cluster.json").read_text())
        with admin_client(state_dir) as client:
            yield LocalCluster(name=name, state_dir=state_dir, client=client)
    finally:
        if record is None and (state_dir / "cluster.json").exists():
            record = json.loads((state_dir / "cluster.json").read_text())
        down = mpctl("cluster", "down", "--name", name, "--state-dir", str(state_dir))
        try:
            assert down.returncode == 0, down.stderr
            assert not (state_dir / "cluster.json").exists()
            if record is not None:
                assert_gone(name, record)
        finally:
            force_cleanup(name, record)


# What the stub upstream (tests/dnsstub.py, on 127.0.0.1) knows: names outside the
# cluster that only it can answer, so a pod resolving them went through dnsd's forwarding.
UPSTREAM_RECORDS = {("www.upstream.test.", "A"): ["192.0.2.20"]}
UPSTREAM_PTR = "ptr.upstream.test."


@pytest.fixture(scope="module")
def upstream() -> Iterator[StubDns]:
    with StubDns(UPSTREAM_RECORDS, ptr=UPSTREAM_PTR, port_53=True) as stub:
        yield stub


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory, upstream: StubDns
            ) -> Iterator[LocalCluster]:
    """The demo on a cluster whose dnsd forwards to the stub, named by a resolv.conf as
    the host's would be (``cluster up``'s default is the host's /etc/resolv.conf)."""
    root = tmp_path_factory.mktemp("cluster")
    (root / "resolv.conf").write_text(upstream.resolv_conf())
    with running_cluster(root, "e", "--dns-upstream", str(root / "resolv.conf")) as c:
        c.apply_demo()
        yield c


def test_pod_resolves_a_service_by_short_and_full_name(cluster: LocalCluster) -> None:
    ip = cluster.client.get(SERVICE, "web", "default")["spec"]["clusterIP"]
    short = cluster.in_client("getent", "hosts", "web").stdout.split()
    assert short[:2] == [ip, "web.default.svc.cluster.local"]
    full = cluster.in_client("getent", "hosts", "web.default.svc.cluster.local").stdout.split()
    assert full[0] == ip


def test_requests_to_the_service_reach_every_backend(cluster: LocalCluster) -> None:
    backends = set(cluster.wait_replicas("app=web", REPLICAS))
    result = json.loads(cluster.python_in_client(REQUESTS, "http://web/", "60"))
    assert result["errors"] == []
    assert len(result["seen"]) == 60
    assert set(result["seen"]) == backends
    # spread over both nodes, so cross-node pod traffic is exercised too
    nodes = {cluster.client.get(POD, n, "default")["spec"]["nodeName"] for n in backends}
    assert len(nodes) == 2


def test_srv_query_through_the_dns_cluster_ip_returns_the_port(cluster: LocalCluster) -> None:
    out = cluster.in_client("dig", "+short", f"@{plan.DNS_CLUSTER_IP}", "SRV",
                            "_http._tcp.web.default.svc.cluster.local").stdout.split()
    assert out == ["0", "100", "80", "web.default.svc.cluster.local."]


def test_headless_service_resolves_to_the_pod_ips(cluster: LocalCluster) -> None:
    cluster.client.create(SERVICE, {
        "apiVersion": "v1", "kind": "Service", "metadata": {"name": "web-direct"},
        "spec": {"clusterIP": "None", "selector": {"app": "web"},
                 "ports": [{"name": "http", "port": 8080}]}}, "default")
    pod_ips = set(cluster.ready_pods("app=web").values())
    script = ("import socket; print(' '.join(sorted({a[4][0] for a in "
              "socket.getaddrinfo('web-direct', 8080, type=socket.SOCK_STREAM)})))")
    wait_until(lambda: set(cluster.python_in_client(script).split()) == pod_ips, timeout=10,
               what="web-direct to resolve to every web pod")


def test_single_stack_cluster_refuses_ipv6_and_serves_prefer_dual_stack_over_ipv4(
        cluster: LocalCluster, tmp_path: Path) -> None:
    """As a single-stack IPv4 Kubernetes cluster: an IPv6 Service is a 422 naming
    ``spec.ipFamilies[0]`` (nothing stored); PreferDualStack gets one IPv4 address and
    carries traffic."""
    manifest = tmp_path / "v6.yaml"
    manifest.write_text(yaml.safe_dump({
        "apiVersion": "v1", "kind": "Service", "metadata": {"name": "web-v6"},
        "spec": {"ipFamilies": ["IPv6"], "selector": {"app": "web"},
                 "ports": [{"port": 80, "targetPort": "http"}]}}))
    refused = subprocess.run([str(USER_KUBECTL), "--kubeconfig",
                              str(cluster.state_dir / "kubeconfig"), "apply", "-f",
                              str(manifest)], capture_output=True, text=True, timeout=60)
    assert (refused.returncode, refused.stderr) == (1, (
        'The Service "web-v6" is invalid: spec.ipFamilies[0]: Invalid value: "IPv6": '
        "not configured on this cluster\n"))
    with pytest.raises(NotFound):
        cluster.client.get(SERVICE, "web-v6", "default")
    made = cluster.client.create(SERVICE, {
        "apiVersion": "v1", "kind": "Service", "metadata": {"name": "web-prefer"},
        "spec": {"ipFamilyPolicy": "PreferDualStack", "selector": {"app": "web"},
                 "ports": [{"port": 80, "targetPort": "http"}]}}, "default")["spec"]
    assert (made["ipFamilyPolicy"], made["ipFamilies"]) == ("PreferDualStack", ["IPv4"])
    script = ("import urllib.request\n"
              "print(urllib.request.urlopen('http://web-prefer/', timeout=2).read().decode())")
    wait_until(lambda: cluster.in_client("python3", "-c", script, check=False).returncode
               == 0, timeout=20, what="web-prefer to answer the client pod")


def test_scaling_from_zero_to_one_endpoint(cluster: LocalCluster) -> None:
    cluster.client.create(SERVICE, {
        "apiVersion": "v1", "kind": "Service", "metadata": {"name": "solo"},
        "spec": {"selector": {"app": "solo"}, "ports": [{"port": 80, "targetPort": 8080}]}},
        "default")
    seen: list[str] = []  # every answer, for the failure message
    try:
        wait_until(lambda: seen.append(cluster.python_in_client(CONNECT, "solo", "80"))
                   or seen[-1] == "refused", timeout=10,
                   what="solo without endpoints to refuse connections")
    except AssertionError as exc:
        raise AssertionError(f"{exc}; answers: {seen}") from None
    cluster.client.create(POD, demo_pod("solo-1", {"app": "solo"}), "default")
    wait_until(lambda: cluster.python_in_client(REQUESTS, "http://solo/", "1")
               == json.dumps({"seen": ["solo-1"], "errors": []}), timeout=30,
               what="solo to answer once its pod is ready")


def test_deleted_backend_leaves_rotation_without_failed_requests(cluster: LocalCluster
                                                                  ) -> None:
    backends = set(cluster.wait_replicas("app=web", REPLICAS))
    victim = sorted(backends)[1]
    loop = subprocess.Popen([str(BIN / "mpctl"), "exec", "client", "--", "python3", "-c", LOOP,
                             "http://web/", "8"], stdout=subprocess.PIPE, text=True, cwd=REPO,
                            env={**os.environ, "KUBECONFIG": str(cluster.state_dir /
                                                                 "kubeconfig")})
    lines: list[dict[str, Any]] = []
    reader = threading.Thread(target=lambda: lines.extend(
        json.loads(line) for line in loop.stdout or ()), daemon=True)
    reader.start()
    try:
        # traffic before the deletion, as the reference: every backend answered
        wait_until(lambda: {x.get("ok") for x in lines} >= backends, timeout=10,
                   what="every backend to answer the loop")
        deleted_at = time.time()
        cluster.client.delete(POD, victim, "default")
        loop.wait(timeout=30)
        reader.join(timeout=10)
    finally:
        if loop.poll() is None:
            loop.kill()
            loop.wait()
    before = [x for x in lines if x["t"] < deleted_at]
    after = [x for x in lines if x["t"] >= deleted_at + 2]
    assert victim in {x.get("ok") for x in before}
    assert [x for x in lines if "error" in x] == []
    assert after and all(x["ok"] != victim for x in after), \
        f"{victim} still got requests 2 s after its deletion"
    # the Deployment's ReplicaSet puts a new pod in its place for whatever runs next
    with contextlib.suppress(NotFound):
        wait_until(lambda: _gone(cluster, victim), timeout=40, what=f"{victim} to go")
    assert victim not in cluster.wait_replicas("app=web", REPLICAS)


def test_logs_status_exec_exit_code_and_kubectl(cluster: LocalCluster) -> None:
    web = sorted(cluster.wait_replicas("app=web", REPLICAS))[0]
    logs = cluster.mpctl("logs", web, check=True).stdout
    assert logs.splitlines()[0] == f"{web} v1 listening on :8080"
    assert cluster.mpctl("logs", web, "--tail", "1", check=True).stdout.count("\n") == 1
    assert cluster.mpctl("exec", "client", "--", "sh", "-c", "exit 3").returncode == 3
    status = cluster.mpctl("cluster", "status", "--name", cluster.name, "--state-dir",
                           str(cluster.state_dir))
    assert status.returncode == 0, status.stdout
    header, components, nodes = status.stdout.strip().split("\n\n")
    assert header.splitlines()[1].startswith(
        "controller leader: controllers (Lease kube-system/kube-controller-manager held by ")
    pids = {p["name"]: str(p["pid"]) for p in cluster.record()["processes"]}
    assert [line.split()[:4] for line in components.splitlines()[1:]] == \
        [[name, pids[name], "running", "ready"] for name in
         ("apiserver", "controllers", "dnsd", "node-1", "node-2")]
    assert [line.split()[:2] for line in nodes.splitlines()[1:]] == \
        [["node-1", "Ready"], ["node-2", "Ready"]]
    kubectl = subprocess.run([str(BIN / "kubectl"), "--kubeconfig",
                              str(cluster.state_dir / "kubeconfig"), "get", "nodes",
                              "-o", "name"], capture_output=True, text=True, timeout=60)
    assert kubectl.stdout.split() == ["node/node-1", "node/node-2"]


def test_each_component_runs_with_its_own_credential(cluster: LocalCluster) -> None:
    """What ``up`` started: the API server on the plan's TLS files, every other
    component with a kubeconfig whose certificate names it (CN user, O groups)."""
    pki = cluster.state_dir / "pki"
    expected = {"controllers": ("system:kube-controller-manager", ()),
                "dnsd": ("system:miniplane-dnsd", ()),
                "node-1": ("system:node:node-1", ("system:nodes",)),
                "node-2": ("system:node:node-2", ("system:nodes",))}
    ca = certs.load(pki / "ca.crt", pki / "ca.key").cert
    for proc in cluster.record()["processes"]:
        argv = Path(f"/proc/{proc['pid']}/cmdline").read_bytes().decode().split("\0")
        assert "--server" not in argv, proc["name"]
        if proc["name"] == "apiserver":
            assert argv[argv.index("--tls-cert-file") + 1] == str(pki / "apiserver.crt")
            assert argv[argv.index("--client-ca-file") + 1] == str(pki / "ca.crt")
            continue
        path = Path(argv[argv.index("--kubeconfig") + 1])
        assert path == pki / proc["name"] / "kubeconfig"
        config = load_config(kubeconfig=path)
        cert = certs.load(config.client_cert, config.client_key).cert
        cert.verify_directly_issued_by(ca)
        assert certs.subject(cert) == expected[proc["name"]]
        assert oct(path.stat().st_mode & 0o777) == "0o600"
    admin = load_config(kubeconfig=cluster.state_dir / "kubeconfig")
    assert certs.subject(certs.load(admin.client_cert, admin.client_key).cert) == \
        ("kubernetes-admin", ("system:masters",))


def test_node_agents_heartbeat_through_their_own_leases(cluster: LocalCluster) -> None:
    """Each agent, with its node's certificate, renews ``kube-node-lease/<node>``; the
    controllers, with theirs, watch those Leases (no refusal in either log)."""
    nodes = ("node-1", "node-2")
    leases = {n: cluster.client.get(LEASE, n, NODE_LEASE_NAMESPACE) for n in nodes}
    for name, lease in leases.items():
        assert lease["spec"]["holderIdentity"] == name
        assert lease["spec"]["leaseDurationSeconds"] == 20  # 4 × the plan's 5 s interval
        uid = cluster.client.get(NODE, name)["metadata"]["uid"]
        assert lease["metadata"]["ownerReferences"] == [
            {"apiVersion": "v1", "kind": "Node", "name": name, "uid": uid}]
    wait_until(lambda: all(cluster.client.get(LEASE, n, NODE_LEASE_NAMESPACE)["spec"]
                           ["renewTime"] != leases[n]["spec"]["renewTime"] for n in nodes),
               timeout=20, what="both Leases renewed")
    logs = cluster.state_dir / "logs"
    for name in nodes:
        assert "Lease renewal failed" not in (logs / f"{name}.log").read_text()
    refused = [line for line in (logs / "controllers.log").read_text().lower().splitlines()
               if "forbidden" in line and "lease" in line]
    assert refused == []


def test_pods_reach_the_api_server_over_tls_through_the_kubernetes_service(
        cluster: LocalCluster) -> None:
    """10.96.0.1:443 leads to the API server's fabric address, whose certificate
    names ``kubernetes.default.svc.cluster.local`` (``mpctl exec`` enters the pod's
    network namespace only, not the mount namespace where its token and CA are
    mounted, so the CA is read from the state dir; ``test_security`` reads them as a
    pod does)."""
    ca = cluster.state_dir / "pki" / "ca.crt"
    for url in ("https://kubernetes.default.svc.cluster.local/readyz",
                "https://10.96.0.1/readyz"):
        out = cluster.in_client("curl", "-sS", "-m", "5", "--cacert", str(ca), url)
        assert out.stdout == "ok", (url, out.stdout, out.stderr)


# -- names outside the cluster: forwarded to the upstream, and cached (issue 18) ------


def dig(cluster: LocalCluster, *args: str) -> tuple[str, list[list[str]], int]:
    """``dig`` in the client pod at the DNS ClusterIP, one try: the status, the answer
    and authority records (as fields) and the query time in milliseconds."""
    out = cluster.in_client("dig", f"@{plan.DNS_CLUSTER_IP}", "+tries=1", "+time=5",
                            "+noall", "+comments", "+answer", "+authority", "+stats",
                            *args).stdout
    status = out.split("status: ", 1)[1].split(",", 1)[0]
    rows = [line.split() for line in out.splitlines() if line and not line.startswith(";")]
    msec = int(out.split(";; Query time: ", 1)[1].split()[0])
    return status, rows, msec


def test_pod_resolves_a_name_outside_the_cluster_through_the_upstream(
        cluster: LocalCluster, upstream: StubDns) -> None:
    """Through the pod's resolv.conf (search path first, as glibc does), dnsd forwards
    what isn't the cluster's to the upstream and keeps the answer: asked again, the
    upstream is not, and the TTL counts down from the upstream's."""
    out = cluster.in_client("getent", "hosts", "www.upstream.test").stdout.split()
    assert out[:2] == ["192.0.2.20", "www.upstream.test"]
    asked = upstream.count("www.upstream.test", "A")
    assert asked >= 1
    status, rows, _ = dig(cluster, "www.upstream.test", "A")
    assert status == "NOERROR" and [r[4] for r in rows] == ["192.0.2.20"]
    assert int(rows[0][1]) <= upstream.ttl
    wait_until(lambda: int(dig(cluster, "www.upstream.test", "A")[1][0][1]) < upstream.ttl,
               timeout=10, what="the cached answer's TTL to count down")
    assert upstream.count("www.upstream.test", "A") == asked


def test_nxdomain_from_the_upstream_is_cached(cluster: LocalCluster,
                                              upstream: StubDns) -> None:
    """RFC 2308: kept for min(SOA TTL, SOA MINIMUM), the SOA in the authority section."""
    first = dig(cluster, "missing.upstream.test", "A")
    again = dig(cluster, "missing.upstream.test", "A")
    for status, rows, _ in (first, again):
        assert status == "NXDOMAIN"
        assert [(r[3], int(r[1]) <= SOA_TTL) for r in rows] == [("SOA", True)]
    assert upstream.count("missing.upstream.test", "A") == 1


def test_ptr_for_a_pod_ip_no_cluster_record_holds_is_forwarded(
        cluster: LocalCluster, upstream: StubDns) -> None:
    """CoreDNS's ``fallthrough in-addr.arpa ip6.arpa``: not REFUSED but asked upstream."""
    ip = cluster.client.get(POD, "client", "default")["status"]["podIP"]
    status, rows, _ = dig(cluster, "-x", ip)
    assert status == "NOERROR" and [r[4] for r in rows] == [UPSTREAM_PTR]
    # a ClusterIP's PTR is still the cluster's own
    web = cluster.client.get(SERVICE, "web", "default")["spec"]["clusterIP"]
    assert [r[4] for r in dig(cluster, "-x", web)[1]] == ["web.default.svc.cluster.local."]


def test_external_name_outside_the_cluster_gives_the_pod_an_address(
        cluster: LocalCluster) -> None:
    """The CNAME plus the target's A, which dnsd asks the upstream for (CoreDNS does)."""
    cluster.client.create(SERVICE, {
        "apiVersion": "v1", "kind": "Service", "metadata": {"name": "outside"},
        "spec": {"type": "ExternalName", "externalName": "www.upstream.test"}}, "default")
    try:
        wait_until(lambda: cluster.in_client("getent", "hosts", "outside", check=False)
                   .stdout.split()[:1] == ["192.0.2.20"], timeout=20,
                   what="the ExternalName to resolve to the upstream's address")
        status, rows, _ = dig(cluster, "outside.default.svc.cluster.local", "A")
        assert status == "NOERROR"
        assert [(r[3], r[4]) for r in rows] == [("CNAME", "www.upstream.test."),
                                                ("A", "192.0.2.20")]
    finally:
        cluster.client.delete(SERVICE, "outside", "default")


def test_servfail_at_once_when_the_upstream_is_down(cluster: LocalCluster,
                                                    upstream: StubDns) -> None:
    """No upstream answering is SERVFAIL, not a wait the pod's resolver gives up on; the
    cluster's own names don't depend on the upstream."""
    upstream.stop()
    try:
        for _ in range(2):  # the second one from the cache (5 s), the upstream untried
            status, _, msec = dig(cluster, "gone.upstream.test", "A")
            # answered before a single upstream timeout could have passed: nobody waited
            assert status == "SERVFAIL" and msec < DEFAULT_TIMEOUT * 1000
        status, rows, _ = dig(cluster, "web.default.svc.cluster.local", "A")
        assert status == "NOERROR" and len(rows) == 1
    finally:
        upstream.start()


def test_second_cluster_side_by_side_stopped_by_down_elsewhere(cluster: LocalCluster,
                                                         tmp_path: Path) -> None:
    """A foreground ``up`` next to the first cluster; ``down`` elsewhere SIGTERMs it.

    SIGTERM takes the same path as Ctrl-C in ``up``: it tears the cluster down itself.
    """
    name = f"f{secrets.token_hex(3)}"
    state_dir = tmp_path / name
    up = subprocess.Popen([str(BIN / "mpctl"), "cluster", "up", "--name", name, "--nodes",
                           "1", "--state-dir", str(state_dir), *NO_DNS_UPSTREAM],
                          stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True, cwd=REPO)
    record: dict[str, Any] | None = None
    try:
        wait_running(up, state_dir)
        record = json.loads((state_dir / "cluster.json").read_text())
        assert record["server"] != cluster.record()["server"]
        assert record["dns"] != cluster.record()["dns"]
        with admin_client(state_dir) as other:
            assert [n["metadata"]["name"] for n in other.list(NODE)["items"]] == ["node-1"]
        assert cluster.mpctl("get", "nodes", "-o", "name", check=True).stdout.split() == \
            ["node/node-1", "node/node-2"]
        # `down` from elsewhere: it SIGTERMs the foreground `up`, which tears down
        down = mpctl("cluster", "down", "--name", name)
        assert (down.returncode, down.stdout) == \
            (0, f"cluster {name!r} stopped; removed 2 namespaces\n"), down.stderr
        out, _ = up.communicate(timeout=60)
        assert up.returncode == 0, out
        assert f"stopping cluster '{name}'" in out
        assert_gone(name, record)
    finally:
        if up.poll() is None:
            up.kill()
            up.wait()
        mpctl("cluster", "down", "--name", name, "--state-dir", str(state_dir))
        force_cleanup(name, record)
    # the first cluster is untouched
    assert cluster.in_client("getent", "hosts", "web").returncode == 0


def test_down_after_kill_9_of_up(tmp_path: Path) -> None:
    name = f"k{secrets.token_hex(3)}"
    state_dir = tmp_path / name
    up = subprocess.Popen([str(BIN / "mpctl"), "cluster", "up", "--name", name, "--nodes",
                           "1", "--state-dir", str(state_dir), "-q", *NO_DNS_UPSTREAM],
                          cwd=REPO)
    record: dict[str, Any] | None = None
    try:
        wait_running(up, state_dir)
        record = json.loads((state_dir / "cluster.json").read_text())
        up.kill()
        up.wait()
        assert all(same_process(p["pid"], p["start"]) for p in record["processes"])
        again = mpctl("cluster", "up", "--name", name, "--state-dir", str(state_dir))
        assert again.returncode == 1
        assert again.stderr == (f"error: cluster {name!r} is already running (state in "
                                f"{state_dir}); run: mpctl cluster down --name {name}\n")
        # no --state-dir: the host-wide registry knows where this cluster's state is
        down = mpctl("cluster", "down", "--name", name)
        assert down.returncode == 0, down.stderr
        assert down.stdout == f"cluster {name!r} stopped; removed 2 namespaces\n"
        assert_gone(name, record)
        assert mpctl("cluster", "down", "--name", name, "--state-dir", str(state_dir)
                     ).stdout == f"cluster {name!r} is not running\n"
        # the CA and the credentials stay for the next `up` (unit-tested to be reused)
        assert (state_dir / "pki" / "ca.key").is_file()
        assert (state_dir / "kubeconfig").is_file()
    finally:
        if up.poll() is None:
            up.kill()
            up.wait()
        force_cleanup(name, record)


@pytest.mark.parametrize(("args", "message"), [
    (["--nodes", "0"], "error: --nodes: 0 is out of range (1-100)\n"),
    (["--storage", "mysql"], "error: --storage: 'mysql' is not one of sqlite, postgresql\n"),
    (["--lb-pool", "10.250.0.2-10.250.0.9"], "error: --lb-pool: 10.250.0.2 is the fabric's, "
                                             "a node's or the network's own address\n"),
    (["--name", "Bad_Name"], "error: --name: 'Bad_Name' must be 1-20 lowercase letters, "
                             "digits or '-', starting and ending with a letter or digit\n"),
    (["--dns-upstream", "dns.example.com:53"],
     "error: --dns-upstream: 'dns.example.com:53': 'dns.example.com' is not an IP address; "
     "or 'none', or a resolv.conf's absolute path\n"),
])
def test_bad_flags_change_nothing(args: list[str], message: str, tmp_path: Path) -> None:
    before = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    result = mpctl("cluster", "up", "--state-dir", str(tmp_path / "x"), *args)
    assert (result.returncode, result.stdout, result.stderr) == (1, "", message)
    assert not (tmp_path / "x").exists()
    after = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    # only the cluster this `up` would have made: other tests on the host make their own
    name = args[1] if args[0] == "--name" else "mp"
    new = {line.split()[0] for line in after.splitlines() if line.split()} - \
        {line.split()[0] for line in before.splitlines() if line.split()}
    assert [ns for ns in new if ns.startswith(f"mp-{name}-")] == []


def wait_running(up: subprocess.Popen[str], state_dir: Path, timeout: float = 120) -> None:
    """Until the foreground ``up`` reports the cluster running; its output if it can't."""
    def running() -> bool:
        if up.poll() is not None:
            raise AssertionError(f"cluster up exited {up.returncode}:\n"
                                 f"{up.stdout.read() if up.stdout else ''}")
        return _phase(state_dir) == "running"
    deadline = time.monotonic() + timeout
    while not running():
        if time.monotonic() > deadline:
            up.send_signal(signal.SIGTERM)
            out = up.communicate(timeout=60)[0] if up.stdout else ""
            raise AssertionError(f"cluster up not running after {timeout}s:\n{out}")
        time.sleep(0.05)


def _phase(state_dir: Path) -> str | None:
    try:
        return json.loads((state_dir / "cluster.json").read_text()).get("phase")
    except (OSError, ValueError):
        return None


def _gone(cluster: LocalCluster, name: str) -> bool:
    try:
        cluster.client.get(POD, name, "default")
    except NotFound:
        return True
    return False


def _demo_documents() -> list[dict[str, Any]]:
    return list(yaml.safe_load_all((EXAMPLES / "web.yaml").read_text()))


def demo_pod(name: str, labels: dict[str, str]) -> dict[str, Any]:
    """A bare Pod running the demo Deployment's web server (the template's spec)."""
    deployment = next(d for d in _demo_documents() if d["kind"] == "Deployment")
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "labels": labels},
            "spec": deployment["spec"]["template"]["spec"]}


def test_up_without_root_says_so(tmp_path: Path) -> None:
    if shutil.which("setpriv") is None:
        pytest.skip("setpriv (util-linux) is not installed")
    result = subprocess.run(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
                             str(BIN / "mpctl"), "cluster", "up", "--state-dir",
                             str(tmp_path / "x")], capture_output=True, text=True, cwd="/",
                            timeout=60)
    assert (result.returncode, result.stderr) == (
        1, "error: mpctl cluster needs root (it creates network namespaces and iptables "
           "rules)\n")


def test_a_cluster_on_its_own_postgresql_server() -> None:
    """``--storage postgresql``: a private server in the state dir, run as the postgres
    user on a Unix socket only, holding the objects; ``down`` stops it by pid."""
    # the server runs as `postgres`, which must reach its directory (pytest's tmp_path
    # is 0700): a state root of our own that anyone may traverse, not list
    root = Path(tempfile.mkdtemp(prefix="mp-e2e-pg-"))
    root.chmod(0o711)
    try:
        _check_postgresql_cluster(root)
    finally:
        shutil.rmtree(root, ignore_errors=True)


def _check_postgresql_cluster(root: Path) -> None:
    with running_cluster(root, "p", "--storage", "postgresql", "--nodes", "1") as c:
        record = json.loads((c.state_dir / "cluster.json").read_text())
        assert record["storage"] == "postgresql"
        names = [p["name"] for p in record["processes"]]
        assert names[:2] == ["postgres", "apiserver"]
        (db,) = [p for p in record["processes"] if p["name"] == "postgres"]
        uid = int(next(line for line in Path(f"/proc/{db['pid']}/status").read_text()
                       .splitlines() if line.startswith("Uid:")).split()[1])
        assert uid == pwd.getpwnam("postgres").pw_uid != 0
        assert not (c.state_dir / "state.db").exists()
        status = c.mpctl("cluster", "status", "--name", c.name, "--state-dir", str(c.state_dir),
                         check=True).stdout
        assert "storage postgresql" in status and "postgres" in status
        c.client.create(SERVICE, {"apiVersion": "v1", "kind": "Service",
                                  "metadata": {"name": "kept"},
                                  "spec": {"ports": [{"port": 80}]}}, "default")
        with psycopg.connect(host=str(c.state_dir / "postgres"), port=5432, user="postgres",
                             dbname="miniplane") as conn:
            (count,) = conn.execute("SELECT count(*) FROM objects WHERE resource = 'services' "
                                    "AND name = 'kept'").fetchone()
        assert count == 1
        # nothing listens on TCP for it
        listeners = subprocess.run(["ss", "-Htlnp"], capture_output=True, text=True).stdout
        assert f"pid={db['pid']}," not in listeners


def test_node_agents_and_scheduler_write_events_as_themselves(cluster: LocalCluster) -> None:
    """Events of the client pod, written with each component's own credential: the
    scheduler's as default-scheduler, the node agent's (system:node:<node>) as kubelet
    on its node; `kubectl get events` lists them."""
    pod = cluster.client.get(POD, "client", "default")
    node = pod["spec"]["nodeName"]

    def sources() -> dict[str, dict[str, str]]:
        return {e["reason"]: e["source"] for e in cluster.client.list(
            EVENT, "default", field_selector="involvedObject.name=client,"
            f"involvedObject.uid={pod['metadata']['uid']}")["items"]}

    found = wait_until(lambda: (s := sources()).keys() >= {"Scheduled", "Started"} and s,
                       timeout=20, interval=0.25, what="the client pod's events")
    assert found["Scheduled"] == {"component": "default-scheduler"}
    assert found["Started"] == {"component": "kubelet", "host": node}
    assert found["Pulled"] == found["Created"] == found["Started"]
    out = subprocess.run([str(BIN / "kubectl"), "--kubeconfig",
                          str(cluster.state_dir / "kubeconfig"), "get", "events",
                          "--field-selector", "involvedObject.name=client,reason=Started"],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines()[1].split()[1:5] == ["Normal", "Started", "pod/client",
                                                       "Started"]
