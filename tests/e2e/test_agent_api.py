"""End to end: the node agent's API behind the API server, driven by the real kubectl.

One 2-node ``mpctl cluster up`` for the module. ``kubectl logs`` (``--tail``,
``--timestamps``, ``-f``, ``--previous``), ``kubectl exec`` (exit codes, ``-i``,
``-it`` on a pty this test drives), ``kubectl run --rm -it`` (attach, then the pod
is deleted), ``mpctl logs``/``exec`` on the same path, RBAC on the subresources
(view may read logs, not exec or attach), and the agent's own door: only the API
server's client certificate opens it. Seen through exec: a pod's own resolv.conf
(dnsPolicy, dnsConfig), /etc/hosts (FQDN, hostAliases) and hostname, and a
hostNetwork pod on its node's network.
"""

from __future__ import annotations

import base64
import json
import os
import re
import secrets
import socket
import ssl
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from apimachinery.kinds import EVENT, NAMESPACE, NODE, POD
from apimachinery.kubeconfig import kubeconfig
from client.errors import Forbidden, NotFound
from client.http import tls_verify
from componentbase import pki
from nodeagent.pods.status import pod_netns
from tests.conftest import BIN, USER_KUBECTL, wait_until
from tests.e2e.test_local_cluster import LocalCluster, namespaces_of, running_cluster
from tests.netns import have_root_tools
from tests.terminal import drive

pytestmark = [pytest.mark.root,
              pytest.mark.skipif(have_root_tools() is not None,
                                 reason=have_root_tools() or "")]

KUBECTL = str(USER_KUBECTL)
RFC3339 = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z ")
# prints "line N" to stdout and "err N" to stderr every 0.2 s
TALKER = ("i=0; while true; do echo line $i; echo err $i >&2; i=$((i+1)); "
          "sleep 0.2; done")


@dataclass
class Cluster:
    c: LocalCluster
    kubeconfigs: dict[str, Path] = field(default_factory=dict)

    def kubectl(self, *args: str, user: str = "admin", stdin: str | None = None,
                timeout: float = 60) -> subprocess.CompletedProcess[str]:
        return subprocess.run([KUBECTL, f"--kubeconfig={self.kubeconfig(user)}", *args],
                              capture_output=True, text=True, input=stdin, timeout=timeout)

    def kubeconfig(self, user: str) -> Path:
        """``admin`` is cluster up's; any other name a new certificate for that user."""
        if user == "admin":
            return self.c.state_dir / "kubeconfig"
        if user not in self.kubeconfigs:
            ca = pki.load(self.c.state_dir / "pki" / "ca.crt", self.c.state_dir / "pki" / "ca.key")
            pair = pki.issue(ca, pki.client_identity(user))
            server = yaml.safe_load((self.c.state_dir / "kubeconfig").read_text())[
                "clusters"][0]["cluster"]["server"]
            path = self.c.state_dir / f"{user}.kubeconfig"
            path.write_text(yaml.safe_dump(kubeconfig("test", server, ca.cert_pem,
                                                      cert_pem=pair.cert_pem,
                                                      key_pem=pair.key_pem)))
            self.kubeconfigs[user] = path
        return self.kubeconfigs[user]

    def run_pod(self, name: str, *containers: dict[str, Any], **spec: Any) -> None:
        body = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name},
                "spec": {"containers": list(containers), **spec}}
        self.c.client.create(POD, body, "default")
        wait_until(lambda: self.c.client.get(POD, name, "default")["status"].get("phase")
                   == "Running", timeout=40, what=f"pod {name} to run")


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    with running_cluster(tmp_path_factory.mktemp("agentapi"), prefix="g") as c:
        cl = Cluster(c)
        cl.run_pod("talker", {"name": "c", "image": "busybox", "command": ["sh", "-c", TALKER]})
        yield cl


# --------------------------------------------------------------------------- logs


def test_logs_tail_and_timestamps(cluster: Cluster) -> None:
    wait_until(lambda: "line 3" in cluster.kubectl("logs", "talker").stdout, timeout=20,
               what="the talker's output")
    tail = cluster.kubectl("logs", "talker", "--tail=3")
    assert tail.returncode == 0, tail.stderr
    lines = tail.stdout.splitlines()
    assert len(lines) == 3 and all(re.fullmatch(r"(line|err) \d+", x) for x in lines), lines
    stamped = cluster.kubectl("logs", "talker", "--tail=2", "--timestamps").stdout.splitlines()
    assert len(stamped) == 2 and all(RFC3339.match(x) for x in stamped), stamped
    recent = cluster.kubectl("logs", "talker", "--since=1s").stdout.splitlines()
    everything = cluster.kubectl("logs", "talker").stdout.splitlines()
    assert 0 < len(recent) < len(everything)
    limited = cluster.kubectl("logs", "talker", "--limit-bytes=5")
    assert limited.stdout == "line "


def test_logs_follow_prints_new_lines_as_they_come(cluster: Cluster) -> None:
    proc = subprocess.Popen([KUBECTL, f"--kubeconfig={cluster.kubeconfig('admin')}", "logs",
                             "-f", "--tail=1", "talker"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        first = proc.stdout.readline()
        first_n = int(first.split()[1])
        # lines printed after kubectl started reading: the stream is live
        for line in iter(proc.stdout.readline, ""):
            if line.startswith("line ") and int(line.split()[1]) >= first_n + 3:
                break
        else:
            raise AssertionError(f"the followed log ended: {proc.stderr.read()}")  # type: ignore[union-attr]
    finally:
        proc.kill()
        proc.wait()


def test_logs_follow_ends_when_the_container_does(cluster: Cluster) -> None:
    cluster.run_pod("brief", {"name": "c", "image": "busybox", "command": [
        "sh", "-c", "echo first; sleep 2; echo last"]}, restartPolicy="Never")
    followed = cluster.kubectl("logs", "-f", "brief", timeout=30)
    assert followed.returncode == 0, followed.stderr
    assert followed.stdout == "first\nlast\n"


def test_logs_of_the_previous_instance(cluster: Cluster) -> None:
    cluster.c.client.create(POD, {"apiVersion": "v1", "kind": "Pod",
                                  "metadata": {"name": "crasher"},
                                  "spec": {"containers": [{
                                      "name": "c", "image": "busybox", "command": [
                                          "sh", "-c", "echo run-$(cat /proc/uptime); exit 1"]}]}},
                            "default")
    first = wait_until(lambda: cluster.kubectl("logs", "crasher").stdout, timeout=30,
                       what="crasher's first output")
    assert first.startswith("run-") and first.count("\n") == 1
    # until the next instance starts (after the restart back-off) the last one is current
    assert "previous terminated container" in cluster.kubectl("logs", "crasher",
                                                              "--previous").stderr
    previous = wait_until(lambda: (r := cluster.kubectl("logs", "crasher", "--previous"))
                          .returncode == 0 and r, timeout=60, interval=1.0,
                          what="a second instance of crasher")
    assert previous.stdout == first


def test_logs_errors_as_kubernetes_words_them(cluster: Cluster) -> None:
    cluster.run_pod("pair", {"name": "a", "image": "busybox", "command": ["sleep", "3600"]},
                    {"name": "b", "image": "busybox", "command": ["sleep", "3600"]})
    # kubectl picks the first container itself ("Defaulted container"); the API does not
    two = cluster.kubectl("get", "--raw", "/api/v1/namespaces/default/pods/pair/log")
    assert two.returncode == 1
    assert "a container name must be specified for pod pair, choose one of: [a b]" \
        in two.stderr
    wrong = cluster.kubectl("logs", "pair", "-c", "zz")
    assert "container zz is not valid for pod pair" in wrong.stderr
    # never scheduled: no node matches its selector
    cluster.c.client.create(POD, {"apiVersion": "v1", "kind": "Pod",
                                  "metadata": {"name": "nowhere"},
                                  "spec": {"nodeSelector": {"no-such": "label"},
                                           "containers": [{"name": "c", "image": "busybox",
                                                           "command": ["true"]}]}}, "default")
    nowhere = cluster.kubectl("logs", "nowhere")
    assert nowhere.returncode == 1
    assert "Error from server (BadRequest): pod nowhere does not have a host assigned" \
        in nowhere.stderr
    bad = cluster.kubectl("get", "--raw",
                          "/api/v1/namespaces/default/pods/talker/log?tailLines=-1")
    assert "tailLines: Invalid value: -1: must be greater than or equal to 0" in bad.stderr


# --------------------------------------------------------------------------- exec and attach


def test_exec_passes_the_exit_code_and_the_streams(cluster: Cluster) -> None:
    three = cluster.kubectl("exec", "talker", "--", "sh", "-c", "echo out; echo err >&2; exit 3")
    assert three.returncode == 3
    assert three.stdout == "out\n"
    assert "err\n" in three.stderr and "command terminated with exit code 3" in three.stderr
    zero = cluster.kubectl("exec", "talker", "--", "true")
    assert zero.returncode == 0 and zero.stderr == ""
    missing = cluster.kubectl("exec", "talker", "--", "/no/such/program")
    assert missing.returncode != 0


def test_deleting_the_pod_ends_an_exec_session(cluster: Cluster) -> None:
    cluster.run_pod("doomed", {"name": "c", "image": "busybox", "command": ["sleep", "3600"]},
                    terminationGracePeriodSeconds=1)
    marker = f"sleep {3600 + secrets.randbelow(1000)}.5"  # pods are host processes

    def exec_running() -> bool:
        return subprocess.run(["pgrep", "-f", f"^{marker}$"], capture_output=True
                              ).returncode == 0

    session = subprocess.Popen([KUBECTL, f"--kubeconfig={cluster.kubeconfig('admin')}",
                                "exec", "doomed", "--", *marker.split()],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        wait_until(exec_running, timeout=20, what="the exec'd command to run")
        cluster.c.client.delete(POD, "doomed", "default")
        session.wait(timeout=20)
        assert not exec_running()
    finally:
        session.kill()
        session.wait()


def test_exec_runs_in_the_pod_network_namespace_with_stdin(cluster: Cluster) -> None:
    pod_ip = cluster.c.client.get(POD, "talker", "default")["status"]["podIP"]
    result = cluster.kubectl("exec", "-i", "talker", "--", "sh", "-c",
                             "cat; ip -4 -o addr show eth0", stdin="hello\nworld\n")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("hello\nworld\n")
    assert f"inet {pod_ip}/" in result.stdout


def test_exec_it_gets_a_terminal(cluster: Cluster) -> None:
    code, out = drive([KUBECTL, f"--kubeconfig={cluster.kubeconfig('admin')}", "exec", "-it",
                       "talker", "--", "sh"],
                      [("#", b"tty; echo marker-$((6*7))\r"), ("marker-42", b"exit 5\r")])
    assert code == 5, out
    assert b"/dev/pts/" in out


def test_run_rm_it_attaches_then_deletes_the_pod(cluster: Cluster) -> None:
    code, out = drive([KUBECTL, f"--kubeconfig={cluster.kubeconfig('admin')}", "run", "tmp",
                       "--rm", "-it", "--image=busybox", "--restart=Never", "--command", "--",
                       "sh"],
                      [("If you don't see a command prompt", b"echo marker-$((6*7))\r"),
                       ("marker-42", b"exit\r")], timeout=60)
    assert code == 0, out
    assert b'pod "tmp" deleted' in out

    def gone() -> bool:
        try:
            cluster.c.client.get(POD, "tmp", "default")
        except NotFound:
            return True
        return False
    wait_until(gone, timeout=30, what="pod tmp to be deleted")


def test_mpctl_logs_and_exec_go_through_the_api_server(cluster: Cluster) -> None:
    tail = cluster.c.mpctl("logs", "talker", "--tail", "2", "--timestamps", check=True)
    assert len(tail.stdout.splitlines()) == 2 and all(
        RFC3339.match(x) for x in tail.stdout.splitlines())
    ran = cluster.c.mpctl("exec", "talker", "--", "sh", "-c", "echo hi; exit 7")
    assert ran.returncode == 7 and ran.stdout == "hi\n"
    # as a user with no rights the API server refuses: it is the API's path
    env = {**os.environ, "KUBECONFIG": str(cluster.kubeconfig("nobody"))}
    env.pop("MINIPLANE_SERVER", None)
    refused = subprocess.run([str(BIN / "mpctl"), "exec", "talker", "--", "true"],
                             capture_output=True, text=True, env=env, timeout=30)
    assert refused.returncode == 1
    assert "Error from server (Forbidden)" in refused.stderr


# --------------------------------------------------------------------------- who may


def test_rbac_view_reads_logs_but_cannot_exec_or_attach(cluster: Cluster) -> None:
    binding = {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
               "metadata": {"name": "viewer-view", "namespace": "default"},
               "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole",
                           "name": "view"},
               "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User",
                             "name": "viewer"}]}
    applied = cluster.kubectl("apply", "-f", "-", stdin=json.dumps(binding))
    assert applied.returncode == 0, applied.stderr
    wait_until(lambda: cluster.kubectl("auth", "can-i", "get", "pods/log",
                                       user="viewer").stdout.strip() == "yes",
               timeout=10, what="the viewer's binding to take effect")
    logs = cluster.kubectl("logs", "talker", "--tail=1", user="viewer")
    assert logs.returncode == 0, logs.stderr
    exec_ = cluster.kubectl("exec", "talker", "--", "true", user="viewer")
    assert exec_.returncode == 1
    assert 'User "viewer" cannot create resource "pods/exec"' in exec_.stderr
    attach = cluster.kubectl("attach", "talker", user="viewer", timeout=30)
    assert attach.returncode == 1
    assert 'User "viewer" cannot create resource "pods/attach"' in attach.stderr
    nobody = cluster.kubectl("get", "--raw", "/api/v1/namespaces/default/pods/talker/log",
                             user="nobody")
    assert 'User "nobody" cannot get resource "pods/log"' in nobody.stderr
    # the WebSocket GET alone (what kubectl tries first) needs create too
    get_only = {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
                "metadata": {"name": "exec-get", "namespace": "default"},
                "rules": [{"apiGroups": [""], "resources": ["pods", "pods/exec"],
                           "verbs": ["get"]}]}
    get_binding = {**binding, "metadata": {"name": "getter", "namespace": "default"},
                   "roleRef": {**binding["roleRef"], "kind": "Role", "name": "exec-get"},
                   "subjects": [{**binding["subjects"][0], "name": "getter"}]}
    for doc in (get_only, get_binding):
        assert cluster.kubectl("apply", "-f", "-", stdin=json.dumps(doc)).returncode == 0
    wait_until(lambda: cluster.kubectl("auth", "can-i", "get", "pods/exec",
                                       user="getter").stdout.strip() == "yes",
               timeout=10, what="the getter's binding to take effect")
    getter = cluster.kubectl("exec", "talker", "--", "true", user="getter")
    assert getter.returncode == 1
    assert 'User "getter" cannot create resource "pods/exec"' in getter.stderr


def _agent_address(cluster: Cluster) -> tuple[str, int]:
    node = cluster.c.client.get(NODE, "node-1")
    return "127.0.0.1", node["status"]["daemonEndpoints"]["kubeletEndpoint"]["Port"]


def _agent_get(address: tuple[str, int], cert: tuple[Path, Path] | None,
               ca: Path) -> str:
    """GET /healthz on the agent with ``cert`` (or none): the status line, or the error."""
    ctx = ssl.create_default_context(cafile=str(ca))
    if cert is not None:
        ctx.load_cert_chain(str(cert[0]), str(cert[1]))
    try:
        with socket.create_connection(address, timeout=10) as raw, \
                ctx.wrap_socket(raw, server_hostname="127.0.0.1") as tls:
            tls.sendall(b"GET /healthz HTTP/1.1\r\nHost: agent\r\nConnection: close\r\n\r\n")
            data = b""
            while chunk := tls.recv(4096):
                data += chunk
        # TLS 1.3: the server judges the certificate after the client's handshake ends,
        # so a refused one shows as a connection closed without an answer
        return data.split(b"\r\n", 1)[0].decode() if data else "refused: no answer"
    except (ssl.SSLError, OSError) as exc:
        return f"refused: {exc}"


def _cert_of(kubeconfig_path: Path, tmp: Path) -> tuple[Path, Path]:
    user = yaml.safe_load(kubeconfig_path.read_text())["users"][0]["user"]
    crt, key = tmp / f"{secrets.token_hex(3)}.crt", tmp / f"{secrets.token_hex(3)}.key"
    crt.write_bytes(base64.b64decode(user["client-certificate-data"]))
    key.write_bytes(base64.b64decode(user["client-key-data"]))
    return crt, key


def test_only_the_api_server_may_call_the_agent(cluster: Cluster, tmp_path: Path) -> None:
    pki_dir = cluster.c.state_dir / "pki"
    address, ca = _agent_address(cluster), pki_dir / "ca.crt"
    apiserver = (pki_dir / "apiserver-kubelet-client.crt",
                 pki_dir / "apiserver-kubelet-client.key")
    assert _agent_get(address, apiserver, ca) == "HTTP/1.1 200 OK"
    assert _agent_get(address, None, ca).startswith("refused")  # no certificate: no TLS
    admin = _cert_of(cluster.c.state_dir / "kubeconfig", tmp_path)
    assert _agent_get(address, admin, ca) == "HTTP/1.1 403 Forbidden"
    node = _cert_of(pki_dir / "node-1" / "kubeconfig", tmp_path)
    assert _agent_get(address, node, ca) == "HTTP/1.1 403 Forbidden"
    # a certificate from another CA never completes the handshake
    other_ca = pki.new_ca("other")
    other = pki.issue(other_ca, pki.client_identity("kube-apiserver-kubelet-client"))
    (tmp_path / "o.crt").write_bytes(other.cert_pem)
    (tmp_path / "o.key").write_bytes(other.key_pem)
    assert _agent_get(address, (tmp_path / "o.crt", tmp_path / "o.key"), ca).startswith(
        "refused")


def test_discovery_lists_the_subresources(cluster: Cluster) -> None:
    doc = json.loads(cluster.kubectl("get", "--raw", "/api/v1").stdout)
    verbs = {r["name"]: r["verbs"] for r in doc["resources"]}
    assert verbs["pods/log"] == ["get"]
    assert sorted(verbs["pods/exec"]) == ["create", "get"]
    assert sorted(verbs["pods/attach"]) == ["create", "get"]


def test_exec_without_a_websocket_is_refused_clearly(cluster: Cluster) -> None:
    """kubectl's SPDY fallback, and a plain GET, get a 400 saying what is served."""
    config = cluster.c.client.config
    path = "/api/v1/namespaces/default/pods/talker/exec?command=true&stdout=true"
    with httpx.Client(base_url=config.server, verify=tls_verify(config), timeout=10) as http:
        spdy = http.post(path, headers={"Connection": "Upgrade", "Upgrade": "SPDY/3.1",
                                        "X-Stream-Protocol-Version": "v4.channel.k8s.io"})
        plain = http.get(path)
    assert spdy.status_code == 400
    assert spdy.json()["message"] == ("exec is served over WebSocket only (v5.channel.k8s.io, "
                                      "v4.channel.k8s.io); SPDY is not supported")
    assert plain.status_code == 400 and plain.json()["message"].endswith(
        "Upgrade request required")


# --------------------------------------------------------------------------- the pod's identity

SLEEPER = {"name": "c", "image": "busybox", "command": ["sleep", "3600"]}


def exec_out(cluster: Cluster, pod: str, *cmd: str, namespace: str = "default") -> str:
    result = cluster.kubectl("exec", "-n", namespace, pod, "--", *cmd)
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_a_pod_sees_its_dns_config_hostname_fqdn_and_host_aliases(cluster: Cluster) -> None:
    cluster.run_pod("ident", SLEEPER, hostname="db-0", subdomain="sub",
                    dnsConfig={"nameservers": ["192.0.2.53"], "searches": ["extra.example"],
                               "options": [{"name": "ndots", "value": "2"},
                                           {"name": "edns0"}]},
                    hostAliases=[{"ip": "192.0.2.7", "hostnames": ["foo.local", "bar.local"]}],
                    terminationGracePeriodSeconds=1)
    resolv = exec_out(cluster, "ident", "cat", "/etc/resolv.conf").splitlines()
    # the host's own search domains, if it has any, come between the cluster's and ours
    assert resolv[0].startswith("search default.svc.cluster.local svc.cluster.local "
                                "cluster.local ") and resolv[0].endswith(" extra.example")
    assert resolv[1:] == ["nameserver 10.96.0.10", "nameserver 192.0.2.53",
                          "options ndots:2 edns0"]
    assert exec_out(cluster, "ident", "hostname") == "db-0\n"
    assert exec_out(cluster, "ident", "hostname", "-f") == "db-0.sub.default.svc.cluster.local\n"
    assert exec_out(cluster, "ident", "cat", "/etc/hostname") == "db-0\n"
    assert exec_out(cluster, "ident", "printenv", "HOSTNAME") == "db-0\n"
    ip = cluster.c.client.get(POD, "ident", "default")["status"]["podIP"]
    hosts = exec_out(cluster, "ident", "cat", "/etc/hosts")
    assert hosts.startswith("# Kubernetes-managed hosts file.\n127.0.0.1\tlocalhost\n")
    assert f"\n{ip}\tdb-0.sub.default.svc.cluster.local\tdb-0\n" in hosts
    assert hosts.endswith("# Entries added by HostAliases.\n"
                          "192.0.2.7\tfoo.local\tbar.local\n")
    assert exec_out(cluster, "ident", "getent", "hosts", "bar.local").split() == [
        "192.0.2.7", "foo.local", "bar.local"]
    cluster.c.client.delete(POD, "ident", "default")


def test_dns_policy_none_and_default(cluster: Cluster) -> None:
    cluster.run_pod("dns-none", SLEEPER, dnsPolicy="None", terminationGracePeriodSeconds=1,
                    dnsConfig={"nameservers": ["192.0.2.1"], "searches": ["a.example"]})
    extra = ["192.0.2.1", "192.0.2.2", "192.0.2.3"]  # the node's own come first
    cluster.run_pod("dns-default", SLEEPER, dnsPolicy="Default",
                    dnsConfig={"nameservers": extra}, terminationGracePeriodSeconds=1)
    assert exec_out(cluster, "dns-none", "cat", "/etc/resolv.conf") == (
        "search a.example\nnameserver 192.0.2.1\n")
    node = [line.split()[1] for line in Path("/etc/resolv.conf").read_text().splitlines()
            if line.startswith("nameserver")]
    pod = [line.split()[1] for line in exec_out(cluster, "dns-default", "cat",
                                                "/etc/resolv.conf").splitlines()
           if line.startswith("nameserver")]
    assert pod == [*node, *extra][:3] and "10.96.0.10" not in pod
    if node:  # past kubelet's three: the rest is dropped, and the pod is told
        wait_until(lambda: any(
            e.get("reason") == "DNSConfigForming" and e["involvedObject"]["name"]
            == "dns-default" and " ".join(pod) in e.get("message", "")
            for e in cluster.c.client.list(EVENT, "default")["items"]),
            timeout=20, what="a DNSConfigForming event for dns-default")
    for name in ("dns-none", "dns-default"):
        cluster.c.client.delete(POD, name, "default")


def test_a_host_network_pod_is_on_its_nodes_network_with_the_nodes_ip_and_name(
        cluster: Cluster) -> None:
    body = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "hostnet"},
            "spec": {"hostNetwork": True, "dnsPolicy": "ClusterFirstWithHostNet",
                     "terminationGracePeriodSeconds": 1, "containers": [SLEEPER]}}
    # the cluster's default level is baseline, which forbids the host's network
    with pytest.raises(Forbidden, match="hostNetwork"):
        cluster.c.client.create(POD, body, "default")
    cluster.c.client.create(NAMESPACE, {"apiVersion": "v1", "kind": "Namespace", "metadata": {
        "name": "hostnet", "labels": {"pod-security.kubernetes.io/enforce": "privileged"}}})
    def node_namespaces() -> set[str]:
        return {ns for ns in namespaces_of(cluster.c.name) if "-node-" in ns}
    before = node_namespaces()
    cluster.c.client.create(POD, body, "hostnet")
    pod = wait_until(lambda: (p := cluster.c.client.get(POD, "hostnet", "hostnet"))
                     ["status"].get("phase") == "Running" and p, timeout=40,
                     what="the hostNetwork pod to run")
    node = cluster.c.client.get(NODE, pod["spec"]["nodeName"])
    node_ip = next(a["address"] for a in node["status"]["addresses"]
                   if a["type"] == "InternalIP")
    assert pod["status"]["podIP"] == pod["status"]["hostIP"] == node_ip
    assert pod["status"]["podIPs"] == [{"ip": node_ip}]
    own = pod_netns(cluster.c.name, pod["metadata"]["uid"])
    assert own not in namespaces_of(cluster.c.name)  # no namespace of its own
    assert f"inet {node_ip}/" in exec_out(cluster, "hostnet", "ip", "-4", "-o", "addr",
                                          namespace="hostnet")
    assert exec_out(cluster, "hostnet", "hostname", namespace="hostnet") == (
        pod["spec"]["nodeName"] + "\n")
    assert "nameserver 10.96.0.10\n" in exec_out(cluster, "hostnet", "cat",
                                                 "/etc/resolv.conf", namespace="hostnet")
    cluster.c.client.delete(POD, "hostnet", "hostnet")

    def gone() -> bool:
        try:
            cluster.c.client.get(POD, "hostnet", "hostnet")
        except NotFound:
            return True
        return False
    wait_until(gone, timeout=30, what="the hostNetwork pod to be deleted")
    assert node_namespaces() == before  # the node's namespace stays
    assert exec_out(cluster, "talker", "true") == ""
