"""mpctl's printers: kubectl's tables, durations, cells and -o formats, as pure functions."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
import yaml

from apimachinery import tables as t
from apimachinery.kinds import CONFIGMAP, ENDPOINTSLICE, NAMESPACE, NODE, POD, SECRET, SERVICE
from mpctl import printers as p
from mpctl.main import parse_duration, parse_targets
from mpctl.tabwriter import TableWriter, format_table, tabwrite

NOW = datetime(2024, 1, 1, 12, 0, 0, tzinfo=UTC)


def ts(delta: timedelta) -> str:
    return (NOW - delta).strftime("%Y-%m-%dT%H:%M:%SZ")


# --------------------------------------------------------------------------- durations

@pytest.mark.parametrize(("seconds", "text"), [
    (-5, "<invalid>"),
    (-2, "<invalid>"),
    (-1.5, "0s"),
    (-1, "0s"),
    (0, "0s"),
    (0.9, "0s"),
    (45, "45s"),
    (90, "90s"),
    (119, "119s"),
    (120, "2m"),
    (121, "2m1s"),
    (5 * 60 + 3, "5m3s"),
    (9 * 60 + 59, "9m59s"),
    (10 * 60, "10m"),
    (10 * 60 + 59, "10m"),
    (45 * 60, "45m"),
    (179 * 60 + 59, "179m"),
    (3 * 3600, "3h"),
    (3 * 3600 + 5 * 60, "3h5m"),
    (7 * 3600 + 59 * 60 + 59, "7h59m"),
    (8 * 3600, "8h"),
    (30 * 3600, "30h"),
    (47 * 3600 + 3599, "47h"),
    (48 * 3600, "2d"),
    (5 * 86400 + 3 * 3600, "5d3h"),
    (7 * 86400 + 23 * 3600, "7d23h"),
    (8 * 86400, "8d"),
    (45 * 86400, "45d"),
    (729 * 86400, "729d"),
    (730 * 86400, "2y"),
    (3 * 365 * 86400 + 45 * 86400, "3y45d"),
    (8 * 365 * 86400, "8y"),
    (20 * 365 * 86400 + 100 * 86400, "20y"),
])
def test_human_duration(seconds: float, text: str) -> None:
    assert t.human_duration(seconds) == text
    assert t.human_duration(timedelta(seconds=seconds)) == text


def test_age_of_timestamps() -> None:
    assert t.age(ts(timedelta(minutes=5, seconds=2)), NOW) == "5m2s"
    assert t.age("2024-01-01T11:59:15.123456Z", NOW) == "44s"
    assert t.age("2024-01-01T13:59:15+02:00", NOW) == "45s"
    assert t.age(None, NOW) == "<unknown>"
    assert t.age("not a time", NOW) == "<unknown>"
    assert t.until("2024-01-01T12:00:30Z", NOW) == "30s"
    assert t.until(None, NOW) == "<unknown>"


def test_rfc1123z() -> None:
    assert t.rfc1123z("2024-01-01T12:00:00Z") == "Mon, 01 Jan 2024 12:00:00 +0000"
    assert t.rfc1123z(None) == ""


# --------------------------------------------------------------------------- tabwriter

def test_table_columns_padded_by_three_and_last_column_bare() -> None:
    assert format_table([["NAME", "AGE"], ["a-long-name", "5m"]]) == (
        "NAME          AGE\n"
        "a-long-name   5m\n")


def test_table_min_width_six() -> None:
    assert format_table([["A", "B", "C"], ["x", "y", "z"]]) == "A     B     C\nx     y     z\n"


def test_table_writer_remembers_widths_between_batches() -> None:
    writer = TableWriter()
    assert writer.format([["NAME", "AGE"], ["web", "1s"]]) == "NAME   AGE\nweb    1s\n"
    # a later, longer row widens the column; an even later short one keeps the width
    assert writer.format([["a-longer-name", "2s"]]) == "a-longer-name   2s\n"
    assert writer.format([["db", "3s"]]) == "db              3s\n"


def test_tabwrite_aligns_blocks_of_consecutive_lines_only() -> None:
    text = ("Name:\tweb\n"
            "Namespace:\tdefault\n"
            "Containers:\n"
            "  c:\n"
            "    Image:\tbusybox\n"
            "    Restart Count:\t0\n")
    assert tabwrite(text) == ("Name:       web\n"
                              "Namespace:  default\n"
                              "Containers:\n"
                              "  c:\n"
                              "    Image:          busybox\n"
                              "    Restart Count:  0\n")


def test_tabwrite_nested_columns() -> None:
    # the 3-cell line forms its own block for the second column
    text = "Port:\t<unset>\t80/TCP\nTargetPort:\t8080/TCP\n"
    assert tabwrite(text) == ("Port:        <unset>  80/TCP\n"
                              "TargetPort:  8080/TCP\n")


# --------------------------------------------------------------------------- services

SERVICES = [
    {"metadata": {"name": "kubernetes", "namespace": "default",
                  "creationTimestamp": ts(timedelta(minutes=5)),
                  "labels": {"provider": "kubernetes", "component": "apiserver"}},
     "spec": {"type": "ClusterIP", "clusterIP": "10.96.0.1", "clusterIPs": ["10.96.0.1"],
              "ports": [{"name": "https", "port": 443, "protocol": "TCP",
                         "targetPort": 6443}]}},
    {"metadata": {"name": "web", "namespace": "default",
                  "creationTimestamp": ts(timedelta(seconds=45))},
     "spec": {"type": "NodePort", "clusterIPs": ["10.96.12.7"], "selector": {"app": "web"},
              "ports": [{"port": 80, "protocol": "TCP", "nodePort": 30080},
                        {"port": 53, "protocol": "UDP"}]}},
    {"metadata": {"name": "lb", "namespace": "prod", "creationTimestamp": ts(timedelta(days=31))},
     "spec": {"type": "LoadBalancer", "clusterIPs": ["10.96.3.3"],
              "ports": [{"port": 443, "protocol": "TCP", "nodePort": 31443}]}},
    {"metadata": {"name": "ext", "namespace": "prod", "creationTimestamp": ts(timedelta(hours=3))},
     "spec": {"type": "ExternalName", "externalName": "example.com"}},
]


def test_service_table() -> None:
    assert p.print_table(SERVICE, SERVICES, NOW) == (
        "NAME         TYPE           CLUSTER-IP   EXTERNAL-IP   PORT(S)               AGE\n"
        "kubernetes   ClusterIP      10.96.0.1    <none>        443/TCP               5m\n"
        "web          NodePort       10.96.12.7   <none>        80:30080/TCP,53/UDP   45s\n"
        "lb           LoadBalancer   10.96.3.3    <pending>     443:31443/TCP         31d\n"
        "ext          ExternalName   <none>       example.com   <none>                3h\n")


def test_service_table_wide_all_namespaces_labels() -> None:
    assert p.print_table(SERVICE, SERVICES[:2], NOW, wide=True, all_namespaces=True,
                         show_labels=True) == (
        "NAMESPACE   NAME         TYPE        CLUSTER-IP   EXTERNAL-IP   PORT(S)               AGE   SELECTOR   LABELS\n"
        "default     kubernetes   ClusterIP   10.96.0.1    <none>        443/TCP               5m    <none>     component=apiserver,provider=kubernetes\n"
        "default     web          NodePort    10.96.12.7   <none>        80:30080/TCP,53/UDP   45s   app=web    <none>\n")


def test_service_ports_cell() -> None:
    assert t.service_ports([]) == "<none>"
    assert t.service_ports(None) == "<none>"
    assert t.service_ports([{"port": 80}]) == "80/TCP"
    assert t.service_ports([{"port": 80, "protocol": "TCP", "nodePort": 30080}]) == "80:30080/TCP"
    assert t.service_ports([{"port": 53, "protocol": "UDP"},
                            {"port": 53, "protocol": "TCP"}]) == "53/UDP,53/TCP"


def test_service_external_ip_cell() -> None:
    def svc(spec: dict, status: dict | None = None) -> dict:
        return {"spec": spec, "status": status or {}}

    assert t.service_external_ip(svc({"type": "ClusterIP"})) == "<none>"
    assert t.service_external_ip(svc({"type": "ClusterIP", "externalIPs": ["1.2.3.4", "5.6.7.8"]})) \
        == "1.2.3.4,5.6.7.8"
    assert t.service_external_ip(svc({"type": "LoadBalancer"})) == "<pending>"
    ingress = {"loadBalancer": {"ingress": [{"ip": "9.9.9.9"}, {"hostname": "lb.example.com"}]}}
    assert t.service_external_ip(svc({"type": "LoadBalancer"}, ingress), wide=True) == \
        "9.9.9.9,lb.example.com"
    assert t.service_external_ip(svc({"type": "LoadBalancer"}, ingress)) == "9.9.9.9,lb.ex..."  # 16 wide
    assert t.service_external_ip(svc({"type": "LoadBalancer", "externalIPs": ["1.1.1.1"]},
                                     {"loadBalancer": {"ingress": [{"ip": "2.2.2.2"}]}})) == \
        "2.2.2.2,1.1.1.1"
    assert t.service_external_ip(svc({"type": "ExternalName", "externalName": "db.example"})) == \
        "db.example"
    assert t.service_external_ip(svc({"type": "Weird"})) == "<unknown>"


# --------------------------------------------------------------------------- pods

def pod(name: str, *, phase: str = "Running", statuses: list | None = None,
        containers: int = 1, deleting: bool = False, conditions: list | None = None,
        **extra: object) -> dict:
    obj: dict = {
        "metadata": {"name": name, "namespace": "default",
                     "creationTimestamp": ts(timedelta(minutes=3))},
        "spec": {"containers": [{"name": f"c{i}"} for i in range(containers)]},
        "status": {"phase": phase, "containerStatuses": statuses or [],
                   "conditions": conditions or []},
    }
    if deleting:
        obj["metadata"]["deletionTimestamp"] = ts(timedelta(seconds=1))
    for key, value in extra.items():
        obj["status"][key] = value
    return obj


RUNNING = {"name": "c0", "ready": True, "restartCount": 0,
           "state": {"running": {"startedAt": ts(timedelta(minutes=2))}}}


def test_pod_ready_status_restarts() -> None:
    assert t.pod_status(pod("a", statuses=[RUNNING]), NOW) == ("1/1", "Running", "0")
    not_ready = {**RUNNING, "ready": False}
    assert t.pod_status(pod("a", statuses=[not_ready], containers=2), NOW) == \
        ("0/2", "Running", "0")
    assert t.pod_status(pod("a", phase="Pending"), NOW) == ("0/1", "Pending", "0")


def test_pod_waiting_reason_and_restart_age() -> None:
    crashing = {"name": "c0", "ready": False, "restartCount": 4,
                "state": {"waiting": {"reason": "CrashLoopBackOff"}},
                "lastState": {"terminated": {"exitCode": 1,
                                             "finishedAt": ts(timedelta(seconds=75))}}}
    assert t.pod_status(pod("a", statuses=[crashing]), NOW) == \
        ("0/1", "CrashLoopBackOff", "4 (75s ago)")


def test_pod_terminated_reasons() -> None:
    done = {"name": "c0", "ready": False, "restartCount": 0,
            "state": {"terminated": {"exitCode": 0, "reason": "Completed"}}}
    assert t.pod_status(pod("a", phase="Succeeded", statuses=[done]), NOW)[1] == "Completed"
    killed = {"name": "c0", "ready": False, "restartCount": 0,
              "state": {"terminated": {"exitCode": 137, "signal": 9}}}
    assert t.pod_status(pod("a", phase="Failed", statuses=[killed]), NOW)[1] == "Signal:9"
    failed = {"name": "c0", "ready": False, "restartCount": 0,
              "state": {"terminated": {"exitCode": 3}}}
    assert t.pod_status(pod("a", phase="Failed", statuses=[failed]), NOW)[1] == "ExitCode:3"


def test_pod_terminating_and_node_lost() -> None:
    assert t.pod_status(pod("a", statuses=[RUNNING], deleting=True), NOW)[1] == "Terminating"
    assert t.pod_status(pod("a", phase="Succeeded", deleting=True), NOW)[1] == "Succeeded"
    assert t.pod_status(pod("a", deleting=True, reason="NodeLost"), NOW)[1] == "Unknown"


def test_pod_init_containers() -> None:
    obj = pod("a", phase="Pending")
    obj["spec"]["initContainers"] = [{"name": "i0"}, {"name": "i1"}]
    obj["status"]["initContainerStatuses"] = [
        {"name": "i0", "restartCount": 0, "state": {"terminated": {"exitCode": 0}}},
        {"name": "i1", "restartCount": 0, "state": {"running": {}}},
    ]
    assert t.pod_status(obj, NOW) == ("0/1", "Init:1/2", "0")
    obj["status"]["initContainerStatuses"][1] = {
        "name": "i1", "restartCount": 2, "state": {"waiting": {"reason": "CrashLoopBackOff"}}}
    assert t.pod_status(obj, NOW) == ("0/1", "Init:CrashLoopBackOff", "2")


def test_pod_table_wide() -> None:
    a = pod("web-1", statuses=[RUNNING], podIP="10.244.1.5",
            podIPs=[{"ip": "10.244.1.5"}])
    a["spec"]["nodeName"] = "node-1"
    b = pod("web-2", phase="Pending")
    b["spec"]["readinessGates"] = [{"conditionType": "x/ready"}]
    b["status"]["conditions"] = [{"type": "x/ready", "status": "True"}]
    assert p.print_table(POD, [a, b], NOW, wide=True) == (
        "NAME    READY   STATUS    RESTARTS   AGE   IP           NODE     NOMINATED NODE   READINESS GATES\n"
        "web-1   1/1     Running   0          3m    10.244.1.5   node-1   <none>           <none>\n"
        "web-2   0/1     Pending   0          3m    <none>       <none>   <none>           1/1\n")


# --------------------------------------------------------------------------- nodes, namespaces

def node(name: str, ready: str | None, **spec: object) -> dict:
    conditions = [{"type": "MemoryPressure", "status": "False"}]
    if ready is not None:
        conditions.append({"type": "Ready", "status": ready})
    return {"metadata": {"name": name, "creationTimestamp": ts(timedelta(hours=30)),
                         "labels": {"node-role.kubernetes.io/control-plane": "",
                                    "kubernetes.io/role": "worker"}},
            "spec": dict(spec),
            "status": {"conditions": conditions,
                       "addresses": [{"type": "InternalIP", "address": "10.250.0.2"},
                                     {"type": "Hostname", "address": name}],
                       "nodeInfo": {"kubeletVersion": "v1.36.0-miniplane",
                                    "osImage": "Debian", "kernelVersion": "6.1.0"}}}


def test_node_status_cell() -> None:
    assert t.node_status(node("a", "True")) == "Ready"
    assert t.node_status(node("a", "False")) == "NotReady"
    assert t.node_status(node("a", "Unknown")) == "NotReady"
    assert t.node_status(node("a", None)) == "Unknown"
    assert t.node_status(node("a", "True", unschedulable=True)) == "Ready,SchedulingDisabled"


def test_node_table_wide() -> None:
    plain = node("node-2", "True")
    plain["metadata"]["labels"] = {}
    assert p.print_table(NODE, [node("node-1", "True"), plain], NOW, wide=True) == (
        "NAME     STATUS   ROLES                  AGE   VERSION             INTERNAL-IP   EXTERNAL-IP   OS-IMAGE   KERNEL-VERSION   CONTAINER-RUNTIME\n"
        "node-1   Ready    control-plane,worker   30h   v1.36.0-miniplane   10.250.0.2    <none>        Debian     6.1.0            <unknown>\n"
        "node-2   Ready    <none>                 30h   v1.36.0-miniplane   10.250.0.2    <none>        Debian     6.1.0            <unknown>\n")


def test_namespace_table_all_namespaces_has_no_namespace_column() -> None:
    ns = {"metadata": {"name": "default", "creationTimestamp": ts(timedelta(days=5, hours=3))},
          "status": {"phase": "Active"}}
    assert p.print_table(NAMESPACE, [ns], NOW, all_namespaces=True) == (
        "NAME      STATUS   AGE\n"
        "default   Active   5d3h\n")


# --------------------------------------------------------------------------- endpointslices

def test_endpointslice_cells() -> None:
    assert t.endpointslice_ports([]) == "<unset>"
    assert t.endpointslice_ports([{"port": 80}, {"name": "dns"}, {}]) == "80,dns,*"
    assert t.endpointslice_ports([{"port": i} for i in range(1, 6)]) == "1,2,3 + 2 more..."
    assert t.endpointslice_endpoints([]) == "<unset>"
    assert t.endpointslice_endpoints(None) == "<unset>"
    eps = [{"addresses": [f"10.0.0.{i}"]} for i in range(1, 4)]
    assert t.endpointslice_endpoints(eps) == "10.0.0.1,10.0.0.2,10.0.0.3"
    eps.append({"addresses": ["10.0.0.4", "10.0.0.5"]})
    assert t.endpointslice_endpoints(eps) == "10.0.0.1,10.0.0.2,10.0.0.3 + 2 more..."


def test_endpointslice_table() -> None:
    eps = {"metadata": {"name": "web-abcde", "namespace": "default",
                        "creationTimestamp": ts(timedelta(seconds=10))},
           "addressType": "IPv4", "ports": [{"name": "", "port": 8080, "protocol": "TCP"}],
           "endpoints": [{"addresses": ["10.244.1.5"]}, {"addresses": ["10.244.2.3"]}]}
    assert p.print_table(ENDPOINTSLICE, [eps], NOW) == (
        "NAME        ADDRESSTYPE   PORTS   ENDPOINTS               AGE\n"
        "web-abcde   IPv4          8080    10.244.1.5,10.244.2.3   10s\n")


def test_kind_prefix_for_several_kinds() -> None:
    rows = t.table_rows(ENDPOINTSLICE, [{"metadata": {"name": "x"}}], NOW, kind_prefix=True)
    assert rows[1][0] == "endpointslice.discovery.k8s.io/x"
    assert t.table_rows(SERVICE, SERVICES[:1], NOW, kind_prefix=True)[1][0] == \
        "service/kubernetes"


def test_no_resources_message() -> None:
    assert p.no_resources_message("default", True) == "No resources found in default namespace."
    assert p.no_resources_message(None, True) == "No resources found"
    assert p.no_resources_message("default", False) == "No resources found"


# --------------------------------------------------------------------------- -o formats

def test_clean_object_fills_kind_and_hides_managed_fields() -> None:
    obj = {"metadata": {"name": "web", "managedFields": [{"manager": "x"}]}, "spec": {}}
    clean = p.clean_object(obj, SERVICE)
    assert clean == {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web"},
                     "spec": {}}
    assert "managedFields" in obj["metadata"]  # the input is not modified


def test_yaml_output_sorted_block_style() -> None:
    obj = {"spec": {"ports": [{"port": 80, "name": "http"}]}, "kind": "Service",
           "metadata": {"creationTimestamp": "2024-01-01T12:00:00Z", "name": "web",
                        "resourceVersion": "6", "uid": "",
                        "annotations": {"a": '{"x":1}\n'}}, "apiVersion": "v1"}
    text = p.to_yaml(obj)
    assert text == (
        "apiVersion: v1\n"
        "kind: Service\n"
        "metadata:\n"
        "  annotations:\n"
        "    a: |\n"
        "      {\"x\":1}\n"
        "  creationTimestamp: \"2024-01-01T12:00:00Z\"\n"
        "  name: web\n"
        "  resourceVersion: \"6\"\n"
        "  uid: \"\"\n"
        "spec:\n"
        "  ports:\n"
        "  - name: http\n"
        "    port: 80\n")
    meta = yaml.safe_load(text)["metadata"]
    assert (meta["creationTimestamp"], meta["resourceVersion"], meta["uid"]) == \
        ("2024-01-01T12:00:00Z", "6", "")


def test_json_output_and_list_wrapper() -> None:
    doc = p.as_list([{"kind": "Service"}])
    text = p.to_json(doc)
    assert text.endswith("}\n")
    assert '\n    "items": [' in text
    assert json.loads(text) == {"apiVersion": "v1", "items": [{"kind": "Service"}],
                                "kind": "List", "metadata": {"resourceVersion": ""}}


def test_name_output() -> None:
    assert p.to_name(SERVICE, {"metadata": {"name": "web"}}) == "service/web"
    assert p.to_name(ENDPOINTSLICE, {"metadata": {"name": "w-1"}}) == \
        "endpointslice.discovery.k8s.io/w-1"


# --------------------------------------------------------------------------- argument helpers

def test_parse_targets() -> None:
    assert [(t.kind, t.names) for t in parse_targets(["svc"])] == [(SERVICE, ())]
    assert [(t.kind, t.names) for t in parse_targets(["svc", "a", "b"])] == \
        [(SERVICE, ("a", "b"))]
    assert [t.kind for t in parse_targets(["all"])] == [POD, SERVICE]
    assert [t.kind for t in parse_targets(["svc,po,svc"])] == [SERVICE, POD]
    assert [(t.kind, t.names) for t in parse_targets(["svc/web", "po/x", "svc/db"])] == \
        [(SERVICE, ("web", "db")), (POD, ("x",))]
    assert parse_targets(["endpointslices"])[0].kind is ENDPOINTSLICE


def test_parse_targets_errors() -> None:
    from apimachinery.kinds import UnknownKind
    from mpctl.main import CliError

    with pytest.raises(CliError):
        parse_targets(["svc/web", "db"])
    with pytest.raises(UnknownKind, match='resource type "bogus"'):
        parse_targets(["bogus"])


@pytest.mark.parametrize(("text", "seconds"), [
    ("60", 60.0), ("60s", 60.0), ("2m", 120.0), ("1h30m", 5400.0), ("500ms", 0.5),
    ("1m30s", 90.0), ("0.5", 0.5),
])
def test_parse_duration(text: str, seconds: float) -> None:
    assert parse_duration(text) == seconds


def test_parse_duration_rejects_garbage() -> None:
    import argparse

    for bad in ("", "abc", "5x", "m"):
        with pytest.raises(argparse.ArgumentTypeError):
            parse_duration(bad)


def test_configmap_and_secret_rows_count_keys_never_show_values() -> None:
    """kubectl's printConfigMap (``data`` and ``binaryData`` keys) and printSecret."""
    created = {"name": "app", "creationTimestamp": ts(timedelta(minutes=5))}
    cm = {"metadata": created, "data": {"a": "1", "b": "2"}, "binaryData": {"c": "AA=="}}
    assert t.table_rows(CONFIGMAP, [cm, {"metadata": created}], NOW) == [
        ["NAME", "DATA", "AGE"], ["app", "3", "5m"], ["app", "0", "5m"]]
    secret = {"metadata": created, "type": "kubernetes.io/tls",
              "data": {"tls.crt": "Yw==", "tls.key": "aw=="}}
    assert t.table_rows(SECRET, [secret], NOW) == [
        ["NAME", "TYPE", "DATA", "AGE"], ["app", "kubernetes.io/tls", "2", "5m"]]
