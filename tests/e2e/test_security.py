"""End to end: what ``mpctl cluster up`` secures, tried by the ones who may not.

One 2-node cluster for the module (``test_local_cluster``'s ``running_cluster``:
``down`` in the finalizer must leave no namespace and no process, even when a test
failed). Each test works in Kubernetes namespaces of its own and deletes them, and
the cluster goes at the end whatever happened. The credentials are the files ``up``
made: the admin kubeconfig beside ``cluster.json``, and each component's under
``pki/<component>/kubeconfig``.

Pods here run real programs as host processes: the official Python client inside a
pod (``load_incluster_config``, the token mounted by the node agent, the
``kubernetes`` Service at 10.96.0.1:443), ``id`` with ``runAsUser``, and a write to
a root-owned file on the host.
"""

from __future__ import annotations

import base64
import contextlib
import functools
import secrets
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from apimachinery.kinds import (
    CONFIGMAP,
    EVENT,
    NAMESPACE,
    NODE,
    POD,
    SECRET,
    SERVICE,
    SERVICEACCOUNT,
)
from client.config import load_config
from client.errors import ApiError, Forbidden, NotFound
from client.http import Client
from tests.conftest import REPO, wait_until
from tests.e2e.test_local_cluster import LocalCluster, running_cluster
from tests.netns import have_root_tools
from tests.podscripts import WRITE

pytestmark = [pytest.mark.root,
              pytest.mark.skipif(have_root_tools() is not None,
                                 reason=have_root_tools() or "")]

ENFORCE = "pod-security.kubernetes.io/enforce"
SA_DIR = "/var/run/secrets/kubernetes.io/serviceaccount"
VENV_PYTHON = str(REPO / ".venv" / "bin" / "python")  # has the official client
PY = "/usr/bin/python3"  # the system's, which a non-root user can run too

# Runs in a pod as its ServiceAccount: the official client, configured the way a
# controller in a cluster is. One line per call: the status code, then the names
# (200) or the server's message.
IN_CLUSTER = f"""
import json
from kubernetes import client, config
config.load_incluster_config()
ns = open("{SA_DIR}/namespace").read()
api = client.CoreV1Api()
for what, call in (("list services", lambda: api.list_namespaced_service(ns)),
                   ("list secrets", lambda: api.list_namespaced_secret(ns)),
                   ("delete service", lambda: api.delete_namespaced_service("target", ns))):
    try:
        answer = call()
        names = sorted(i.metadata.name for i in getattr(answer, "items", []) or [])
        print(what, 200, " ".join(names), flush=True)
    except client.ApiException as exc:
        print(what, exc.status, json.loads(exc.body)["message"], flush=True)
"""


PRIVILEGED = {"name": "main", "image": "x", "command": ["sleep", "60"],
              "securityContext": {"privileged": True}}


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    with running_cluster(tmp_path_factory.mktemp("secure"), prefix="s") as c:
        yield c


@pytest.fixture
def namespace(cluster: LocalCluster) -> Iterator[Callable[..., str]]:
    """Makes Kubernetes namespaces (``sec-<random>``, optional labels) and deletes
    them, with their pods, after the test; waits for each one's ``default``
    ServiceAccount, which pods need for their token."""
    made: list[str] = []

    def make(labels: dict[str, str] | None = None) -> str:
        name = f"sec-{secrets.token_hex(3)}"
        cluster.client.create(NAMESPACE, {"apiVersion": "v1", "kind": "Namespace",
                                          "metadata": {"name": name, "labels": labels or {}}})
        made.append(name)
        wait_until(lambda: _exists(cluster.client, SERVICEACCOUNT, "default", name),
                   timeout=20, what=f"the default ServiceAccount of {name}")
        return name

    yield make
    for name in made:
        with contextlib.suppress(ApiError):
            for pod in cluster.client.list(POD, name)["items"]:
                with contextlib.suppress(NotFound):
                    cluster.client.delete(POD, pod["metadata"]["name"], name,
                                          grace_period_seconds=0)
            cluster.client.delete(NAMESPACE, name)


def component_client(cluster: LocalCluster, component: str) -> Client:
    """As ``component``: the kubeconfig ``up`` made for it and started it with."""
    return Client(load_config(kubeconfig=cluster.state_dir / "pki" / component /
                              "kubeconfig"))


def _exists(client: Client, kind: Any, name: str, namespace: str) -> bool:
    try:
        client.get(kind, name, namespace)
    except NotFound:
        return False
    return True


def pod(name: str, containers: list[dict[str, Any]], **spec: Any) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name},
            "spec": {"containers": containers, **spec}}


def run_to_end(cluster: LocalCluster, ns: str, body: dict[str, Any], timeout: float = 60
               ) -> dict[str, Any]:
    name = body["metadata"]["name"]
    cluster.client.create(POD, {**body, "spec": {"restartPolicy": "Never", **body["spec"]}}, ns)
    try:
        return wait_until(lambda: (p := cluster.client.get(POD, name, ns))["status"].get(
            "phase") in ("Succeeded", "Failed") and p, timeout=timeout,
            what=f"pod {name} to finish")
    except AssertionError as exc:
        raise AssertionError(f"{exc}; status now: "
                             f"{cluster.client.get(POD, name, ns).get('status')}") from None


def logs(cluster: LocalCluster, ns: str, name: str, container: str | None = None) -> str:
    """What the container printed, read as a user does (``mpctl logs``)."""
    return cluster.mpctl("logs", "-n", ns, name, *(["-c", container] if container else []),
                         check=True).stdout


def forbidden(call: Callable[[], Any]) -> str:
    """The message of the 403 ``call`` must get."""
    with pytest.raises(Forbidden) as info:
        call()
    assert info.value.code == 403
    return info.value.message


# ------------------------------------------------------------------ in-cluster clients


def test_pod_client_lists_services_only_when_its_service_account_is_bound_to_view(
        cluster: LocalCluster, namespace: Callable[..., str], tmp_path: Path) -> None:
    ns = namespace()
    manifest = tmp_path / "reader.yaml"
    manifest.write_text(f"""
apiVersion: v1
kind: ServiceAccount
metadata: {{name: reader, namespace: {ns}}}
---
apiVersion: v1
kind: Service
metadata: {{name: target, namespace: {ns}}}
spec:
  ports: [{{port: 80}}]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {{name: reader-view, namespace: {ns}}}
roleRef: {{apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: view}}
subjects:
- {{kind: ServiceAccount, name: reader, namespace: {ns}}}
""")
    cluster.mpctl("apply", "-f", str(manifest), check=True)  # as the admin
    command = [VENV_PYTHON, "-c", IN_CLUSTER]
    for name, sa in (("bound", "reader"), ("unbound", "default")):
        done = run_to_end(cluster, ns, pod(name, [{"name": "c", "image": "x",
                                                   "command": command}],
                                           serviceAccountName=sa))
        assert done["status"]["phase"] == "Succeeded", logs(cluster, ns, name)
    bound = logs(cluster, ns, "bound").splitlines()
    user = f"system:serviceaccount:{ns}:reader"
    assert bound == [
        "list services 200 target",
        f'list secrets 403 secrets is forbidden: User "{user}" cannot list resource '
        f'"secrets" in API group "" in the namespace "{ns}"',
        f'delete service 403 services "target" is forbidden: User "{user}" cannot delete '
        f'resource "services" in API group "" in the namespace "{ns}"']
    user = f"system:serviceaccount:{ns}:default"
    assert logs(cluster, ns, "unbound").splitlines()[0] == (
        f'list services 403 services is forbidden: User "{user}" cannot list resource '
        f'"services" in API group "" in the namespace "{ns}"')
    assert _exists(cluster.client, SERVICE, "target", ns)


def test_pod_environment_and_token_files_are_where_in_cluster_clients_look(
        cluster: LocalCluster, namespace: Callable[..., str]) -> None:
    ns = namespace()
    show = ("import os; d = '" + SA_DIR + "'; print(*sorted(n for n in os.listdir(d) "
            "if not n.startswith('..'))); print(open(d + '/namespace').read()); "
            "print(os.environ['KUBERNETES_SERVICE_HOST'], "
            "os.environ['KUBERNETES_SERVICE_PORT'])")
    run_to_end(cluster, ns, pod("where", [{"name": "c", "image": "x",
                                           "command": [PY, "-c", show]}]))
    assert logs(cluster, ns, "where").splitlines() == ["ca.crt namespace token", ns,
                                                       "10.96.0.1 443"]
    # a ServiceAccount that opts out: its pods get no token (the node, as itself, reads
    # the ServiceAccount of a pod bound to it to know)
    cluster.client.create(SERVICEACCOUNT, {"apiVersion": "v1", "kind": "ServiceAccount",
                                           "metadata": {"name": "quiet"},
                                           "automountServiceAccountToken": False}, ns)
    done = run_to_end(cluster, ns, pod("tokenless", [
        {"name": "c", "image": "x", "command": ["test", "-e", f"{SA_DIR}/token"]}],
        serviceAccountName="quiet"))
    assert done["status"]["containerStatuses"][0]["state"]["terminated"]["exitCode"] == 1


# ------------------------------------------------------------------ pods and their host


def test_run_as_user_is_that_user_and_cannot_write_a_root_file_on_the_host(
        cluster: LocalCluster, namespace: Callable[..., str], host_dir: Path) -> None:
    ns = namespace()
    target = host_dir / "root-file"
    done = run_to_end(cluster, ns, pod("as-1000", [
        {"name": "id", "image": "x", "command": ["id", "-u"]},
        {"name": "write", "image": "x", "command": [PY, "-c", WRITE, str(target)]}],
        securityContext={"runAsUser": 1000}))
    assert done["status"]["phase"] == "Succeeded"
    assert logs(cluster, ns, "as-1000", "id") == "1000\n"
    assert logs(cluster, ns, "as-1000", "write") == ("append Permission denied\n"
                                                     "create Permission denied\n")
    assert target.read_text() == "root's\n"
    assert sorted(p.name for p in host_dir.iterdir()) == ["root-file"]
    assert target.stat().st_uid == 0 and oct(target.stat().st_mode & 0o777) == "0o644"


def test_run_as_non_root_without_a_user_does_not_start(
        cluster: LocalCluster, namespace: Callable[..., str]) -> None:
    ns = namespace()
    created = cluster.client.create(POD, pod("nonroot", [
        {"name": "c", "image": "x", "command": ["id", "-u"]}],
        securityContext={"runAsNonRoot": True}), ns)

    def waiting() -> dict[str, Any] | None:
        statuses = cluster.client.get(POD, "nonroot", ns)["status"].get(
            "containerStatuses") or [{}]
        state = statuses[0].get("state", {}).get("waiting") or {}
        return state if state.get("reason") == "CreateContainerConfigError" else None

    state = wait_until(waiting, timeout=40, what="nonroot to be refused")
    uid = created["metadata"]["uid"]
    assert state["message"] == ("container has runAsNonRoot and image will run as root "
                                f'(pod: "nonroot_{ns}({uid})", container: c)')
    assert cluster.client.get(POD, "nonroot", ns)["status"]["phase"] == "Pending"
    never = cluster.mpctl("logs", "-n", ns, "nonroot")
    assert never.returncode == 1
    assert never.stderr == ('Error from server (BadRequest): container "c" in pod "nonroot" '
                            "is waiting to start: CreateContainerConfigError\n")


# ------------------------------------------------------------------ Pod Security admission


def test_restricted_namespace_refuses_a_privileged_pod_with_kubernetes_message(
        cluster: LocalCluster, namespace: Callable[..., str]) -> None:
    ns = namespace({ENFORCE: "restricted"})
    message = forbidden(lambda: cluster.client.create(POD, pod("priv", [PRIVILEGED]), ns))
    assert message == (
        'pods "priv" is forbidden: violates PodSecurity "restricted:latest": '
        'privileged (container "main" must not set securityContext.privileged=true), '
        'allowPrivilegeEscalation != false (container "main" must set '
        'securityContext.allowPrivilegeEscalation=false), unrestricted capabilities '
        '(container "main" must set securityContext.capabilities.drop=["ALL"]), '
        'runAsNonRoot != true (pod or container "main" must set '
        'securityContext.runAsNonRoot=true), seccompProfile (pod or container "main" must '
        'set securityContext.seccompProfile.type to "RuntimeDefault" or "Localhost")')
    assert not _exists(cluster.client, POD, "priv", ns)


def test_namespaces_without_a_label_are_baseline_so_privileged_pods_are_refused(
        cluster: LocalCluster, namespace: Callable[..., str]) -> None:
    for ns in ("default", namespace()):
        message = forbidden(functools.partial(cluster.client.create, POD,
                                              pod("priv", [PRIVILEGED]), ns))
        assert message == ('pods "priv" is forbidden: violates PodSecurity "baseline:latest": '
                           'privileged (container "main" must not set '
                           'securityContext.privileged=true)')
        assert not _exists(cluster.client, POD, "priv", ns)


# ------------------------------------------------------------------ the components' credentials


def test_a_node_writes_only_its_own_node_and_the_pods_bound_to_it(
        cluster: LocalCluster, namespace: Callable[..., str]) -> None:
    ns = namespace()
    cluster.client.create(SERVICEACCOUNT, {"apiVersion": "v1", "kind": "ServiceAccount",
                                           "metadata": {"name": "on-two"}}, ns)
    for name, node, sa in (("on-node-1", "node-1", "default"),
                           ("on-node-2", "node-2", "on-two")):
        cluster.client.create(POD, pod(name, [{"name": "c", "image": "x",
                                               "command": ["sleep", "600"]}],
                                       nodeName=node, serviceAccountName=sa,
                                       terminationGracePeriodSeconds=1), ns)
    touch = {"metadata": {"annotations": {"e2e.miniplane.dev/touched": "yes"}}}
    with component_client(cluster, "node-1") as node1:
        assert forbidden(lambda: node1.patch(NODE, "node-2", touch)) == (
            'nodes "node-2" is forbidden: node "node-1" is not allowed to modify node '
            '"node-2"')
        assert forbidden(lambda: node1.patch(POD, "on-node-2", {"status": {}}, namespace=ns,
                                             subresource="status")) == (
            'pods "on-node-2" is forbidden: node "node-1" can only update pod status for '
            'pods with spec.nodeName set to itself')
        assert forbidden(lambda: node1.delete(POD, "on-node-2", ns)) == (
            'pods "on-node-2" is forbidden: node "node-1" can only delete pods with '
            'spec.nodeName set to itself')
        # no token, nor the ServiceAccount, of a pod that runs elsewhere
        token = {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest",
                 "spec": {}}
        message = forbidden(lambda: node1.request(
            "POST", f"/api/v1/namespaces/{ns}/serviceaccounts/on-two/token", json=token))
        assert message.startswith(
            f'serviceaccounts "on-two" is forbidden: User "system:node:node-1" cannot create '
            f'resource "serviceaccounts/token" in API group "" in the namespace "{ns}"')
        forbidden(lambda: node1.get(SERVICEACCOUNT, "on-two", ns))
        assert node1.get(SERVICEACCOUNT, "default", ns)["metadata"]["name"] == "default"
        # what is its own it may write
        patched = node1.patch(NODE, "node-1", touch)
        assert patched["metadata"]["annotations"]["e2e.miniplane.dev/touched"] == "yes"
        node1.patch(NODE, "node-1", {"metadata": {"annotations": {
            "e2e.miniplane.dev/touched": None}}})
        node1.patch(POD, "on-node-1", {"status": {}}, namespace=ns, subresource="status")
    assert "e2e.miniplane.dev/touched" not in (
        cluster.client.get(NODE, "node-2")["metadata"].get("annotations") or {})
    assert cluster.client.get(POD, "on-node-2", ns)["spec"]["nodeName"] == "node-2"


def test_a_node_reads_only_the_secrets_and_configmaps_its_pods_use(
        cluster: LocalCluster, namespace: Callable[..., str]) -> None:
    """With the credential node-1's agent runs with: the Secret and ConfigMap a pod bound
    to it uses, by name; not the Secret of node-2's pod, and no list of them all."""
    ns = namespace()
    for name in ("mine", "theirs"):
        cluster.client.create(SECRET, {"apiVersion": "v1", "kind": "Secret",
                                       "metadata": {"name": name},
                                       "stringData": {"password": f"{name}-pw"}}, ns)
    cluster.client.create(CONFIGMAP, {"apiVersion": "v1", "kind": "ConfigMap",
                                      "metadata": {"name": "settings"}, "data": {"a": "1"}}, ns)
    sleeper = {"name": "c", "image": "x", "command": ["sleep", "600"], "env": [
        {"name": "PW", "valueFrom": {"secretKeyRef": {"name": "mine", "key": "password"}}}]}
    cluster.client.create(POD, pod("uses-mine", [sleeper], nodeName="node-1",
                                   terminationGracePeriodSeconds=1, volumes=[
                                       {"name": "v", "configMap": {"name": "settings"}}]), ns)
    cluster.client.create(POD, pod("uses-theirs", [{**sleeper, "env": []}], nodeName="node-2",
                                   terminationGracePeriodSeconds=1, volumes=[
                                       {"name": "v", "secret": {"secretName": "theirs"}}]), ns)
    with component_client(cluster, "node-1") as node1:
        def readable() -> bool:  # once the Node authorizer has seen the pod
            try:
                return _exists(node1, SECRET, "mine", ns)
            except Forbidden:
                return False

        wait_until(readable, timeout=20, what="node-1 to read the Secret of its pod")
        assert node1.get(SECRET, "mine", ns)["data"] == {"password": "bWluZS1wdw=="}
        assert node1.get(CONFIGMAP, "settings", ns)["data"] == {"a": "1"}
        assert forbidden(lambda: node1.get(SECRET, "theirs", ns)) == (
            f'secrets "theirs" is forbidden: User "system:node:node-1" cannot get resource '
            f'"secrets" in API group "" in the namespace "{ns}": no relationship found '
            "between node 'node-1' and this object")
        forbidden(lambda: node1.list(SECRET, ns))


def test_dnsd_and_controllers_cannot_do_what_they_have_no_role_for(
        cluster: LocalCluster, namespace: Callable[..., str]) -> None:
    ns = namespace()
    cluster.client.create(SERVICE, {"apiVersion": "v1", "kind": "Service",
                                    "metadata": {"name": "target"},
                                    "spec": {"ports": [{"port": 80}]}}, ns)
    with component_client(cluster, "dnsd") as dnsd:
        # it reads what it serves...
        assert [s["metadata"]["name"] for s in dnsd.list(SERVICE, ns)["items"]] == ["target"]
        # ...and writes nothing
        assert forbidden(lambda: dnsd.delete(SERVICE, "target", ns)) == (
            'services "target" is forbidden: User "system:miniplane-dnsd" cannot delete '
            f'resource "services" in API group "" in the namespace "{ns}"')
        assert forbidden(lambda: dnsd.create(POD, pod("x", [PRIVILEGED]), ns)) == (
            'pods is forbidden: User "system:miniplane-dnsd" cannot create resource "pods" '
            f'in API group "" in the namespace "{ns}"')
    with component_client(cluster, "controllers") as ctl:
        assert ctl.list(POD, ns)["items"] == []
        # it creates pods (for ReplicaSets), but Pod Security judges them as anyone's
        assert forbidden(lambda: ctl.create(POD, pod("x", [PRIVILEGED]), ns)).startswith(
            'pods "x" is forbidden: violates PodSecurity "baseline:latest": privileged')
        # it may delete what the collector collects, never rewrite or make a Service
        target = cluster.client.get(SERVICE, "target", ns)
        assert forbidden(lambda: ctl.replace(SERVICE, target, ns)) == (
            'services "target" is forbidden: User "system:kube-controller-manager" cannot '
            f'update resource "services" in API group "" in the namespace "{ns}"')
        assert forbidden(lambda: ctl.create(SERVICE, {
            "apiVersion": "v1", "kind": "Service", "metadata": {"name": "made"},
            "spec": {"ports": [{"port": 80}]}}, ns)) == (
            'services is forbidden: User "system:kube-controller-manager" cannot '
            f'create resource "services" in API group "" in the namespace "{ns}"')
    assert _exists(cluster.client, SERVICE, "target", ns)


# ------------------------------------------------------------------ ConfigMaps and Secrets as files

# Prints the contents of the files in argv, one line each time they change.
FOLLOW_FILES = """
import sys, time
last = None
while True:
    now = " ".join(open(p).read() for p in sys.argv[1:])
    if now != last:
        print(now, flush=True)
        last = now
    time.sleep(0.1)
"""

# One line per path in argv: its name, mode, group and first line (or the names in
# a directory).
SHOW_FILES = """
import os, stat, sys
for p in sys.argv[1:]:
    if os.path.isdir(p):
        print(sorted(n for n in os.listdir(p) if not n.startswith("..")))
    else:
        s = os.stat(p)
        print(os.path.basename(p), oct(stat.S_IMODE(s.st_mode)), s.st_gid, open(p).read().splitlines()[0])
"""

# A projected volume in argv[1]: its names, then the pod name, the token's audience,
# the token file's mode and the ConfigMap's file.
SHOW_TOKEN = """
import base64, json, os, stat, sys
d = sys.argv[1]
print(sorted(n for n in os.listdir(d) if not n.startswith("..")))
claims = open(d + "/token").read().split(".")[1]
aud = json.loads(base64.urlsafe_b64decode(claims + "=" * (-len(claims) % 4)))["aud"]
mode = oct(stat.S_IMODE(os.stat(d + "/token").st_mode))
print(open(d + "/name").read(), aud, mode, open(d + "/app.conf").read().strip())
"""


def secret(name: str, **data: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": name},
            "data": {k: base64.b64encode(v.encode()).decode() for k, v in data.items()}}


def test_a_secret_file_changes_after_the_secret_is_updated_but_a_sub_path_does_not(
        cluster: LocalCluster, namespace: Callable[..., str], host_dir: Path) -> None:
    ns = namespace()
    cluster.client.create(SECRET, secret("creds", password="one"), ns)
    cluster.client.create(POD, pod("reader", [{
        "name": "c", "image": "x",
        "command": [PY, "-c", FOLLOW_FILES, f"{host_dir}/secret/password",
                    f"{host_dir}/pinned"],
        "volumeMounts": [{"name": "creds", "mountPath": f"{host_dir}/secret"},
                         {"name": "creds", "mountPath": f"{host_dir}/pinned",
                          "subPath": "password"}]}],
        volumes=[{"name": "creds", "secret": {"secretName": "creds"}}],
        terminationGracePeriodSeconds=1), ns)
    wait_until(lambda: logs(cluster, ns, "reader") == "one one\n", timeout=60,
               interval=0.5, what="the secret's file in the pod")
    cluster.client.patch(SECRET, "creds", {"data": {"password": base64.b64encode(
        b"two").decode()}}, namespace=ns)
    wait_until(lambda: logs(cluster, ns, "reader").endswith("two one\n"), timeout=30,
               interval=0.5, what="the updated secret in the pod")
    assert logs(cluster, ns, "reader") == "one one\ntwo one\n"
    # the Node authorizer: only the node that runs a pod using the secret may read it
    mine = cluster.client.get(POD, "reader", ns)["spec"]["nodeName"]
    other = "node-2" if mine == "node-1" else "node-1"
    with component_client(cluster, mine) as node:
        assert node.get(SECRET, "creds", ns)["data"]["password"] == "dHdv"
    with component_client(cluster, other) as node:
        assert forbidden(lambda: node.get(SECRET, "creds", ns)) == (
            f'secrets "creds" is forbidden: User "system:node:{other}" cannot get resource '
            f'"secrets" in API group "" in the namespace "{ns}": no relationship found '
            f"between node '{other}' and this object")


def test_a_config_map_volume_with_items_modes_and_an_fs_group(
        cluster: LocalCluster, namespace: Callable[..., str], host_dir: Path) -> None:
    ns = namespace()
    cluster.client.create(CONFIGMAP, {
        "apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "app"},
        "data": {"app.conf": "port=80\n", "run.sh": "#!/bin/sh\necho ran as $(id -u)\n",
                 "unused": "x"}}, ns)
    cfg = f"{host_dir}/cfg"
    done = run_to_end(cluster, ns, pod("app", [
        {"name": "show", "image": "x", "command": [
            PY, "-c", SHOW_FILES, cfg, f"{cfg}/conf", f"{cfg}/conf/app.conf", f"{cfg}/run.sh"],
         "volumeMounts": [{"name": "cfg", "mountPath": cfg}]},
        {"name": "run", "image": "x", "command": [f"{cfg}/run.sh"],
         "volumeMounts": [{"name": "cfg", "mountPath": cfg, "readOnly": True}]},
        {"name": "projected", "image": "x", "command": [PY, "-c", SHOW_TOKEN, f"{host_dir}/all"],
         "volumeMounts": [{"name": "all", "mountPath": f"{host_dir}/all"}]}],
        securityContext={"runAsUser": 1000, "fsGroup": 2000},
        volumes=[{"name": "cfg", "configMap": {"name": "app", "defaultMode": 0o400, "items": [
            {"key": "app.conf", "path": "conf/app.conf"},
            {"key": "run.sh", "path": "run.sh", "mode": 0o755}]}},
                 {"name": "all", "projected": {"sources": [
                     {"serviceAccountToken": {"audience": "vault", "path": "token"}},
                     {"downwardAPI": {"items": [{"path": "name", "fieldRef": {
                         "fieldPath": "metadata.name"}}]}},
                     {"configMap": {"name": "app", "items": [
                         {"key": "app.conf", "path": "app.conf"}]}}]}}]))
    assert done["status"]["phase"] == "Succeeded", done["status"]
    assert logs(cluster, ns, "app", "show").splitlines() == [
        "['conf', 'run.sh']", "['app.conf']", "app.conf 0o440 2000 port=80",
        "run.sh 0o755 2000 #!/bin/sh"]
    assert logs(cluster, ns, "app", "run") == "ran as 1000\n"
    assert logs(cluster, ns, "app", "projected").splitlines() == [
        "['app.conf', 'name', 'token']", "app ['vault'] 0o640 port=80"]


def test_a_missing_optional_config_map_is_empty_and_a_missing_secret_waits_for_it(
        cluster: LocalCluster, namespace: Callable[..., str], host_dir: Path) -> None:
    ns = namespace()
    done = run_to_end(cluster, ns, pod("optional", [{
        "name": "c", "image": "x", "command": [PY, "-c", SHOW_FILES, f"{host_dir}/opt"],
        "volumeMounts": [{"name": "opt", "mountPath": f"{host_dir}/opt"}]}],
        volumes=[{"name": "opt", "configMap": {"name": "absent", "optional": True}}]))
    assert done["status"]["phase"] == "Succeeded"
    assert logs(cluster, ns, "optional") == "[]\n"

    cluster.client.create(POD, pod("required", [{
        "name": "c", "image": "x", "command": ["cat", f"{host_dir}/later/key"],
        "volumeMounts": [{"name": "later", "mountPath": f"{host_dir}/later"}]}],
        volumes=[{"name": "later", "secret": {"secretName": "later"}}],
        restartPolicy="Never"), ns)

    def failed_mount() -> list[str]:
        return [e["message"] for e in cluster.client.list(
            EVENT, ns, field_selector="involvedObject.name=required")["items"]
            if e["reason"] == "FailedMount"]

    messages = wait_until(failed_mount, timeout=40, interval=0.5,
                          what="a FailedMount event for the missing secret")
    assert messages[0] == 'MountVolume.SetUp failed for volume "later" : secret "later" not found'
    status = cluster.client.get(POD, "required", ns)["status"]
    assert status["phase"] == "Pending"
    assert status["containerStatuses"][0]["state"] == {
        "waiting": {"reason": "ContainerCreating"}}
    cluster.client.create(SECRET, secret("later", key="at last"), ns)
    wait_until(lambda: cluster.client.get(POD, "required", ns)["status"].get("phase")
               == "Succeeded", timeout=30, interval=0.5, what="the pod once its secret exists")
    assert logs(cluster, ns, "required") == "at last"
