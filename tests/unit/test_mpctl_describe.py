"""mpctl describe: kubectl's describe layout for Services, Pods, Nodes, slices, ConfigMaps
and Secrets, as pure text."""

from __future__ import annotations

from datetime import UTC, datetime

from apimachinery.kinds import (
    CONFIGMAP,
    ENDPOINTSLICE,
    EVENT,
    NAMESPACE,
    NODE,
    POD,
    SECRET,
    SERVICE,
)
from mpctl import describe as d
from mpctl.apply import LAST_APPLIED

NOW = datetime(2024, 1, 1, 12, 0, 0, tzinfo=UTC)

SERVICE_OBJ = {
    "metadata": {"name": "web", "namespace": "default", "labels": {"tier": "fe", "app": "web"},
                 "annotations": {LAST_APPLIED: "{}\n", "note": "hi"}},
    "spec": {"type": "NodePort", "selector": {"app": "web"}, "clusterIP": "10.96.0.12",
             "clusterIPs": ["10.96.0.12"], "ipFamilies": ["IPv4"],
             "ipFamilyPolicy": "SingleStack", "sessionAffinity": "None",
             "externalTrafficPolicy": "Cluster", "internalTrafficPolicy": "Cluster",
             "ports": [{"name": "http", "port": 80, "targetPort": 8080, "protocol": "TCP",
                        "nodePort": 30080},
                       {"port": 53, "targetPort": "dns", "protocol": "UDP"}]},
}
SLICES = [{
    "metadata": {"name": "web-x"},
    "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}],
    "endpoints": [{"addresses": ["10.244.1.5"], "conditions": {"ready": True}},
                  {"addresses": ["10.244.2.3"]},
                  {"addresses": ["10.244.2.9"], "conditions": {"ready": False}}],
}]


def test_describe_service() -> None:
    assert d.describe(SERVICE, SERVICE_OBJ, NOW, events=[], slices=SLICES) == (
        "Name:                     web\n"
        "Namespace:                default\n"
        "Labels:                   app=web\n"
        "                          tier=fe\n"
        "Annotations:              note: hi\n"
        "Selector:                 app=web\n"
        "Type:                     NodePort\n"
        "IP Family Policy:         SingleStack\n"
        "IP Families:              IPv4\n"
        "IP:                       10.96.0.12\n"
        "IPs:                      10.96.0.12\n"
        "Port:                     http  80/TCP\n"
        "TargetPort:               8080/TCP\n"
        "NodePort:                 http  30080/TCP\n"
        "Endpoints:                10.244.1.5:8080,10.244.2.3:8080\n"
        "Port:                     <unset>  53/UDP\n"
        "TargetPort:               dns/UDP\n"
        "Endpoints:                \n"
        "Session Affinity:         None\n"
        "External Traffic Policy:  Cluster\n"
        "Internal Traffic Policy:  Cluster\n"
        "Events:                   <none>\n")


def test_describe_service_without_slices_or_annotations() -> None:
    svc = {"metadata": {"name": "db", "namespace": "default"},
           "spec": {"type": "ClusterIP", "clusterIP": "10.96.0.5", "ports": [{"port": 5432}]}}
    text = d.describe(SERVICE, svc, NOW, events=[], slices=[])
    assert "Labels:            <none>\n" in text
    assert "Annotations:       <none>\n" in text
    assert "Port:              <unset>  5432/TCP\n" in text
    assert "TargetPort:        5432/TCP\n" in text
    assert "Endpoints:         <none>\n" in text
    assert text.endswith("Session Affinity:  None\nEvents:            <none>\n")


def test_format_endpoint_slices() -> None:
    assert d.format_endpoint_slices([], {"http"}) == "<none>"
    many = [{"ports": [{"name": "", "port": 80}],
             "endpoints": [{"addresses": [f"10.0.0.{i}"]} for i in range(1, 6)]}]
    assert d.format_endpoint_slices(many, {""}) == \
        "10.0.0.1:80,10.0.0.2:80,10.0.0.3:80 + 2 more..."
    headless = [{"endpoints": [{"addresses": ["10.0.0.1"]}, {"addresses": ["fd00::1"]}]}]
    assert d.format_endpoint_slices(headless, {""}) == "10.0.0.1,fd00::1"
    v6 = [{"ports": [{"name": "", "port": 80}], "endpoints": [{"addresses": ["fd00::1"]}]}]
    assert d.format_endpoint_slices(v6, {""}) == "[fd00::1]:80"
    assert d.format_endpoint_slices(v6, {"other"}) == ""


def test_describe_probe() -> None:
    assert d.describe_probe({"httpGet": {"path": "/healthz", "port": 8080, "scheme": "HTTP"},
                             "initialDelaySeconds": 3, "periodSeconds": 5}) == \
        "http-get http://:8080/healthz delay=3s timeout=1s period=5s #success=1 #failure=3"
    assert d.describe_probe({"exec": {"command": ["cat", "/tmp/ready"]}, "timeoutSeconds": 2,
                             "successThreshold": 1, "failureThreshold": 5}) == \
        "exec [cat /tmp/ready] delay=0s timeout=2s period=10s #success=1 #failure=5"
    assert d.describe_probe({"tcpSocket": {"port": 53}}) == \
        "tcp-socket :53 delay=0s timeout=1s period=10s #success=1 #failure=3"


POD_OBJ = {
    "metadata": {"name": "web-1", "namespace": "default", "labels": {"app": "web"}},
    "spec": {"nodeName": "node-1", "containers": [{
        "name": "web", "image": "python:3", "command": ["python3", "-m", "http.server"],
        "ports": [{"containerPort": 8080, "protocol": "TCP"}],
        "readinessProbe": {"httpGet": {"path": "/", "port": 8080}, "periodSeconds": 2},
        "env": [{"name": "A", "value": "1"}]}]},
    "status": {"phase": "Running", "hostIP": "10.250.0.2", "podIP": "10.244.1.5",
               "podIPs": [{"ip": "10.244.1.5"}], "startTime": "2024-01-01T11:59:50Z",
               "conditions": [{"type": "Ready", "status": "True"},
                              {"type": "PodScheduled", "status": "True"}],
               "containerStatuses": [{"name": "web", "ready": True, "restartCount": 0,
                                      "state": {"running": {"startedAt": "2024-01-01T11:59:52Z"}},
                                      "containerID": "mp://abc", "imageID": ""}]},
}
EVENTS = [
    {"type": "Normal", "reason": "Scheduled", "source": {"component": "default-scheduler"},
     "message": "Successfully assigned default/web-1 to node-1",
     "firstTimestamp": "2024-01-01T11:59:50Z", "lastTimestamp": "2024-01-01T11:59:50Z",
     "count": 1},
    {"type": "Warning", "reason": "Unhealthy", "source": {"component": "kubelet"},
     "message": "Readiness probe failed ", "firstTimestamp": "2024-01-01T11:50:00Z",
     "lastTimestamp": "2024-01-01T11:59:00Z", "count": 5},
]


def test_describe_pod() -> None:
    text = d.describe(POD, POD_OBJ, NOW, events=EVENTS)
    assert text.startswith(
        "Name:         web-1\n"
        "Namespace:    default\n"
        "Node:         node-1/10.250.0.2\n"
        "Start Time:   Mon, 01 Jan 2024 11:59:50 +0000\n"
        "Labels:       app=web\n"
        "Annotations:  <none>\n"
        "Status:       Running\n"
        "IP:           10.244.1.5\n"
        "IPs:\n"
        "  IP:  10.244.1.5\n"
        "Containers:\n"
        "  web:\n"
        "    Container ID:  mp://abc\n"
        "    Image:         python:3\n"
        "    Image ID:      \n"
        "    Port:          8080/TCP\n"
        "    Host Port:     0/TCP\n"
        "    Command:\n"
        "      python3\n"
        "      -m\n"
        "      http.server\n"
        "    State:          Running\n"
        "      Started:      Mon, 01 Jan 2024 11:59:52 +0000\n"
        "    Ready:          True\n"
        "    Restart Count:  0\n"
        "    Readiness:      http-get http://:8080/ delay=0s timeout=1s period=2s #success=1 "
        "#failure=3\n"
        "    Environment:\n"
        "      A:     1\n"
        "    Mounts:  <none>\n"
        "Conditions:\n"
        "  Type           Status\n"
        "  Ready          True \n"
        "  PodScheduled   True \n")
    # events sorted by last time seen, after a flush (their own alignment)
    assert text.endswith(
        "Events:\n"
        "  Type     Reason     Age                From               Message\n"
        "  ----     ------     ----               ----               -------\n"
        "  Warning  Unhealthy  60s (x5 over 10m)  kubelet            Readiness probe failed\n"
        "  Normal   Scheduled  10s                default-scheduler  Successfully assigned "
        "default/web-1 to node-1\n")


def test_describe_terminating_unscheduled_pod() -> None:
    obj = {"metadata": {"name": "p", "namespace": "default",
                        "deletionTimestamp": "2024-01-01T12:00:30Z",
                        "deletionGracePeriodSeconds": 30},
           "spec": {"containers": [{"name": "c", "image": "x"}]},
           "status": {"phase": "Pending"}}
    text = d.describe(POD, obj, NOW, events=[])
    assert "Node:                      <none>\n" in text
    assert "Status:                    Terminating (lasts 30s)\n" in text
    assert "Termination Grace Period:  30s\n" in text
    assert "IPs:                       <none>\n" in text
    assert "    Port:         <none>\n    Host Port:    <none>\n" in text


def test_describe_node() -> None:
    node = {"metadata": {"name": "node-1", "creationTimestamp": "2024-01-01T10:00:00Z",
                         "labels": {"kubernetes.io/hostname": "node-1"}},
            "spec": {"podCIDR": "10.244.1.0/24", "podCIDRs": ["10.244.1.0/24"]},
            "status": {"conditions": [{"type": "Ready", "status": "True",
                                       "lastHeartbeatTime": "2024-01-01T11:59:58Z",
                                       "lastTransitionTime": "2024-01-01T10:00:05Z",
                                       "reason": "NodeAgentReady", "message": "posting"}],
                       "addresses": [{"type": "InternalIP", "address": "10.250.0.2"},
                                     {"type": "Hostname", "address": "node-1"}],
                       "nodeInfo": {"kubeletVersion": "v1.36.0"}}}
    text = d.describe(NODE, node, NOW, events=[], pods=[POD_OBJ])
    assert text.startswith("Name:               node-1\nRoles:              <none>\n")
    assert ("Conditions:\n"
            "  Type    Status  LastHeartbeatTime                 LastTransitionTime"
            "                Reason           Message\n") in text
    assert "  Ready   True    Mon, 01 Jan 2024 11:59:58 +0000   " in text
    assert "Addresses:\n  InternalIP:  10.250.0.2\n  Hostname:    node-1\n" in text
    assert "PodCIDR:                      10.244.1.0/24\n" in text
    assert "Non-terminated Pods:          (1 in total)\n" in text
    assert text.endswith("Events:                       <none>\n")


def test_describe_namespace_slice_and_generic() -> None:
    ns = {"metadata": {"name": "team"}, "status": {"phase": "Active"}}
    assert d.describe(NAMESPACE, ns, NOW, events=[]) == (
        "Name:         team\n"
        "Labels:       <none>\n"
        "Annotations:  <none>\n"
        "Status:       Active\n"
        "Events:       <none>\n")
    eps = {"metadata": {"name": "web-x", "namespace": "default"}, "addressType": "IPv4",
           "ports": [{"name": "", "port": 8080, "protocol": "TCP"}],
           "endpoints": [{"addresses": ["10.244.1.5"], "conditions": {"ready": True},
                          "targetRef": {"kind": "Pod", "name": "web-1"}, "nodeName": "node-1"}]}
    text = d.describe(ENDPOINTSLICE, eps, NOW, events=[])
    assert "AddressType:  IPv4\n" in text
    assert "  Name     Port  Protocol\n  ----     ----  --------\n  <unset>  8080  TCP\n" in text
    assert "  - Addresses:  10.244.1.5\n" in text
    assert "      Ready:        true\n      Serving:      <unset>\n" in text
    assert "    TargetRef:      Pod/web-1\n" in text
    ev = {"apiVersion": "v1", "kind": "Event", "metadata": {"name": "e1", "namespace": "x"},
          "reason": "Hello"}
    generic = d.describe(EVENT, ev, NOW, events=None)
    assert generic.startswith("Name:         e1\nNamespace:    x\n")
    assert "reason: Hello\n" in generic
    assert "Events:" not in generic


def test_long_and_multiline_annotations() -> None:
    svc = {"metadata": {"name": "a", "namespace": "b",
                        "annotations": {"long": "x" * 200, "multi": "one\ntwo"}},
           "spec": {}}
    text = d.describe(SERVICE, svc, NOW, events=[])
    assert "Annotations:       long:\n                     " + "x" * 138 + "...\n" in text
    assert "                   multi:\n                     one\n                     two\n" \
        in text


def test_describe_events_name_the_container_and_fall_back_to_the_reporting_component() -> None:
    """As kubectl 1.37 (the tested one): a container's event (``involvedObject.fieldPath``)
    starts with the field path; without ``source`` the From column is
    ``reportingComponent``."""
    events = [
        {"type": "Warning", "reason": "Unhealthy",
         "source": {"component": "kubelet", "host": "node-1"},
         "involvedObject": {"kind": "Pod", "name": "web-1",
                            "fieldPath": "spec.containers{web}"},
         "message": "Readiness probe failed: HTTP probe failed with statuscode: 503",
         "firstTimestamp": "2024-01-01T11:50:00Z", "lastTimestamp": "2024-01-01T11:59:00Z",
         "count": 5},
        {"type": "Normal", "reason": "Scaled", "reportingComponent": "some-controller",
         "message": "done", "eventTime": "2024-01-01T11:59:30.000000Z"},
    ]
    text = d.describe(POD, POD_OBJ, NOW, events=events)
    assert text.endswith(
        "Events:\n"
        "  Type     Reason     Age                From             Message\n"
        "  ----     ------     ----               ----             -------\n"
        "  Warning  Unhealthy  60s (x5 over 10m)  kubelet          spec.containers{web}: "
        "Readiness probe failed: HTTP probe failed with statuscode: 503\n"
        "  Normal   Scaled     30s                some-controller  done\n")


def test_describe_configmap_as_kubectl_prints_it() -> None:
    """Text captured from kubectl 1.32's ``describe cm`` of the same object."""
    cm = {"metadata": {"name": "app", "namespace": "default", "labels": {"a": "b"}},
          "data": {"mode": "fast", "app.conf": "line1\nline2\n", "z": ""},
          "binaryData": {"blob": "AAH/Ymlu"}}
    assert d.describe(CONFIGMAP, cm, NOW, events=[]) == (
        "Name:         app\nNamespace:    default\nLabels:       a=b\nAnnotations:  <none>\n"
        "\nData\n====\napp.conf:\n----\nline1\nline2\n\n\nmode:\n----\nfast\n\nz:\n----\n\n\n"
        "\nBinaryData\n====\nblob: 6 bytes\n\nEvents:  <none>\n")


def test_describe_secret_prints_sizes_never_values() -> None:
    """kubectl 1.32's layout; a service-account-token's ``token`` is a size here too."""
    secret = {"metadata": {"name": "creds", "namespace": "default"}, "type": "Opaque",
              "data": {"username": "YWRtaW4=", "password": "czNjcjN0IQ==", "empty": ""}}
    text = d.describe(SECRET, secret, NOW, events=[])
    assert text == (
        "Name:         creds\nNamespace:    default\nLabels:       <none>\n"
        "Annotations:  <none>\n\nType:  Opaque\n\nData\n====\nempty:     0 bytes\n"
        "password:  7 bytes\nusername:  5 bytes\n")
    token = {"metadata": {"name": "t", "namespace": "default"},
             "type": "kubernetes.io/service-account-token", "data": {"token": "YWJjLmRlZg=="}}
    assert "token:  7 bytes\n" in d.describe(SECRET, token, NOW)
    assert "abc.def" not in d.describe(SECRET, token, NOW)
