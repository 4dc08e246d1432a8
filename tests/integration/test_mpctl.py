"""mpctl against a real mp-apiserver: run as a subprocess, the way a user runs it."""

from __future__ import annotations

import json
import os
import queue
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import yaml

from apimachinery.kinds import ENDPOINTSLICE, SERVICE
from client.errors import NotFound
from client.http import Client
from tests.conftest import admin_config, admin_kubeconfig, admin_tls, free_port, wait_until

MPCTL = str(Path(sys.executable).parent / "mpctl")


def env() -> dict[str, str]:
    """No stray configuration from the machine running the tests."""
    e = {k: v for k, v in os.environ.items() if k not in ("MINIPLANE_SERVER", "KUBECONFIG")}
    e["KUBECONFIG"] = ""
    return e


def mpctl(url: str, *args: str, input: str | None = None,
          timeout: float = 60) -> subprocess.CompletedProcess[str]:
    result = subprocess.run([MPCTL, "--server", url, "--kubeconfig", admin_kubeconfig(), *args],
                            input=input, capture_output=True,
                            text=True, timeout=timeout, env=env())
    assert "Traceback" not in result.stderr, result.stderr
    return result


def ok(url: str, *args: str, input: str | None = None) -> str:
    result = mpctl(url, *args, input=input)
    assert result.returncode == 0, (args, result.stdout, result.stderr)
    return result.stdout


def cells(line: str) -> list[str]:
    return re.split(r" {2,}", line.strip())


def table(text: str) -> list[list[str]]:
    return [cells(line) for line in text.splitlines() if line.strip()]


def rows_named(text: str, name: str, column: int = 0) -> list[list[str]]:
    return [row for row in table(text)[1:] if row[column] == name]


SVC = """\
apiVersion: v1
kind: Service
metadata:
  name: {name}
  labels:
    app: {name}
{extra_labels}spec:
  selector:
    app: {name}
  ports:
  - port: {port}
    targetPort: 8080
"""


def svc_yaml(name: str = "web", port: int = 80, extra_labels: dict[str, str] | None = None) -> str:
    labels = "".join(f"    {k}: {v}\n" for k, v in (extra_labels or {}).items())
    return SVC.format(name=name, port=port, extra_labels=labels)


@pytest.fixture
def client(api_url: str) -> Iterator[Client]:
    with Client(admin_config(api_url)) as c:
        yield c


# --------------------------------------------------------------------------- apply

def test_apply_create_configured_unchanged(api_url: str, tmp_path: Path, client: Client) -> None:
    f = tmp_path / "svc.yaml"
    f.write_text(svc_yaml(extra_labels={"tier": "fe"}))
    assert ok(api_url, "apply", "-f", str(f)) == "service/web created\n"
    assert ok(api_url, "apply", "-f", str(f)) == "service/web unchanged\n"

    live = client.get(SERVICE, "web", "default")
    cluster_ip = live["spec"]["clusterIP"]
    assert "kubectl.kubernetes.io/last-applied-configuration" in live["metadata"]["annotations"]

    f.write_text(svc_yaml(port=81))  # port changed, label "tier" removed
    assert ok(api_url, "apply", "-f", str(f)) == "service/web configured\n"
    live = client.get(SERVICE, "web", "default")
    assert [p["port"] for p in live["spec"]["ports"]] == [81]
    assert live["metadata"]["labels"] == {"app": "web"}
    assert live["spec"]["clusterIP"] == cluster_ip  # server-owned fields untouched
    assert ok(api_url, "apply", "-f", str(f)) == "service/web unchanged\n"


def test_apply_node_port_service_keeps_its_node_port(api_url: str, tmp_path: Path,
                                                     client: Client) -> None:
    f = tmp_path / "np.yaml"
    f.write_text(svc_yaml("np").replace("spec:\n", "spec:\n  type: NodePort\n"))
    ok(api_url, "apply", "-f", str(f))
    node_port = client.get(SERVICE, "np", "default")["spec"]["ports"][0]["nodePort"]
    f.write_text(svc_yaml("np").replace("spec:\n", "spec:\n  type: NodePort\n")
                 .replace("targetPort: 8080", "targetPort: 9090"))
    assert ok(api_url, "apply", "-f", str(f)) == "service/np configured\n"
    port = client.get(SERVICE, "np", "default")["spec"]["ports"][0]
    assert (port["targetPort"], port["nodePort"]) == (9090, node_port)
    assert ok(api_url, "apply", "-f", str(f)) == "service/np unchanged\n"


def test_apply_multi_document_list_directory_and_stdin(api_url: str, tmp_path: Path,
                                                       client: Client) -> None:
    d = tmp_path / "dir"
    d.mkdir()
    (d / "1-ns.yaml").write_text("apiVersion: v1\nkind: Namespace\nmetadata:\n  name: team\n")
    (d / "2-svcs.yaml").write_text(
        "---\n" + svc_yaml("a").replace("metadata:\n", "metadata:\n  namespace: team\n")
        + "---\n---\n" + svc_yaml("b"))
    out = ok(api_url, "-n", "team", "apply", "-f", str(d))
    assert out == "namespace/team created\nservice/a created\nservice/b created\n"
    assert client.get(SERVICE, "b", "team")["metadata"]["namespace"] == "team"

    listed = ("apiVersion: v1\nkind: List\nitems:\n"
              "- {apiVersion: v1, kind: Service, metadata: {name: c},"
              " spec: {ports: [{port: 53, protocol: UDP}]}}\n")
    assert ok(api_url, "apply", "-n", "team", "-f", "-", input=listed) == "service/c created\n"
    assert ok(api_url, "get", "svc", "-n", "team", "-o", "name").splitlines() == \
        ["service/a", "service/b", "service/c"]


# --------------------------------------------------------------------------- get

def test_get_tables_and_formats(api_url: str, tmp_path: Path) -> None:
    f = tmp_path / "svcs.yaml"
    f.write_text(svc_yaml("web") + "---\n" + svc_yaml("db", port=5432))
    ok(api_url, "apply", "-f", str(f))

    out = ok(api_url, "get", "svc")
    lines = out.splitlines()
    assert cells(lines[0]) == ["NAME", "TYPE", "CLUSTER-IP", "EXTERNAL-IP", "PORT(S)", "AGE"]
    assert re.match(r"^NAME {3,}TYPE {3,}CLUSTER-IP {3,}EXTERNAL-IP {3,}PORT\(S\) {3,}AGE$",
                    lines[0])
    [web] = rows_named(out, "web")
    assert web[1] == "ClusterIP"
    assert web[2].startswith("10.")
    assert web[3:5] == ["<none>", "80/TCP"]
    assert re.fullmatch(r"\d+s", web[5])

    wide = ok(api_url, "get", "svc", "web", "-o", "wide", "--show-labels")
    assert cells(wide.splitlines()[0])[-2:] == ["SELECTOR", "LABELS"]
    assert rows_named(wide, "web")[0][-2:] == ["app=web", "app=web"]

    doc = yaml.safe_load(ok(api_url, "get", "svc", "web", "-o", "yaml"))
    assert (doc["kind"], doc["apiVersion"], doc["metadata"]["name"]) == ("Service", "v1", "web")
    listed = json.loads(ok(api_url, "get", "svc", "-l", "app=db", "-o", "json"))
    assert listed["kind"] == "List"
    assert [i["metadata"]["name"] for i in listed["items"]] == ["db"]
    assert listed["items"][0]["kind"] == "Service"

    assert ok(api_url, "get", "svc", "-l", "app in (web,db)", "-o", "name").splitlines() == \
        ["service/db", "service/web"]
    assert ok(api_url, "get", "svc/web", "svc/db", "-o", "name").splitlines() == \
        ["service/web", "service/db"]
    assert ok(api_url, "get", "svc", "--field-selector", "metadata.name=db",
              "-o", "name") == "service/db\n"

    every = ok(api_url, "get", "svc", "-A")
    assert cells(every.splitlines()[0])[:2] == ["NAMESPACE", "NAME"]
    assert rows_named(every, "web", column=1)[0][0] == "default"


def test_get_empty_all_and_other_kinds(api_url: str, tmp_path: Path) -> None:
    result = mpctl(api_url, "get", "svc", "-n", "nothing-here")
    assert result.returncode == 0
    assert result.stdout == ""
    assert result.stderr == "No resources found in nothing-here namespace.\n"

    ns = ok(api_url, "get", "ns")
    assert cells(ns.splitlines()[0]) == ["NAME", "STATUS", "AGE"]
    assert rows_named(ns, "default")[0][1] == "Active"

    nodes = mpctl(api_url, "get", "no")  # no node agents here: usually none
    assert nodes.returncode == 0
    if nodes.stdout:
        assert cells(nodes.stdout.splitlines()[0]) == ["NAME", "STATUS", "ROLES", "AGE", "VERSION"]
    else:
        assert nodes.stderr == "No resources found\n"

    f = tmp_path / "s.yaml"
    f.write_text(svc_yaml("alls"))
    ok(api_url, "apply", "-f", str(f))
    everything = ok(api_url, "get", "all")
    assert "service/alls" in everything


def test_get_endpointslices(api_url: str, client: Client) -> None:
    client.create(ENDPOINTSLICE, endpoint_slice("web-abc", "web", ["10.244.1.5", "10.244.2.3"]),
                  "default")
    out = ok(api_url, "get", "endpointslices")
    assert cells(out.splitlines()[0]) == ["NAME", "ADDRESSTYPE", "PORTS", "ENDPOINTS", "AGE"]
    assert rows_named(out, "web-abc")[0][1:4] == ["IPv4", "8080", "10.244.1.5,10.244.2.3"]


# --------------------------------------------------------------------------- describe

def endpoint_slice(name: str, service: str, addresses: list[str]) -> dict:
    return {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
            "metadata": {"name": name, "labels": {"kubernetes.io/service-name": service}},
            "addressType": "IPv4",
            "ports": [{"name": "", "port": 8080, "protocol": "TCP"}],
            "endpoints": [{"addresses": [a], "conditions": {"ready": True}} for a in addresses]}


def test_describe_service_with_endpoint_slice(api_url: str, tmp_path: Path,
                                              client: Client) -> None:
    f = tmp_path / "svc.yaml"
    f.write_text(svc_yaml())
    ok(api_url, "apply", "-f", str(f))
    client.create(ENDPOINTSLICE, endpoint_slice("web-x1", "web", ["10.244.1.5"]), "default")
    client.create(ENDPOINTSLICE, endpoint_slice("other-x1", "other", ["10.244.9.9"]), "default")
    out = ok(api_url, "describe", "svc", "web")
    lines = out.splitlines()
    assert lines[0].split() == ["Name:", "web"]
    assert "Namespace:" in lines[1] and lines[1].endswith("default")
    assert re.search(r"^Selector: +app=web$", out, re.M)
    assert re.search(r"^Type: +ClusterIP$", out, re.M)
    assert re.search(r"^Port: +<unset>  80/TCP$", out, re.M)
    assert re.search(r"^TargetPort: +8080/TCP$", out, re.M)
    assert re.search(r"^Endpoints: +10\.244\.1\.5:8080$", out, re.M)
    assert "10.244.9.9" not in out
    assert re.search(r"^Events: +<none>$", out, re.M)
    # the applied configuration is not shown, as in kubectl
    assert "last-applied-configuration" not in out


def test_secret_tables_and_describe_without_values(api_url: str) -> None:
    secret = ("apiVersion: v1\nkind: Secret\nmetadata: {name: db}\n"
              "stringData: {password: s3cr3t!, user: admin}\n")
    ok(api_url, "apply", "-f", "-", input=secret)
    assert table(ok(api_url, "get", "secret", "db"))[0] == ["NAME", "TYPE", "DATA", "AGE"]
    assert table(ok(api_url, "get", "secret", "db"))[1][:3] == ["db", "Opaque", "2"]
    out = ok(api_url, "describe", "secret", "db")
    assert "s3cr3t" not in out and "admin" not in out
    assert re.search(r"^password: +7 bytes$", out, re.M)
    assert yaml.safe_load(ok(api_url, "get", "secret", "db", "-o", "yaml"))["data"] == {
        "password": "czNjcjN0IQ==", "user": "YWRtaW4="}


# --------------------------------------------------------------------------- delete

def test_delete_by_name_and_by_file(api_url: str, tmp_path: Path) -> None:
    f = tmp_path / "svcs.yaml"
    f.write_text(svc_yaml("web") + "---\n" + svc_yaml("db"))
    ok(api_url, "apply", "-f", str(f))

    assert ok(api_url, "delete", "svc", "web") == 'service "web" deleted\n'
    result = mpctl(api_url, "get", "svc", "web")
    assert result.returncode == 1
    assert result.stderr == 'Error from server (NotFound): services "web" not found\n'

    result = mpctl(api_url, "delete", "-f", str(f))
    assert result.returncode == 1
    assert result.stdout == 'service "db" deleted\n'
    assert result.stderr == 'Error from server (NotFound): services "web" not found\n'

    result = mpctl(api_url, "delete", "-f", str(f), "--ignore-not-found")
    assert (result.returncode, result.stdout, result.stderr) == (0, "", "")


def test_delete_waits_for_finalizers(api_url: str, client: Client) -> None:
    obj = {"apiVersion": "v1", "kind": "Service",
           "metadata": {"name": "held", "finalizers": ["example.com/hold"]},
           "spec": {"ports": [{"port": 80}]}}
    client.create(SERVICE, obj, "default")

    quick = mpctl(api_url, "delete", "svc", "held", "--wait=false")
    assert (quick.returncode, quick.stdout) == (0, 'service "held" deleted\n')
    assert client.get(SERVICE, "held", "default")["metadata"].get("deletionTimestamp")

    timed_out = mpctl(api_url, "delete", "svc", "held", "--timeout", "1s")
    assert timed_out.returncode == 1
    assert "timed out waiting for the condition on services/held" in timed_out.stderr

    # Lift the finalizer once mpctl's DELETE has been answered, so mpctl is waiting
    # (before that, the object would be gone and its DELETE a 404).
    answered = _deletes_answered(api_url)

    def release() -> None:
        wait_until(lambda: _deletes_answered(api_url) > answered, timeout=30,
                   what="mpctl's DELETE")
        client.patch(SERVICE, "held", {"metadata": {"finalizers": None}}, namespace="default")

    t = threading.Thread(target=release)
    t.start()
    waited = mpctl(api_url, "delete", "svc", "held", "--timeout", "30s")
    t.join()
    assert waited.returncode == 0, waited.stderr
    assert waited.stdout == 'service "held" deleted\n'
    with pytest.raises(NotFound):
        client.get(SERVICE, "held", "default")


def _deletes_answered(api_url: str) -> int:
    """Service DELETEs the API server has answered."""
    return _metric(api_url, "apiserver_request_total", 'verb="delete"', 'resource="services"')


def _metric(api_url: str, name: str, *labels: str) -> int:
    """The sum of the API server's ``name`` series whose labels include ``labels``."""
    text = httpx.get(f"{api_url}/metrics", timeout=5, verify=admin_tls()).text
    return sum(int(float(line.rsplit(" ", 1)[1])) for line in text.splitlines()
               if line.split("{")[0].split(" ")[0] == name
               and all(label in line for label in labels))


# --------------------------------------------------------------------------- errors

def test_error_lines_and_exit_codes(api_url: str, tmp_path: Path) -> None:
    result = mpctl(api_url, "describe", "svc", "nope")
    assert (result.returncode, result.stderr) == \
        (1, 'Error from server (NotFound): services "nope" not found\n')

    bad = tmp_path / "bad.yaml"
    bad.write_text(svc_yaml("bad", port=0))
    result = mpctl(api_url, "apply", "-f", str(bad))
    assert result.returncode == 1
    assert result.stderr.startswith(
        f'Error from server (Invalid): error when creating "{bad}": Service "bad" is invalid: ')
    assert "spec.ports[0].port" in result.stderr
    assert result.stderr.count("\n") == 1

    broken = tmp_path / "broken.yaml"
    broken.write_text("kind: Service\nmetadata:\n  name: x\n bad")
    result = mpctl(api_url, "apply", "-f", str(broken))
    assert result.returncode == 1
    assert result.stderr.startswith(f"error: error parsing {broken}: yaml: line ")

    result = mpctl(api_url, "get", "bogus")
    assert (result.returncode, result.stderr) == \
        (1, 'error: the server doesn\'t have a resource type "bogus"\n')

    result = mpctl(api_url, "apply", "-f", str(tmp_path / "missing.yaml"))
    assert result.returncode == 1 and result.stderr.startswith("error: the path ")

    result = mpctl(api_url, "get", "svc", "-o", "xml")
    assert result.returncode == 1 and result.stderr.startswith("error: unable to match a printer")

    result = mpctl(api_url, "logs", "web")
    assert (result.returncode, result.stderr) == \
        (1, 'Error from server (NotFound): pods "web" not found\n')

    result = mpctl(api_url, "exec", "web")
    assert (result.returncode, result.stderr) == \
        (1, 'Error from server (NotFound): pods "web" not found\n')


def test_unreachable_server() -> None:
    url = f"http://127.0.0.1:{free_port()}"
    result = mpctl(url, "get", "svc")
    assert result.returncode == 1
    assert result.stdout == ""
    assert result.stderr.startswith(f"error: cannot reach the API server at {url}: ")
    assert result.stderr.count("\n") == 1


# --------------------------------------------------------------------------- watch

class Lines:
    """A subprocess's stdout read line by line in a thread, with deadlines."""

    def __init__(self, proc: subprocess.Popen[str]) -> None:
        self.q: queue.Queue[str | None] = queue.Queue()
        self.proc = proc
        threading.Thread(target=self._pump, daemon=True).start()

    def _pump(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.q.put(line)
        self.q.put(None)

    def until(self, predicate, timeout: float = 15.0) -> list[str]:
        seen: list[str] = []
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                line = self.q.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                break
            if line is None:
                break
            seen.append(line)
            if predicate(line):
                return seen
        raise AssertionError(f"no matching line within {timeout}s; got {seen!r}")


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_get_watch_prints_rows_for_new_objects(api_url: str, client: Client,
                                               sig: signal.Signals) -> None:
    client.create(SERVICE, {"apiVersion": "v1", "kind": "Service",
                            "metadata": {"name": "before", "labels": {"w": "1"}},
                            "spec": {"ports": [{"port": 80}]}}, "default")
    proc = subprocess.Popen([MPCTL, "--server", api_url, "--kubeconfig", admin_kubeconfig(),
                             "get", "svc", "-l", "w=1", "-w"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env())
    try:
        lines = Lines(proc)
        first = lines.until(lambda line: line.startswith("before "))
        assert first[0].startswith("NAME ")
        client.create(SERVICE, {"apiVersion": "v1", "kind": "Service",
                                "metadata": {"name": "after", "labels": {"w": "1"}},
                                "spec": {"ports": [{"port": 81}]}}, "default")
        row = lines.until(lambda line: line.startswith("after "))[-1]
        assert cells(row)[4] == "81/TCP"
        # columns keep the widths of the first table (the same TYPE column start)
        assert row.index("ClusterIP") == first[-1].index("ClusterIP")
        client.delete(SERVICE, "after", "default")
        lines.until(lambda line: line.startswith("after "))
    finally:
        proc.send_signal(sig)
        try:
            code = proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            raise
    stderr = proc.stderr.read() if proc.stderr else ""
    assert code == 0, stderr
    assert "Traceback" not in stderr


def test_get_watch_single_object_and_watch_only(api_url: str, client: Client) -> None:
    watches = _metric(api_url, "apiserver_watch_started_total")
    proc = subprocess.Popen([MPCTL, "--server", api_url, "--kubeconfig", admin_kubeconfig(),
                             "get", "svc", "solo", "--watch-only",
                             "-o", "name"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env())
    try:
        lines = Lines(proc)
        wait_until(lambda: _metric(api_url, "apiserver_watch_started_total") > watches,
                   timeout=30, what="mpctl's watch to start")
        assert lines.q.empty()  # the list before the watch printed nothing
        for name in ("other", "solo"):
            client.create(SERVICE, {"apiVersion": "v1", "kind": "Service",
                                    "metadata": {"name": name},
                                    "spec": {"ports": [{"port": 80}]}}, "default")
        assert lines.until(lambda line: "solo" in line) == ["service/solo\n"]
    finally:
        proc.terminate()
        code = proc.wait(timeout=10)
    assert code == 0


def test_config_from_environment(api_url: str) -> None:
    e = env()
    e["MINIPLANE_SERVER"] = api_url
    result = subprocess.run([MPCTL, "--kubeconfig", admin_kubeconfig(), "get", "ns", "-o", "name"],
                            capture_output=True, text=True,
                            env=e, timeout=30)
    assert result.returncode == 0, result.stderr
    assert "namespace/default" in result.stdout.splitlines()


def test_create_server_side_apply_label_and_annotate(api_url: str) -> None:
    manifest = ("apiVersion: v1\nkind: Service\nmetadata: {name: made}\n"
                "spec:\n  ports: [{port: 80}]\n")
    assert ok(api_url, "create", "-f", "-", input=manifest).strip() == "service/made created"
    again = mpctl(api_url, "create", "-f", "-", input=manifest)
    assert again.returncode == 1
    assert again.stderr.strip() == ('Error from server (AlreadyExists): error when creating '
                                    '"STDIN": services "made" already exists')

    ssa = manifest.replace("made", "ssa")
    out = ok(api_url, "apply", "--server-side", "-f", "-", input=ssa)
    assert out.strip() == "service/ssa serverside-applied"
    with Client(admin_config(api_url)) as client:
        managed = client.get(SERVICE, "ssa", "default")["metadata"]["managedFields"]
    assert [(m["manager"], m["operation"]) for m in managed] == [("mpctl", "Apply")]

    assert ok(api_url, "label", "svc", "made", "tier=fe").strip() == "service/made labeled"
    refused = mpctl(api_url, "label", "svc/made", "tier=be")
    assert refused.returncode == 1
    assert refused.stderr.strip() == "error: 'tier' already has a value (fe), and --overwrite " \
                                     "is false"
    ok(api_url, "label", "svc/made", "tier=be", "--overwrite")
    assert ok(api_url, "annotate", "svc", "made", "note=hi").strip() == "service/made annotated"
    with Client(admin_config(api_url)) as client:
        meta = client.get(SERVICE, "made", "default")["metadata"]
    assert meta["labels"] == {"tier": "be"} and meta["annotations"]["note"] == "hi"
    ok(api_url, "label", "svc", "made", "tier-")
    with Client(admin_config(api_url)) as client:
        assert not client.get(SERVICE, "made", "default")["metadata"].get("labels")
