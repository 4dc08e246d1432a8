"""Pods run as their securityContext says, on a real node agent with real processes.

The cluster is ``test_nodeagent``'s (a real mp-apiserver, mp-controllers, two
mp-nodeagents in their own namespaces). Each test runs pods to completion and reads
what they printed from their log in the agent's state dir, or waits for the status
the agent reports.

The ServiceAccount tests use the API server's ServiceAccounts and TokenRequest; the
agents here run as the admin (the node's own credential is ``tests/e2e``'s).
"""

from __future__ import annotations

import contextlib
import os
import signal
from pathlib import Path
from typing import Any

import pytest

from apimachinery.kinds import POD, SERVICE
from client.errors import NotFound
from nodeagent.pods import crilog
from nodeagent.pods.security import ALL_CAPABILITIES, DEFAULT_CAPABILITIES
from tests.conftest import wait_until
from tests.integration.test_nodeagent import NS, Cluster, cluster  # noqa: F401 - fixture
from tests.netns import have_root_tools
from tests.podscripts import WRITE

pytestmark = [pytest.mark.root,
              pytest.mark.skipif(have_root_tools() is not None,
                                 reason=have_root_tools() or "")]

NODE = "node-a"
PY = "/usr/bin/python3"  # the system's: a non-root user can run it (the venv may be private)
SA_DIR = "/var/run/secrets/kubernetes.io/serviceaccount"



def mask(caps: set[str] | frozenset[str]) -> int:
    return sum(1 << ALL_CAPABILITIES.index(c) for c in caps)


def status_fields(text: str) -> dict[str, str]:
    return {k: v.strip() for k, _, v in (line.partition(":") for line in text.splitlines())}


def run_to_end(c: Cluster, name: str, containers: list[dict[str, Any]], **spec: Any
               ) -> dict[str, Any]:
    c.pod(name, NODE, containers, restartPolicy="Never", **spec)
    return wait_until(lambda: (p := c.get(name))["status"].get("phase") in
                      ("Succeeded", "Failed") and p, timeout=30, what=f"{name} to finish")


def log(c: Cluster, pod: dict[str, Any], container: str) -> str:
    """What the container printed (its CRI log file, as kubelet reads it)."""
    state = c.agents[NODE].state
    raw = (state / "pods" / pod["metadata"]["uid"] / f"{container}.log").read_bytes()
    entries, _ = crilog.parse(raw)
    return b"".join(e.render(timestamps=False) for e in entries).decode()


def test_run_as_user_is_that_user_and_cannot_write_root_files(cluster: Cluster,  # noqa: F811
                                                              host_dir: Path) -> None:
    target = host_dir / "root-file"
    pod = run_to_end(cluster, "as-1000", [
        {"name": "id", "image": "x", "command": ["id", "-u"]},
        {"name": "groups", "image": "x", "command": ["id", "-G"]},
        {"name": "write", "image": "x", "command": [PY, "-c", WRITE, str(target)]}],
        securityContext={"runAsUser": 1000, "runAsGroup": 3000,
                         "supplementalGroups": [4000], "fsGroup": 5000})
    assert log(cluster, pod, "id") == "1000\n"
    assert log(cluster, pod, "groups").split() == ["3000", "4000", "5000"]
    assert log(cluster, pod, "write") == "append Permission denied\ncreate Permission denied\n"
    assert target.read_text() == "root's\n" and not (host_dir / "new").exists()
    # the same program as root (no securityContext) can: the test would see a bypass
    root = run_to_end(cluster, "as-root", [
        {"name": "write", "image": "x", "command": [PY, "-c", WRITE, str(target)]}])
    assert log(cluster, root, "write") == "append ok\ncreate ok\n"
    for name in ("as-1000", "as-root"):
        cluster.delete_and_wait(name)


def test_run_as_non_root_without_a_user_is_refused(cluster: Cluster) -> None:  # noqa: F811
    cluster.pod("nonroot", NODE, [{"name": "c", "image": "x", "command": ["sleep", "60"]}],
                securityContext={"runAsNonRoot": True})
    waiting = wait_until(
        lambda: cluster.container("nonroot").get("state", {}).get("waiting", {}).get(
            "reason") == "CreateContainerConfigError"
        and cluster.container("nonroot")["state"]["waiting"], timeout=20,
        what="nonroot refused")
    uid = cluster.get("nonroot")["metadata"]["uid"]
    assert waiting["message"] == ("container has runAsNonRoot and image will run as root "
                                  f'(pod: "nonroot_{NS}({uid})", container: c)')
    pod = cluster.get("nonroot")
    assert pod["status"]["phase"] == "Pending"
    assert not (cluster.agents[NODE].state / "pods" / uid / "c.log").exists()  # never ran
    # with a user it runs
    cluster.pod("nonroot-ok", NODE, [{"name": "c", "image": "x", "command": ["id", "-u"]}],
                securityContext={"runAsNonRoot": True, "runAsUser": 1234},
                restartPolicy="Never")
    wait_until(lambda: cluster.get("nonroot-ok")["status"].get("phase") == "Succeeded",
               timeout=20, what="nonroot-ok Succeeded")
    assert log(cluster, cluster.get("nonroot-ok"), "c") == "1234\n"
    for name in ("nonroot", "nonroot-ok"):
        cluster.delete_and_wait(name)


def test_capabilities_and_no_new_privs(cluster: Cluster) -> None:  # noqa: F811
    grep = ["grep", "-E", "^(Cap|NoNewPrivs)", "/proc/self/status"]
    pod = run_to_end(cluster, "caps", [
        {"name": "default", "image": "x", "command": grep},
        {"name": "dropped", "image": "x", "command": grep,
         "securityContext": {"capabilities": {"drop": ["ALL"], "add": ["NET_BIND_SERVICE"]},
                             "allowPrivilegeEscalation": False}},
        {"name": "user", "image": "x", "command": grep,
         "securityContext": {"runAsUser": 1000, "capabilities": {"add": ["NET_ADMIN"]}}},
        {"name": "privileged", "image": "x", "command": grep,
         "securityContext": {"privileged": True}}])
    default = status_fields(log(cluster, pod, "default"))
    assert int(default["CapBnd"], 16) == mask(DEFAULT_CAPABILITIES)
    assert int(default["CapEff"], 16) == mask(DEFAULT_CAPABILITIES)  # root: effective too
    assert not int(default["CapBnd"], 16) & (1 << ALL_CAPABILITIES.index("SYS_ADMIN"))
    assert default["NoNewPrivs"] == "0" and int(default["CapInh"], 16) == 0
    dropped = status_fields(log(cluster, pod, "dropped"))
    assert int(dropped["CapBnd"], 16) == mask({"NET_BIND_SERVICE"})
    assert dropped["NoNewPrivs"] == "1"
    user = status_fields(log(cluster, pod, "user"))
    assert int(user["CapBnd"], 16) == mask(DEFAULT_CAPABILITIES | {"NET_ADMIN"})
    assert int(user["CapEff"], 16) == 0 and int(user["CapAmb"], 16) == 0  # non-root: none
    privileged = status_fields(log(cluster, pod, "privileged"))
    agent = status_fields(Path("/proc/self/status").read_text())
    assert privileged["CapBnd"] == agent["CapBnd"]
    cluster.delete_and_wait("caps")


def test_read_only_root_filesystem(cluster: Cluster, host_dir: Path) -> None:  # noqa: F811
    target = host_dir / "root-file"
    pod = run_to_end(cluster, "readonly", [
        {"name": "ro", "image": "x", "command": [PY, "-c", WRITE, str(target)],
         "securityContext": {"readOnlyRootFilesystem": True}},
        {"name": "shm", "image": "x", "command": [PY, "-c", WRITE, "/dev/shm/mp-podsec-x"],
         "securityContext": {"readOnlyRootFilesystem": True}}])
    # root, yet the mount refuses; stdout (the log) still works
    assert log(cluster, pod, "ro") == ("append Read-only file system\n"
                                       "create Read-only file system\n")
    assert target.read_text() == "root's\n"
    assert log(cluster, pod, "shm").startswith("append ok\n")  # /dev/shm stays writable
    with contextlib.suppress(FileNotFoundError):
        os.unlink("/dev/shm/mp-podsec-x")
    with contextlib.suppress(FileNotFoundError):
        os.unlink("/dev/shm/new")
    assert os.access(host_dir, os.W_OK)  # the host's view is unchanged
    (host_dir / "host-can").write_text("x")
    (host_dir / "host-can").unlink()
    cluster.delete_and_wait("readonly")


def test_environment_names_the_kubernetes_service(cluster: Cluster) -> None:  # noqa: F811
    svc = cluster.client.get(SERVICE, "kubernetes", "default")
    ip = svc["spec"]["clusterIP"]
    pod = run_to_end(cluster, "env", [
        {"name": "env", "image": "x", "command": ["env"],
         "env": [{"name": "KUBERNETES_SERVICE_PORT_HTTPS", "value": "mine"}]}],
        securityContext={"runAsUser": 1000})
    env = dict(line.split("=", 1) for line in log(cluster, pod, "env").splitlines())
    assert env["KUBERNETES_SERVICE_HOST"] == ip
    assert env["KUBERNETES_SERVICE_PORT"] == "443"
    assert env["KUBERNETES_PORT"] == f"tcp://{ip}:443"
    assert env["KUBERNETES_PORT_443_TCP_ADDR"] == ip
    assert env["KUBERNETES_SERVICE_PORT_HTTPS"] == "mine"  # the container's own env wins
    assert env["HOSTNAME"] == "env"
    assert "PYTEST_CURRENT_TEST" not in env  # nothing of the agent's environment
    cluster.delete_and_wait("env")


def test_exec_probe_runs_as_the_container(cluster: Cluster) -> None:  # noqa: F811
    probe = {"exec": {"command": [PY, "-c", "import os, sys; sys.exit(os.getuid() != 1000)"]},
             "periodSeconds": 1}
    cluster.pod("probed", NODE, [{"name": "c", "image": "x", "command": ["sleep", "600"],
                                  "readinessProbe": probe}],
                securityContext={"runAsUser": 1000}, terminationGracePeriodSeconds=1)
    wait_until(lambda: cluster.ready("probed") == "True", timeout=30, what="probed Ready")
    cluster.delete_and_wait("probed")


def test_service_account_token_is_mounted_where_clients_look(
        cluster: Cluster) -> None:  # noqa: F811
    """Token, CA and namespace where ``load_incluster_config`` looks, readable by the
    pod's user; none when the pod opts out."""
    # the files, beside the kubelet's ``..data`` link and the timestamped directory
    # it points to (the atomic swap of a refresh)
    show = [PY, "-c", "import os, sys; d = sys.argv[1]; "
            "[print(n, len(open(os.path.join(d, n)).read()) if not n.startswith('..') "
            "else os.path.islink(os.path.join(d, n))) for n in sorted(os.listdir(d))]",
            SA_DIR]
    ns_file = [PY, "-c", f"print(open('{SA_DIR}/namespace').read())"]
    pod = run_to_end(cluster, "sa", [
        {"name": "files", "image": "x", "command": show},
        {"name": "ns", "image": "x", "command": ns_file},
        {"name": "token", "image": "x", "command": ["cat", f"{SA_DIR}/token"]}],
        securityContext={"runAsUser": 1000})
    assert pod["status"]["phase"] == "Succeeded", pod["status"]
    files = [line.split() for line in log(cluster, pod, "files").splitlines()]
    assert [name for name, _ in files if not name.startswith("..")] == \
        ["ca.crt", "namespace", "token"]
    assert ["..data", "True"] in files  # a symlink, swapped at each refresh
    assert all(int(size) > 0 for name, size in files if not name.startswith(".."))
    assert log(cluster, pod, "ns") == f"{NS}\n"
    assert log(cluster, pod, "token").count(".") == 2  # a JWT, readable by uid 1000
    opted_out = run_to_end(cluster, "no-sa", [
        {"name": "c", "image": "x", "command": ["test", "-e", f"{SA_DIR}/token"]}],
        automountServiceAccountToken=False)
    assert opted_out["status"]["containerStatuses"][0]["state"]["terminated"]["exitCode"] == 1
    for name in ("sa", "no-sa"):
        cluster.delete_and_wait(name)


def test_a_token_that_cannot_be_had_keeps_the_container_waiting(
        cluster: Cluster) -> None:  # noqa: F811
    """The pod's ServiceAccount is deleted while its agent is down, so the agent's
    TokenRequest fails when it comes back: the container waits, it does not run
    without its token."""
    sa_path = f"/api/v1/namespaces/{NS}/serviceaccounts"
    cluster.client.request("POST", sa_path, json={
        "apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "fleeting"}})
    agent = cluster.agents["node-b"]
    agent.stop(signal.SIGKILL)
    try:
        cluster.pod("tokenless", "node-b", [{"name": "c", "image": "x",
                                             "command": ["sleep", "60"]}],
                    serviceAccountName="fleeting")
        cluster.client.request("DELETE", f"{sa_path}/fleeting")
    finally:
        agent.start()
    waiting = wait_until(
        lambda: cluster.container("tokenless").get("state", {}).get("waiting", {}).get(
            "reason") == "CreateContainerConfigError"
        and cluster.container("tokenless")["state"]["waiting"], timeout=30,
        what="tokenless waiting for its token")
    assert "fleeting" in waiting["message"], waiting
    assert cluster.get("tokenless")["status"]["phase"] == "Pending"
    with contextlib.suppress(NotFound):
        cluster.client.delete(POD, "tokenless", NS, grace_period_seconds=0)


def test_a_finished_containers_log_holds_all_it_printed(cluster: Cluster) -> None:  # noqa: F811
    """The pod is reported finished only once the log writer has read the last of its
    output (as containerd copies a task's output before reporting its exit)."""
    pod = run_to_end(cluster, "chatty", [{"name": "c", "image": "x",
                                          "command": ["seq", "1", "300000"]}])
    assert pod["status"]["phase"] == "Succeeded"
    lines = log(cluster, pod, "c").splitlines()
    assert (len(lines), lines[-1]) == (300000, "300000")
    cluster.delete_and_wait("chatty")
