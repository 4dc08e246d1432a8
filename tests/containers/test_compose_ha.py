"""``docker-compose.yml`` + ``docker-compose.ha.yml`` run for real: the HA cluster in
containers, losing the API server its clients use first and the leading controller.

As tests/e2e/test_ha_cluster.py does for ``mpctl cluster up --storage postgresql
--apiservers 3``: the three API servers answer on their published ports and share
one state (written through one, read through the others); exactly one of the two
controller containers leads (the Lease and its /metrics agree); then ``docker kill``
(SIGKILL) of ``apiserver`` (the first server of every component's kubeconfig) and of
the leading controller; the other controller leads within the lease duration plus
retries (the takeover time is printed); the node agents keep heartbeating; a pod
created afterwards behind a new Service is answered through the Service's ClusterIP
and name from a pod; the admin's kubeconfig moves to the next published port. And
what keeps the storage whole and private: PostgreSQL runs as ``postgres`` without
capabilities on a network of its own, refuses a wrong password and its superuser; a
``pki`` one-shot or an API server of the plain file (SQLite) refuses to run on this
deployment. ``down -v`` (with both files) leaves nothing.

Run with compose v2 only (``MINIPLANE_HA_COMPOSE=v1`` or ``v1,v2`` runs Debian's
docker-compose 1.29 too): the suite already runs both flavours on docker-compose.yml,
and what this file adds (services, overrides of three, one more network and two
volumes) is compose's ordinary merging; the other flavour checks the merged files
with ``config`` (two and a half minutes saved). Doesn't depend on the `kubernetes` Service's
EndpointSlice, which each API server's reconcile overwrites with its own address.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

import pytest

from client.config import read_kubeconfig
from mpctl.cluster import leader
from tests.conftest import free_port
from tests.containers.harness import (
    ROOT,
    Engine,
    elapsed_since,
    host_snapshot,
    left_behind,
    poll,
    run,
)
from tests.containers.test_compose import (
    CLUSTER,
    COMPOSE_FILE,
    NODES,
    Cluster,
    Containers,
    check_project_gone,
    compose_command,
    demo_pod,
    heartbeat,
    is_ready,
    write_override,
)

pytestmark = [pytest.mark.containers, pytest.mark.timeout(1200)]

HA_FILE = ROOT / "docker-compose.ha.yml"
FILES = (COMPOSE_FILE, HA_FILE)
APISERVERS = ("apiserver", "apiserver-2", "apiserver-3")
CONTROLLERS = ("controllers", "controllers-2")
LEASE = "/apis/coordination.k8s.io/v1/namespaces/kube-system/leases/kube-controller-manager"
LEASE_DURATION, RETRY_PERIOD = 15.0, 2.0  # mp-controllers' defaults
MPCTL = Path(sys.executable).parent / "mpctl"
# Inside an API server container: PostgreSQL as someone who may not, then as the API
# servers do (the pki one-shot's password file).
PG_PROBE = """
import psycopg
tries = (dict(user="miniplane", password="wrong", passfile="/nonexistent"),
         dict(user="postgres", password="", passfile="/nonexistent"),
         dict(user="miniplane", passfile="/etc/miniplane/postgres/pgpass"))
for kw in tries:
    try:
        psycopg.connect(host="postgres", dbname="miniplane", connect_timeout=5, **kw).close()
        print("ok")
    except psycopg.OperationalError as exc:
        print(str(exc).strip().splitlines()[-1])
"""


def distinct_ports(count: int) -> list[int]:
    found: list[int] = []
    while len(found) < count:
        if (port := free_port()) not in found:
            found.append(port)
    return found


def leading(ctrs: Containers, names: tuple[str, ...]) -> list[str]:
    """The controller containers whose /metrics say they lead."""
    out = []
    for name in names:
        got = ctrs.exec(name, "curl", "-fsS", "-m", "2", "http://127.0.0.1:10257/metrics",
                        check=False)
        if got.returncode == 0 and leader.says_it_leads(got.stdout):
            out.append(name)
    return out


def holder(cluster: Cluster) -> str:
    return str(cluster.api("GET", LEASE)["spec"].get("holderIdentity") or "")


def check_shared_state(cluster: Cluster, ports: list[int]) -> None:
    """Every API server answers on its published port; what one writes the others read."""
    for port in ports:
        cluster.api_port = port
        poll(cluster.ready, timeout=120, what=f"the API server on published port {port}")
    cluster.api_port = ports[1]
    made = cluster.api("POST", "/api/v1/namespaces/default/serviceaccounts", {
        "apiVersion": "v1", "kind": "ServiceAccount",
        "metadata": {"name": "written-via-2", "labels": {"k": "v"}}})
    for port in (ports[2], ports[0]):
        cluster.api_port = port
        got = cluster.api("GET", "/api/v1/namespaces/default/serviceaccounts/written-via-2")
        assert (got["metadata"]["uid"], got["metadata"]["labels"]) == \
            (made["metadata"]["uid"], {"k": "v"})
    cluster.api_port = None


def check_storage_private(ctrs: Containers) -> None:
    """PostgreSQL: the `postgres` user, no capabilities, the storage network alone, no
    published port, a password (SCRAM) for the API servers' role and nothing for
    anyone else; out of the nodes' (and so the pods') reach."""
    status = ctrs.status("postgres")
    assert status["Uid"].split()[0] == ctrs.exec("postgres", "id", "-u").stdout.strip()
    assert int(status["Uid"].split()[0]) != 0
    assert int(status["CapEff"], 16) == 0 and status["NoNewPrivs"] == "1", status
    assert set(ctrs.networks("postgres")) == {f"{ctrs.prefix}storage"}
    assert not ctrs.by_service["postgres"]["HostConfig"]["PortBindings"]
    out = ctrs.exec("apiserver-2", "python3", "-c", PG_PROBE).stdout.splitlines()
    assert 'password authentication failed for user "miniplane"' in out[0], out
    assert 'no pg_hba.conf entry' in out[1] and '"postgres"' in out[1], out
    assert out[2] == "ok", out
    for node in NODES:
        assert ctrs.exec(node, "getent", "hosts", "postgres", check=False).returncode != 0


def check_one_leader(cluster: Cluster) -> str:
    """Exactly one controller container leads, and the Lease names it."""
    ctrs = Containers(cluster)
    leaders = poll(lambda: leading(ctrs, CONTROLLERS), timeout=60,
                   what="a controller container to lead")
    assert len(leaders) == 1, leaders
    assert holder(cluster).startswith(f"{leaders[0]}_"), (holder(cluster), leaders)
    return leaders[0]


def check_refusals(cluster: Cluster, ports: list[int]) -> None:
    """The plain file's `pki` one-shot and SQLite API server refuse this deployment:
    alone (``run --no-deps``; the killed apiserver's address is free) and in a whole
    ``up``."""
    plain = (COMPOSE_FILE,)
    pki = cluster.compose_with(plain, "run", "--rm", "--no-deps", "-T", "pki", check=False)
    assert pki.returncode != 0, (pki.stdout, pki.stderr)
    assert "error: --storage sqlite: this deployment's API servers use postgresql" \
        in pki.stderr, pki.stderr
    api = cluster.compose_with(plain, "run", "--rm", "--no-deps", "-T", "apiserver",
                               check=False, timeout=120)
    assert api.returncode != 0, (api.stdout, api.stderr)
    assert "mp-apiserver: error: this deployment's API servers use postgresql storage" \
        in api.stderr, api.stderr

    # the whole plain file, as someone who forgot docker-compose.ha.yml: `up` fails at
    # the pki one-shot, no API server runs on SQLite, the other two serve on
    up = cluster.compose_with(plain, "up", "-d", "--no-build", check=False, timeout=300)
    assert up.returncode != 0, (up.stdout, up.stderr)
    logs = cluster.compose_with(plain, "logs", "--no-color", "pki").stdout
    assert "error: --storage sqlite: this deployment's API servers use postgresql" in logs, (
        logs, up.stderr)
    label = f"label=com.docker.compose.project={cluster.project}"
    for cid in cluster.engine.docker("ps", "-q", "--filter", label).stdout.split():
        top = cluster.engine.docker("top", cid, check=False).stdout
        assert not [line for line in top.splitlines()
                    if "bin/mp-apiserver" in line and "sqlite:" in line], top
    for port in ports[1:]:
        cluster.api_port = port
        assert cluster.ready(), port


def check_failover(cluster: Cluster, ports: list[int], old_leader: str) -> float:
    """SIGKILL the first API server and the leading controller; the rest carries on."""
    ctrs = Containers(cluster)
    standby, = (c for c in CONTROLLERS if c != old_leader)
    old_holder = holder(cluster)
    beats = {n: heartbeat(cluster, n) for n in NODES}
    killed_at = time.monotonic()
    cluster.engine.docker("kill", ctrs.by_service["apiserver"]["Id"],
                          ctrs.by_service[old_leader]["Id"])
    cluster.api_port = ports[1]
    # the dead server's name fails at once in the standby's container (dns_opt), so its
    # leader-election attempts move on to the next server within their deadline
    def lookup_fails_fast() -> bool:
        began = time.monotonic()
        if ctrs.exec(standby, "getent", "hosts", "apiserver", check=False).returncode == 0:
            return False  # not gone yet: docker kill returns before the container has
        assert time.monotonic() - began < 4, elapsed_since(began)
        return True

    poll(lookup_fails_fast, timeout=10, interval=0.2, what="the name apiserver to fail")
    poll(lambda: leading(ctrs, (standby,)) == [standby] and holder(cluster) != old_holder,
         timeout=LEASE_DURATION + 3 * RETRY_PERIOD + 10, interval=0.2,
         what=f"{standby} to lead")
    takeover = time.monotonic() - killed_at
    assert holder(cluster).startswith(f"{standby}_"), holder(cluster)
    assert takeover <= LEASE_DURATION + 2 * RETRY_PERIOD + 5, takeover
    for svc in ("apiserver", old_leader):
        state = json.loads(cluster.engine.docker("inspect", ctrs.by_service[svc]["Id"]).stdout)
        assert state[0]["State"]["Running"] is False, svc  # docker kill: no restart

    # the node agents heartbeat through another API server
    poll(lambda: all(heartbeat(cluster, n) != beats[n] for n in NODES), timeout=60,
         what="both node agents to heartbeat after the kills")
    # the admin's kubeconfig: its first server is gone, mpctl moves to the next
    out = run([str(MPCTL), "get", "nodes"],
              env={**{k: v for k, v in os.environ.items() if k != "MINIPLANE_SERVER"},
                   "KUBECONFIG": str(cluster.kubeconfig)}).stdout
    assert {line.split()[0]: line.split()[1] for line in out.splitlines()[1:]} == \
        dict.fromkeys(NODES, "Ready"), out

    # a pod made after the kills, behind a new Service: the new leader's EndpointSlice,
    # the agents' proxy rules and dnsd, all through their failed-over watches
    cluster.api("POST", "/api/v1/namespaces/default/pods", demo_pod("solo-1", {"app": "solo"}))
    svc = cluster.api("POST", "/api/v1/namespaces/default/services", {
        "apiVersion": "v1", "kind": "Service", "metadata": {"name": "solo"},
        "spec": {"selector": {"app": "solo"}, "ports": [{"port": 80, "targetPort": 8080}]}})
    ip = svc["spec"]["clusterIP"]
    poll(lambda: is_ready(cluster.pod("solo-1")), timeout=90, what="solo-1 Ready")
    poll(lambda: cluster.in_pod("client", "curl", "-s", "-m", "3", f"http://{ip}/",
                                check=False).stdout.startswith("solo-1 "),
         timeout=60, what="solo's ClusterIP to answer from the client pod")
    poll(lambda: cluster.in_pod("client", "curl", "-s", "-m", "3", "solo",
                                check=False).stdout.startswith("solo-1 "),
         timeout=60, what="solo by name from the client pod")
    return takeover


@pytest.mark.parametrize("flavor", os.environ.get("MINIPLANE_HA_COMPOSE", "v2").split(","))
def test_compose_ha_cluster(flavor: str, engine: Engine, image: str, context: Path,
                            tmp_path: Path) -> None:
    argv = compose_command(flavor, engine.env)
    other_flavor = "v1" if flavor == "v2" else "v2"
    try:
        other: list[str] | None = compose_command(other_flavor, engine.env)
    except pytest.skip.Exception:
        other = None
    ports = distinct_ports(3)
    cluster = Cluster(engine, argv, f"mpctha{flavor}{os.getpid()}",
                      write_override(tmp_path / "override.yml", context), ports[0],
                      tmp_path / "admin.kubeconfig", files=FILES,
                      variables={"MINIPLANE_PORT_2": str(ports[1]),
                                 "MINIPLANE_PORT_3": str(ports[2])})
    start = time.monotonic()
    before = host_snapshot(f"mp-{CLUSTER}-")
    try:
        flavors = [cluster, *([] if other is None else [Cluster(
            engine, other, cluster.project, cluster.override, ports[0], cluster.kubeconfig,
            files=FILES, variables=cluster.variables)])]
        for each in flavors:  # both read the merged files alike
            services = each.compose("config", "--services").stdout.split()
            assert set(services) >= {*APISERVERS, *CONTROLLERS, "postgres"}, services
        cluster.compose("build", "apiserver", timeout=900)
        cluster.compose("up", "-d", "--no-build", timeout=400)
        print(f"[ha {flavor}] up after {elapsed_since(start)}", flush=True)
        cluster.fetch_kubeconfig()
        assert cluster.config is not None
        assert cluster.config.servers == tuple(f"https://127.0.0.1:{p}" for p in ports)
        node_config = read_kubeconfig_text(cluster.compose(
            "exec", "-T", "node-1", "cat", "/etc/miniplane/credentials/kubeconfig").stdout,
            tmp_path / "node-1.kubeconfig")
        assert node_config == tuple(f"https://{a}:6443" for a in APISERVERS)
        check_shared_state(cluster, ports)
        poll(lambda: all(is_ready(cluster.api("GET", f"/api/v1/nodes/{n}")) for n in NODES),
             timeout=120, what="both nodes Ready")
        poll(lambda: is_ready(cluster.pod("client")), timeout=180, what="the client pod Ready")
        old_leader = check_one_leader(cluster)
        check_storage_private(Containers(cluster))
        print(f"[ha {flavor}] cluster working after {elapsed_since(start)}; {old_leader} leads",
              flush=True)
        takeover = check_failover(cluster, ports, old_leader)
        print(f"\n[ha {flavor}] after docker kill of apiserver and {old_leader}: the standby led "
              f"{takeover:.1f} s later (lease {LEASE_DURATION:.0f} s, retry "
              f"{RETRY_PERIOD:.0f} s); checked after {elapsed_since(start)}", flush=True)
        check_refusals(cluster, ports)
    except BaseException:
        print(cluster.diagnostics())
        logs = cluster.compose("logs", "--no-color", "--tail", "60", *CONTROLLERS,
                               check=False, timeout=60)
        print(f"{logs.stdout[-12000:]}{logs.stderr[-2000:]}")
        cluster.compose("down", "-v", check=False, timeout=300)
        raise
    cluster.compose("down", "-v", timeout=300)
    print(f"[ha {flavor}] down after {elapsed_since(start)}", flush=True)
    check_project_gone(cluster)
    assert left_behind(before, host_snapshot(f"mp-{CLUSTER}-")) == {}


def read_kubeconfig_text(text: str, path: Path) -> tuple[str, ...]:
    """The servers a component's kubeconfig lists (its ``server``, then fallbacks)."""
    path.write_text(text)
    path.chmod(0o600)
    return read_kubeconfig(path).servers
