"""The pure parts of ``mpctl cluster`` and of ``mpctl exec``/``logs``."""

from __future__ import annotations

import dataclasses
import io
import ipaddress
from pathlib import Path

import pytest

from mpctl import podio
from mpctl.cluster import plan, state
from mpctl.cluster.commands import next_steps
from mpctl.cluster.progress import Progress
from mpctl.main import CliError, parse_condition


def spec(nodes: int = 2, name: str = "mp") -> plan.ClusterSpec:
    ports = {"controllers": 1001, "dnsd": 1002} | {f"node-{i}": 2000 + i
                                                   for i in range(1, nodes + 1)}
    return plan.ClusterSpec(name=name, nodes=nodes, state_dir=Path("/tmp/x"), api_port=6443,
                            dns_port=5353, metrics_ports=ports)


def test_nodes_get_consecutive_addresses_on_the_node_network() -> None:
    nodes = spec(3).node_plans()
    assert [(n.name, n.namespace, n.ip, n.veth) for n in nodes] == [
        ("node-1", "mp-mp-node-1", "10.250.0.2", "n1"),
        ("node-2", "mp-mp-node-2", "10.250.0.3", "n2"),
        ("node-3", "mp-mp-node-3", "10.250.0.4", "n3")]
    assert all(ipaddress.ip_address(n.ip) in plan.NODE_NETWORK for n in spec(100).node_plans())


def test_network_commands_never_touch_the_root_namespace() -> None:
    """Every command adds a namespace of the cluster or runs inside one (``ip -n``)."""
    s = spec(2)
    for cmd in plan.network_commands(s):
        assert cmd[0] == "ip"
        if cmd[1:3] == ["netns", "add"]:
            assert plan.owns_namespace("mp", cmd[3])
        else:
            assert cmd[1] == "-n" and plan.owns_namespace("mp", cmd[2]), cmd
        if "veth" in cmd:  # created in the fabric, peer straight into the node
            assert cmd[2] == s.fabric and cmd[-2:] == ["netns", cmd[-1]]
            assert plan.owns_namespace("mp", cmd[-1])


def test_fabric_routes_send_pod_cidrs_to_their_node() -> None:
    cmds = plan.fabric_route_commands(spec(2), {"node-2": "10.244.1.0/24",
                                                "node-1": "10.244.0.0/24",
                                                "elsewhere": "10.244.9.0/24"})
    assert cmds == [
        ["ip", "-n", "mp-mp-fabric", "route", "replace", "10.244.0.0/24", "via", "10.250.0.2"],
        ["ip", "-n", "mp-mp-fabric", "route", "replace", "10.244.1.0/24", "via", "10.250.0.3"]]


def test_the_lb_pool_is_routed_from_the_fabric_to_every_node() -> None:
    """The pool's CIDRs go to the nodes, inside the fabric only (multipath), and the
    controllers hand its addresses out; no pool, no routes and no flag."""
    s = spec(2)
    assert plan.lb_route_commands(s) == [
        ["ip", "-n", "mp-mp-fabric", "route", "replace", cidr, "nexthop", "via", "10.250.0.2",
         "nexthop", "via", "10.250.0.3"]
        for cidr in ("10.250.0.200/29", "10.250.0.208/28", "10.250.0.224/28",
                     "10.250.0.240/29", "10.250.0.248/31", "10.250.0.250/32")]
    assert plan.network_commands(s)[-len(plan.lb_route_commands(s)):] == \
        plan.lb_route_commands(s)
    controllers = next(c for c in plan.component_commands(s, Path("/bin"))
                       if c.name == "controllers")
    assert controllers.argv[-2:] == ["--lb-pool", plan.DEFAULT_LB_POOL]
    none = dataclasses.replace(s, lb_pool="")
    assert plan.lb_route_commands(none) == []
    assert "--lb-pool" not in next(c for c in plan.component_commands(none, Path("/bin"))
                                   if c.name == "controllers").argv


@pytest.mark.parametrize(("text", "message"), [
    ("10.250.1.1-10.250.1.9", "outside the fabric's 10.250.0.0/24"),
    ("10.250.0.250-10.250.1.2", "outside the fabric's"),
    ("10.250.0.3", "10.250.0.3 is the fabric's, a node's"),  # node-2 of 2
    ("10.250.0.1", "is the fabric's"),
    ("10.250.0.240/28", "10.250.0.255 is the fabric's"),
    ("10.250.0.9-10.250.0.2", "the range ends before it starts"),
])
def test_bad_lb_pools_are_refused(text: str, message: str) -> None:
    with pytest.raises(plan.SpecError, match=f"--lb-pool: .*{message}"):
        plan.check_lb_pool(text, 2)


def test_lb_pool_none_and_good_pools() -> None:
    assert plan.check_lb_pool("none", 2) == plan.check_lb_pool("", 2) == ""
    assert plan.check_lb_pool("10.250.0.4-10.250.0.9", 2) == "10.250.0.4-10.250.0.9"
    assert plan.check_lb_pool(plan.DEFAULT_LB_POOL, plan.MAX_NODES) == plan.DEFAULT_LB_POOL


@pytest.mark.parametrize(("cluster", "namespace", "owned"), [
    ("mp", "mp-mp-fabric", True),
    ("mp", "mp-mp-node-12", True),
    ("mp", "mp-mp-pod-0123abcd", True),
    ("mp", "mp-mp-x-fabric", False),  # cluster "mp-x", not "mp"
    ("mp", "mp-mp-node-1-extra", False),
    ("mp", "mp-mp-pod-0123abc", False),
    ("mp", "mp-other-fabric", False),
    ("a.b", "mp-axb-fabric", False),  # the name is matched literally
])
def test_a_cluster_owns_exactly_its_namespaces(cluster: str, namespace: str,
                                               owned: bool) -> None:
    assert plan.owns_namespace(cluster, namespace) is owned


@pytest.mark.parametrize("name", ["mp", "a", "dev-2", "x" * 20])
def test_good_names(name: str) -> None:
    assert plan.check_name(name) == name


@pytest.mark.parametrize("name", ["", "-a", "a-", "A", "a_b", "a.b", "x" * 21, "a/b"])
def test_bad_names(name: str) -> None:
    with pytest.raises(plan.SpecError, match="--name"):
        plan.check_name(name)


@pytest.mark.parametrize("count", [0, -1, plan.MAX_NODES + 1])
def test_bad_node_counts(count: int) -> None:
    with pytest.raises(plan.SpecError, match="--nodes"):
        plan.check_nodes(count)


def test_component_commands_wire_the_agents_to_their_namespaces() -> None:
    s = spec(2)
    cmds = {c.name: c for c in plan.component_commands(s, Path("/venv/bin"))}
    assert list(cmds) == ["apiserver", "controllers", "dnsd", "node-1", "node-2"]
    agent = cmds["node-2"].argv
    assert agent[0] == "/venv/bin/mp-nodeagent"
    flags = dict(zip(agent[1::2], agent[2::2], strict=False))
    assert flags["--netns"] == "mp-mp-node-2" and flags["--cluster-name"] == "mp"
    assert flags["--metrics-listen"] == "127.0.0.1:2002"
    dnsd = cmds["dnsd"].argv
    assert "netns:mp-mp-fabric:10.250.0.1:53" in dnsd and "127.0.0.1:5353" in dnsd
    assert cmds["node-1"].log == Path("/tmp/x/logs/node-1.log")


def test_each_component_reaches_the_api_server_with_its_own_kubeconfig() -> None:
    cmds = {c.name: c.argv for c in plan.component_commands(spec(2), Path("/venv/bin"))}
    assert {name: argv[argv.index("--kubeconfig") + 1]
            for name, argv in cmds.items() if "--kubeconfig" in argv} == {
        "controllers": "/tmp/x/pki/controllers/kubeconfig",
        "dnsd": "/tmp/x/pki/dnsd/kubeconfig",
        "node-1": "/tmp/x/pki/node-1/kubeconfig",
        "node-2": "/tmp/x/pki/node-2/kubeconfig"}
    assert not any("--server" in argv for argv in cmds.values())
    assert all("--metrics-listen" not in argv or
               argv[argv.index("--metrics-listen") + 1].startswith("127.0.0.1:")
               for argv in cmds.values())


def test_the_api_server_serves_tls_from_the_plans_files_on_loopback_and_the_fabric() -> None:
    api = plan.component_commands(spec(2), Path("/venv/bin"))[0].argv
    assert [api[i + 1] for i, a in enumerate(api) if a == "--listen"] == [
        "127.0.0.1:6443", "netns:mp-mp-fabric:10.250.0.1:6443"]
    flags = dict(zip(api[1::2], api[2::2], strict=False))
    assert flags["--advertise-address"] == "10.250.0.1"
    assert flags["--pod-security-default"] == "baseline"
    assert {k: v for k, v in flags.items() if k.endswith(("-file", "-dir"))} == {
        "--cert-dir": "/tmp/x/pki",
        "--client-ca-file": "/tmp/x/pki/ca.crt",
        "--tls-cert-file": "/tmp/x/pki/apiserver.crt",
        "--tls-private-key-file": "/tmp/x/pki/apiserver.key",
        "--service-account-signing-key-file": "/tmp/x/pki/sa.key"}
    # pods reach it through the `kubernetes` Service at an address the fabric already has,
    # on the loopback listener's port (the EndpointSlice names one port for both)
    assert plan.API_FABRIC_IP == plan.FABRIC_IP
    other = plan.ClusterSpec(name="b", nodes=1, state_dir=Path("/s"), api_port=40001,
                             dns_port=1, metrics_ports={"controllers": 2, "dnsd": 3,
                                                        "node-1": 4})
    api = plan.component_commands(other, Path("/venv/bin"))[0].argv
    assert [api[i + 1] for i, a in enumerate(api) if a == "--listen"] == [
        "127.0.0.1:40001", "netns:mp-b-fabric:10.250.0.1:40001"]


def test_pki_names_each_component_as_kubernetes_does() -> None:
    pki = spec(2).pki()
    assert [(c.name, c.user, c.groups) for c in pki.credentials] == [
        ("admin", "kubernetes-admin", ("system:masters",)),
        ("controllers", "system:kube-controller-manager", ()),
        ("dnsd", "system:miniplane-dnsd", ()),
        ("node-1", "system:node:node-1", ("system:nodes",)),
        ("node-2", "system:node:node-2", ("system:nodes",))]
    # the admin credential is the user's kubeconfig; every client uses the same server
    assert pki.credential("admin").kubeconfig == Path("/tmp/x/kubeconfig")
    assert {c.server for c in pki.credentials} == {"https://127.0.0.1:6443"}
    assert pki.cluster_name == "miniplane-mp"
    assert (pki.ca_cert, pki.ca_key, pki.serving_cert, pki.serving_key, pki.sa_key) == tuple(
        Path("/tmp/x/pki") / f for f in ("ca.crt", "ca.key", "apiserver.crt",
                                         "apiserver.key", "sa.key"))


def test_serving_certificate_names_loopback_the_fabric_and_the_kubernetes_service() -> None:
    pki = spec(1).pki()
    assert pki.serving_ips == ("127.0.0.1", "10.96.0.1", "10.250.0.1")
    assert pki.serving_names == ("localhost", "kubernetes", "kubernetes.default",
                                 "kubernetes.default.svc",
                                 "kubernetes.default.svc.cluster.local")


def test_pki_for_another_deployment_names_its_hosts_and_admin_server() -> None:
    pki = plan.pki_plan(Path("/p"), server="https://apiserver:6443",
                        admin_server="https://127.0.0.1:7000", nodes=["node-1", "node-1"],
                        apiserver_names=["apiserver"], apiserver_ips=["10.245.1.6"])
    assert pki.credential("admin").kubeconfig == Path("/p/admin/kubeconfig")
    assert pki.credential("admin").server == "https://127.0.0.1:7000"
    assert pki.credential("node-1").server == "https://apiserver:6443"
    assert [c.name for c in pki.credentials] == ["admin", "controllers", "dnsd", "node-1"]
    assert "apiserver" in pki.serving_names and "10.245.1.6" in pki.serving_ips


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"nodes": ["../x"]}, "--node: '../x': a lowercase RFC 1123 subdomain"),
    ({"nodes": ["Node-1"]}, "--node: 'Node-1'"),
    ({"nodes": ["dnsd"]}, "--node: 'dnsd' is the name of another credential"),
    ({"nodes": [], "apiserver_ips": ["10.0.0.300"]}, "--apiserver-ip: '10.0.0.300'"),
    ({"nodes": [], "apiserver_names": ["a_b"]}, "--apiserver-name: 'a_b'"),
])
def test_pki_refuses_names_that_would_escape_or_clash(kwargs: dict, message: str) -> None:
    with pytest.raises(plan.SpecError) as err:
        plan.pki_plan(Path("/p"), server="https://x", **kwargs)
    assert str(err.value).startswith(message)


def test_kube_dns_points_the_dns_cluster_ip_at_dnsd_on_the_fabric() -> None:
    (k1, svc), (k2, eps) = plan.kube_dns_objects()
    assert (k1.kind, k2.kind) == (svc["kind"], eps["kind"]) == ("Service", "EndpointSlice")
    assert svc["spec"]["clusterIP"] == "10.96.0.10" and "selector" not in svc["spec"]
    assert {(p["port"], p["protocol"]) for p in svc["spec"]["ports"]} == {(53, "UDP"),
                                                                         (53, "TCP")}
    assert eps["metadata"]["labels"]["kubernetes.io/service-name"] == "kube-dns"
    assert eps["endpoints"][0]["addresses"] == [plan.FABRIC_IP]
    assert {p["name"] for p in eps["ports"]} == {p["name"] for p in svc["spec"]["ports"]}


def test_state_round_trips_through_cluster_json(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(state, "REGISTRY", tmp_path / "registry")
    st = state.ClusterState(name="mp", state_dir=str(tmp_path), server="http://x:1",
                            dns="127.0.0.1:5353", fabric="mp-mp-fabric",
                            dns_fabric_address="10.250.0.1", up_pid=7, up_start="99",
                            nodes=[state.NodeRecord("node-1", "mp-mp-node-1", "10.250.0.2",
                                                    "/s/node-1")],
                            processes=[state.ProcessRecord("dnsd", 12, "345", "/l/dnsd.log",
                                                           "127.0.0.1:9")])
    state.save(st)
    text = (tmp_path / "cluster.json").read_text()
    assert '"dnsFabricAddress": "10.250.0.1"' in text and '"stateDir"' in text
    assert state.load(tmp_path) == st
    assert state.load(tmp_path).node("node-1").state_dir == "/s/node-1"
    assert state.registered_dir("mp") == tmp_path.resolve()
    state.remove(st)
    assert state.load(tmp_path) is None
    assert state.registered_dir("mp") is None
    (tmp_path / "cluster.json").write_text("[]")
    with pytest.raises(ValueError, match="not a cluster state file"):
        state.load(tmp_path)


def pod(containers: list[str], uid: str = "0123abcd-ef01-2345-6789-abcdefabcdef") -> dict:
    return {"metadata": {"name": "p", "uid": uid},
            "spec": {"containers": [{"name": c} for c in containers], "nodeName": "node-1"}}


def test_container_name_follows_kubectl() -> None:
    assert podio.container_name(pod(["a"]), None) == "a"
    assert podio.container_name(pod(["a", "b"]), "b") == "b"
    with pytest.raises(podio.PodIOError, match=r"choose one of: \[a b\]"):
        podio.container_name(pod(["a", "b"]), None)
    with pytest.raises(podio.PodIOError, match="container c is not valid for pod p"):
        podio.container_name(pod(["a"]), "c")


def test_container_name_takes_the_default_container_annotation() -> None:
    p = pod(["a", "b"])
    p["metadata"]["annotations"] = {"kubectl.kubernetes.io/default-container": "b"}
    assert podio.container_name(p, None) == "b"


def test_log_params_are_kubectls() -> None:
    assert podio.log_params("c", follow=False, tail=-1) == {"container": "c"}
    assert podio.log_params("c", follow=True, tail=0, timestamps=True, since_seconds=5,
                            previous=True, limit_bytes=10) == {
        "container": "c", "follow": "true", "tailLines": "0", "timestamps": "true",
        "sinceSeconds": "5", "previous": "true", "limitBytes": "10"}


def test_exec_url_is_a_websocket_to_the_pods_exec() -> None:
    url = podio.exec_url("https://127.0.0.1:6443/", "ns", "p", container="c",
                         command=["sh", "-c", "echo a b"], stdin=True, tty=False)
    assert url == ("wss://127.0.0.1:6443/api/v1/namespaces/ns/pods/p/exec?container=c"
                   "&command=sh&command=-c&command=echo+a+b&stdin=true&stdout=true"
                   "&stderr=true")
    tty = podio.exec_url("http://h:1", "ns", "p", container="c", command=["sh"], stdin=True,
                         tty=True)
    assert tty.startswith("ws://h:1/") and "tty=true" in tty and "stderr" not in tty


@pytest.mark.parametrize(("text", "parsed"), [("condition=Ready", ("Ready", "true")),
                                              ("condition=Ready=False", ("Ready", "false"))])
def test_wait_conditions(text: str, parsed: tuple[str, str]) -> None:
    assert parse_condition(text) == parsed


@pytest.mark.parametrize("text", ["delete", "condition=", "jsonpath={.x}"])
def test_bad_wait_conditions(text: str) -> None:
    with pytest.raises(CliError, match="unrecognized condition"):
        parse_condition(text)


def test_progress_reports_each_step_once_and_failures() -> None:
    stream = io.StringIO()
    p = Progress(stream=stream)
    with p.step("first"):
        pass
    with pytest.raises(RuntimeError), p.step("second"):
        raise RuntimeError("boom")
    lines = stream.getvalue().splitlines()
    assert [line.rsplit(" (", 1)[0] for line in lines] == [" ✓ first", " ✗ second"]
    assert all(line.endswith("s)") for line in lines)
    quiet = io.StringIO()
    with Progress(quiet=True, stream=quiet).step("x"):
        pass
    assert quiet.getvalue() == ""


def test_postgresql_storage_starts_a_private_server_first_and_points_the_api_server_at_it(
        ) -> None:
    s = dataclasses.replace(spec(1), storage="postgresql")
    cmds = plan.component_commands(s, Path("/venv/bin"))
    db, api = cmds[0], cmds[1]
    assert db.name == "postgres" and db.as_postgres == Path("/tmp/x/postgres")
    assert db.argv[0].endswith("/bin/postgres")
    # a socket in its own directory, no TCP listener
    assert db.argv[db.argv.index("-k") + 1] == "/tmp/x/postgres"
    assert db.argv[db.argv.index("-h") + 1] == ""
    assert api.name == "apiserver"
    assert api.argv[api.argv.index("--storage-url") + 1] == \
        "postgresql+psycopg://postgres@/miniplane?host=/tmp/x/postgres&port=5432"
    # stopped last, after the API server (down stops the control plane in reverse)
    assert plan.COMPONENTS.index("postgres") < plan.COMPONENTS.index("apiserver")
    sqlite = plan.component_commands(spec(1), Path("/venv/bin"))
    assert sqlite[0].name == "apiserver" and all(c.as_postgres is None for c in sqlite)
    assert sqlite[0].argv[sqlite[0].argv.index("--storage-url") + 1] == "sqlite:////tmp/x/state.db"


def test_bad_storage_is_one_line() -> None:
    with pytest.raises(plan.SpecError, match=r"^--storage: 'mysql' is not one of sqlite, "
                                             r"postgresql$"):
        plan.check_storage("mysql")


def test_several_api_servers_share_the_database_and_every_client_gets_the_list() -> None:
    s = dataclasses.replace(spec(1), storage="postgresql", more_api_ports=(7002, 7003),
                            metrics_ports={**spec(1).metrics_ports, "controllers-2": 1003})
    cmds = {c.name: c.argv for c in plan.component_commands(s, Path("/venv/bin"))}
    assert list(cmds) == ["postgres", "apiserver", "apiserver-2", "apiserver-3",
                          "controllers", "controllers-2", "dnsd", "node-1"]
    servers = "https://127.0.0.1:6443,https://127.0.0.1:7002,https://127.0.0.1:7003"
    for port, name in zip((6443, 7002, 7003), ("apiserver", "apiserver-2", "apiserver-3"),
                          strict=True):
        argv = cmds[name]
        assert argv[argv.index("--listen") + 1] == f"127.0.0.1:{port}"
        assert argv[argv.index("--storage-url") + 1] == s.storage_url()
    for name in ("controllers", "controllers-2", "dnsd", "node-1"):
        assert cmds[name][cmds[name].index("--server") + 1] == servers, name
    assert cmds["controllers-2"][cmds["controllers-2"].index("--metrics-listen") + 1] == \
        "127.0.0.1:1003"
    # one API server: no --server flag, the kubeconfig's server is the one
    assert all("--server" not in argv for argv in
               (c.argv for c in plan.component_commands(spec(1), Path("/venv/bin"))))


@pytest.mark.parametrize(("name", "control"), [
    ("apiserver", True), ("apiserver-3", True), ("controllers-2", True), ("postgres", True),
    ("dnsd", True), ("node-1", False), ("node-12", False)])
def test_control_plane_processes_are_told_from_agents(name: str, control: bool) -> None:
    assert plan.is_control_plane(name) is control


def test_several_api_servers_need_postgresql() -> None:
    assert plan.check_apiservers(3, "postgresql") == 3
    with pytest.raises(plan.SpecError, match=r"^--apiservers 2 needs --storage postgresql"):
        plan.check_apiservers(2, "sqlite")
    with pytest.raises(plan.SpecError, match=r"^--apiservers: 6 is out of range \(1-5\)$"):
        plan.check_apiservers(6, "postgresql")


# -- where dnsd forwards names outside the cluster (issue 18) --------------------------


def test_dnsd_forwards_to_the_hosts_resolv_conf_by_default(tmp_path: Path) -> None:
    host = tmp_path / "resolv.conf"
    host.write_text("search example.internal\nnameserver 192.0.2.53\n")
    assert plan.check_dns_upstream(None, host_resolv_conf=str(host)) == str(host)
    # a host without a nameserver (or without the file) still gets a cluster
    host.write_text("search example.internal\n")
    assert plan.check_dns_upstream(None, host_resolv_conf=str(host)) == "none"
    assert plan.check_dns_upstream(None, host_resolv_conf=str(tmp_path / "gone")) == "none"

    def dnsd(upstream: str) -> list[str]:
        cmds = {c.name: c for c in plan.component_commands(
            dataclasses.replace(spec(), dns_upstream=upstream), Path("/bin"))}
        return cmds["dnsd"].argv

    assert dnsd(str(host))[-2:] == ["--upstream-resolv-conf", str(host)]
    assert dnsd("127.0.0.9:53")[-2:] == ["--upstream", "127.0.0.9:53"]
    assert not any(a.startswith("--upstream") for a in dnsd("none"))
    assert not any(a.startswith("--upstream") for a in dnsd(spec().dns_upstream))


def test_dns_upstream_choices(tmp_path: Path) -> None:
    conf = tmp_path / "stub.conf"
    conf.write_text("nameserver 127.0.0.9\n")
    assert plan.check_dns_upstream("none") == "none"
    assert plan.check_dns_upstream(str(conf)) == str(conf)
    assert plan.check_dns_upstream("127.0.0.9:5300") == "127.0.0.9:5300"
    assert plan.check_dns_upstream("[::1]:53") == "[::1]:53"


@pytest.mark.parametrize(("value", "message"), [
    ("dns.example.com:53", "'dns.example.com' is not an IP address"),
    ("127.0.0.1", "is not HOST:PORT"),
    ("127.0.0.1:0", "from 1 to 65535"),
    ("/nonexistent/resolv.conf", "--dns-upstream /nonexistent/resolv.conf: No such file"),
])
def test_bad_dns_upstream_is_one_line(value: str, message: str) -> None:
    with pytest.raises(plan.SpecError, match=message) as info:
        plan.check_dns_upstream(value)
    assert "\n" not in str(info.value)


def test_a_resolv_conf_without_nameservers_is_refused(tmp_path: Path) -> None:
    conf = tmp_path / "empty.conf"
    conf.write_text("nameserver dns.example.com\n")
    with pytest.raises(plan.SpecError, match="no nameserver line with an IP address"):
        plan.check_dns_upstream(str(conf))


def test_next_steps_say_where_load_balancers_answer() -> None:
    st = state.ClusterState(name="mp", state_dir="/tmp/x", server="https://127.0.0.1:6443",
                            dns="127.0.0.1:5353", fabric="mp-mp-fabric",
                            dns_fabric_address="10.250.0.1", lb_pool=plan.DEFAULT_LB_POOL)
    text = next_steps(st, 3.0, detached=True)
    assert "ip netns exec mp-mp-fabric curl -s http://<EXTERNAL-IP>/" in text
    assert plan.DEFAULT_LB_POOL in text
    assert state.ClusterState.from_json(st.to_json()).lb_pool == plan.DEFAULT_LB_POOL
    assert "EXTERNAL-IP" not in next_steps(
        state.ClusterState(**{**st.__dict__, "lb_pool": ""}), 3.0, detached=True)
