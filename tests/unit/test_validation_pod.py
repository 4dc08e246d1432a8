"""Pod validation: spec, containers and probes; update immutability; /status writes."""

from __future__ import annotations

from typing import Any

import pytest

from tests.unit.kindhooks import validate, validate_status
from tests.unit.test_validation import (
    DELETE,
    DUPLICATE,
    FORBIDDEN,
    INVALID,
    REQUIRED,
    UNSUPPORTED,
    changed,
    found,
    valid_pod,
)

C0 = "spec.containers[0]"
SIDECAR = {"name": "proxy", "image": "envoy:1", "restartPolicy": "Always",
           "imagePullPolicy": "IfNotPresent", "terminationMessagePolicy": "File",
           "readinessProbe": {"tcpSocket": {"port": 15000}, "timeoutSeconds": 1,
                              "periodSeconds": 10, "successThreshold": 1, "failureThreshold": 3}}
INIT = {"name": "init", "image": "busybox", "imagePullPolicy": "Always",
        "terminationMessagePolicy": "File"}
SECOND = {"name": "second", "image": "busybox", "imagePullPolicy": "Always",
          "terminationMessagePolicy": "File"}


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        ({"spec.containers": DELETE}, [("spec.containers", REQUIRED)]),
        ({"spec.containers": []}, [("spec.containers", REQUIRED)]),
        ({"spec.containers": "app"}, [("spec.containers", INVALID)]),
        ({f"{C0}.name": DELETE}, [(f"{C0}.name", REQUIRED)]),
        ({f"{C0}.name": "App"}, [(f"{C0}.name", INVALID)]),
        ({"spec.containers[1]": {**SECOND, "name": "app"}}, [("spec.containers[1].name", DUPLICATE)]),
        ({"spec.initContainers": [{**INIT, "name": "app"}]}, [(f"{C0}.name", DUPLICATE)]),
        ({"spec.initContainers": [INIT]}, []),
        ({f"{C0}.image": DELETE}, [(f"{C0}.image", REQUIRED)]),
        ({f"{C0}.image": ""}, [(f"{C0}.image", REQUIRED)]),
        ({f"{C0}.image": " busybox"}, [(f"{C0}.image", INVALID)]),
        ({f"{C0}.command": "sleep 3600"}, [(f"{C0}.command", INVALID)]),
        ({f"{C0}.command": ["sleep", 3600]}, [(f"{C0}.command[1]", INVALID)]),
        ({f"{C0}.args": ["--port", "80"]}, []),
        ({f"{C0}.workingDir": 1}, [(f"{C0}.workingDir", INVALID)]),
        ({f"{C0}.imagePullPolicy": "Sometimes"}, [(f"{C0}.imagePullPolicy", UNSUPPORTED)]),
        ({f"{C0}.imagePullPolicy": DELETE}, [(f"{C0}.imagePullPolicy", REQUIRED)]),
        ({f"{C0}.terminationMessagePolicy": "Log"},
         [(f"{C0}.terminationMessagePolicy", UNSUPPORTED)]),
        ({f"{C0}.restartPolicy": "Always"}, [(f"{C0}.restartPolicy", FORBIDDEN)]),
        # ports
        ({f"{C0}.ports[0].containerPort": 0}, [(f"{C0}.ports[0].containerPort", INVALID)]),
        ({f"{C0}.ports[0].containerPort": 65536}, [(f"{C0}.ports[0].containerPort", INVALID)]),
        ({f"{C0}.ports[0].containerPort": DELETE}, [(f"{C0}.ports[0].containerPort", REQUIRED)]),
        ({f"{C0}.ports[0].protocol": "HTTP"}, [(f"{C0}.ports[0].protocol", UNSUPPORTED)]),
        ({f"{C0}.ports[0].name": "HTTP"},  # bad characters, and no lower-case letter
         [(f"{C0}.ports[0].name", INVALID), (f"{C0}.ports[0].name", INVALID)]),
        ({f"{C0}.ports[0].name": "http-alternative"}, [(f"{C0}.ports[0].name", INVALID)]),
        ({f"{C0}.ports[1]": {"name": "http", "containerPort": 9090, "protocol": "TCP"}},
         [(f"{C0}.ports[1].name", DUPLICATE)]),
        ({"spec.containers[1]": {**SECOND, "ports": [{"name": "http", "containerPort": 9090,
                                                      "protocol": "TCP"}]}},
         [("spec.containers[1].ports[0].name", DUPLICATE)]),
        ({f"{C0}.ports[0].hostPort": 8080}, []),
        ({f"{C0}.ports[0].hostPort": 0}, []),
        ({f"{C0}.ports[0].hostPort": 65536}, [(f"{C0}.ports[0].hostPort", INVALID)]),
        ({f"{C0}.ports[0].hostPort": -1}, [(f"{C0}.ports[0].hostPort", INVALID)]),
        ({f"{C0}.ports[0].hostPort": 8080,
          f"{C0}.ports[1]": {"containerPort": 9090, "hostPort": 8080, "protocol": "TCP"}},
         [(f"{C0}.ports[1].hostPort", DUPLICATE)]),
        ({"spec.hostNetwork": True, f"{C0}.ports[0].hostPort": 9090},
         [(f"{C0}.ports[0].hostPort", INVALID)]),
        ({f"{C0}.ports[0].hostIP": "nope"}, [(f"{C0}.ports[0].hostIP", INVALID)]),
        # env
        ({f"{C0}.env[0].name": "A=B"}, [(f"{C0}.env[0].name", INVALID)]),
        ({f"{C0}.env[0].name": "my.var-1"}, []),
        ({f"{C0}.env[0].name": ""}, [(f"{C0}.env[0].name", REQUIRED)]),
        ({f"{C0}.env[0].value": 5}, [(f"{C0}.env[0].value", INVALID)]),
        ({f"{C0}.env[1]": {"name": "POD_IP",
                           "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}}}, []),
        ({f"{C0}.env[1]": {"name": "APP", "valueFrom": {
            "fieldRef": {"fieldPath": "metadata.labels['app']"}}}}, []),
        ({f"{C0}.env[1]": {"name": "X", "valueFrom": {"fieldRef": {"fieldPath": "spec.foo"}}}},
         [(f"{C0}.env[1].valueFrom.fieldRef.fieldPath", UNSUPPORTED)]),
        ({f"{C0}.env[1]": {"name": "X", "valueFrom": {}}}, [(f"{C0}.env[1].valueFrom", INVALID)]),
        ({f"{C0}.env[0].valueFrom": {"secretKeyRef": {"name": "s", "key": "k"}}},
         [(f"{C0}.env[0].valueFrom", INVALID)]),
        # probes
        ({f"{C0}.readinessProbe.httpGet": DELETE}, [(f"{C0}.readinessProbe", REQUIRED)]),
        ({f"{C0}.readinessProbe.tcpSocket": {"port": 8080}},
         [(f"{C0}.readinessProbe.tcpSocket", FORBIDDEN)]),
        ({f"{C0}.readinessProbe.httpGet.port": "metrics--x"},
         [(f"{C0}.readinessProbe.httpGet.port", INVALID)]),
        ({f"{C0}.readinessProbe.httpGet.port": 0}, [(f"{C0}.readinessProbe.httpGet.port", INVALID)]),
        ({f"{C0}.readinessProbe.httpGet.port": DELETE},
         [(f"{C0}.readinessProbe.httpGet.port", REQUIRED)]),
        ({f"{C0}.readinessProbe.httpGet.scheme": "FTP"},
         [(f"{C0}.readinessProbe.httpGet.scheme", UNSUPPORTED)]),
        ({f"{C0}.readinessProbe.httpGet.path": DELETE},
         [(f"{C0}.readinessProbe.httpGet.path", REQUIRED)]),
        ({f"{C0}.readinessProbe.httpGet.httpHeaders": [{"name": "X Bad", "value": "1"}]},
         [(f"{C0}.readinessProbe.httpGet.httpHeaders[0].name", INVALID)]),
        ({f"{C0}.readinessProbe.periodSeconds": 0}, [(f"{C0}.readinessProbe.periodSeconds", INVALID)]),
        ({f"{C0}.readinessProbe.timeoutSeconds": 0},
         [(f"{C0}.readinessProbe.timeoutSeconds", INVALID)]),
        ({f"{C0}.readinessProbe.failureThreshold": 0},
         [(f"{C0}.readinessProbe.failureThreshold", INVALID)]),
        ({f"{C0}.readinessProbe.initialDelaySeconds": 0}, []),
        ({f"{C0}.readinessProbe.initialDelaySeconds": -1},
         [(f"{C0}.readinessProbe.initialDelaySeconds", INVALID)]),
        ({f"{C0}.readinessProbe.successThreshold": 3}, []),
        ({f"{C0}.livenessProbe": {"exec": {"command": ["true"]}, "successThreshold": 2}},
         [(f"{C0}.livenessProbe.successThreshold", INVALID)]),
        ({f"{C0}.startupProbe": {"tcpSocket": {"port": "http"}, "successThreshold": 1}}, []),
        ({f"{C0}.livenessProbe": {"exec": {}}}, [(f"{C0}.livenessProbe.exec.command", REQUIRED)]),
        ({f"{C0}.livenessProbe": {"tcpSocket": {"port": 70000}}},
         [(f"{C0}.livenessProbe.tcpSocket.port", INVALID)]),
        ({f"{C0}.livenessProbe": {"grpc": {"port": 9090}}}, []),
        ({f"{C0}.livenessProbe": {"grpc": {"port": "grpc"}}},
         [(f"{C0}.livenessProbe.grpc.port", INVALID)]),
        ({f"{C0}.livenessProbe": {"exec": {"command": ["true"]}, "httpGet": {"port": 80}}},
         [(f"{C0}.livenessProbe.httpGet", FORBIDDEN)]),
        ({f"{C0}.livenessProbe": "curl localhost"}, [(f"{C0}.livenessProbe", INVALID)]),
        ({f"{C0}.lifecycle": {"preStop": {"sleep": {"seconds": 5}}}}, []),
        ({f"{C0}.lifecycle": {"preStop": {}}}, [(f"{C0}.lifecycle.preStop", REQUIRED)]),
        ({"spec.initContainers": [{**INIT, "readinessProbe": {"exec": {"command": ["true"]}}}]},
         [("spec.initContainers[0].readinessProbe", FORBIDDEN)]),
        ({"spec.initContainers": [SIDECAR]}, []),
        ({"spec.initContainers": [{**SIDECAR, "restartPolicy": "Never"}]},
         [("spec.initContainers[0].restartPolicy", UNSUPPORTED),
          ("spec.initContainers[0].readinessProbe", FORBIDDEN)]),
        # pod-level fields
        ({"spec.restartPolicy": "Sometimes"}, [("spec.restartPolicy", UNSUPPORTED)]),
        ({"spec.restartPolicy": DELETE}, [("spec.restartPolicy", REQUIRED)]),
        ({"spec.restartPolicy": "Never"}, []),
        ({"spec.dnsPolicy": "Cluster"}, [("spec.dnsPolicy", UNSUPPORTED)]),
        ({"spec.dnsPolicy": "None"}, [("spec.dnsConfig", REQUIRED)]),
        ({"spec.dnsPolicy": "None", "spec.dnsConfig": {"searches": ["svc.cluster.local"]}},
         [("spec.dnsConfig.nameservers", REQUIRED)]),
        ({"spec.dnsPolicy": "None", "spec.dnsConfig": {"nameservers": ["10.96.0.10"],
                                                       "options": [{"name": "ndots", "value": "5"}]}},
         []),
        ({"spec.dnsConfig": {"nameservers": ["bad"]}}, [("spec.dnsConfig.nameservers[0]", INVALID)]),
        ({"spec.dnsConfig": {"nameservers": ["1.1.1.1", "1.0.0.1", "8.8.8.8", "8.8.4.4"]}},
         [("spec.dnsConfig.nameservers", INVALID)]),
        ({"spec.dnsConfig": {"searches": [f"{'a' * 60}.{i:03d}.{'b' * 60}" for i in range(17)]}},
         [("spec.dnsConfig.searches", INVALID)]),  # 17 x 125 characters: over 2048
        ({"spec.dnsConfig": {"searches": [f"{'a' * 60}.{i:03d}.{'b' * 60}" for i in range(16)]}},
         []),
        ({"spec.dnsConfig": {"searches": [f"d{i}.example" for i in range(33)]}},
         [("spec.dnsConfig.searches", INVALID)]),
        ({"spec.dnsConfig": {"options": [{"value": "2"}]}},
         [("spec.dnsConfig.options[0].name", REQUIRED)]),
        ({"spec.nodeName": "node-1.example"}, []),
        ({"spec.nodeName": "Node_1"}, [("spec.nodeName", INVALID)]),
        ({"spec.nodeSelector": {"kubernetes.io/os": "linux"}}, []),
        ({"spec.nodeSelector": {"bad key": "x"}}, [("spec.nodeSelector", INVALID)]),
        ({"spec.terminationGracePeriodSeconds": 0}, []),
        ({"spec.terminationGracePeriodSeconds": -1}, [("spec.terminationGracePeriodSeconds", INVALID)]),
        ({"spec.activeDeadlineSeconds": 0}, [("spec.activeDeadlineSeconds", INVALID)]),
        ({"spec.activeDeadlineSeconds": 60}, []),
        ({"spec.hostname": "web-1", "spec.subdomain": "web"}, []),
        ({"spec.hostname": "web.1"}, [("spec.hostname", INVALID)]),
        ({"spec.setHostnameAsFQDN": True}, []),
        ({"spec.setHostnameAsFQDN": "yes"}, [("spec.setHostnameAsFQDN", INVALID)]),
        ({"spec.subdomain": "Web"}, [("spec.subdomain", INVALID)]),
        ({"spec.schedulerName": "My Scheduler"}, [("spec.schedulerName", INVALID)]),
        ({"spec.hostNetwork": "yes"}, [("spec.hostNetwork", INVALID)]),
        ({"spec.volumes": [{"name": "data", "emptyDir": {}}, {"name": "data", "emptyDir": {}}]},
         [("spec.volumes[1].name", DUPLICATE)]),
        ({"spec.volumes": [{"emptyDir": {}}]}, [("spec.volumes[0].name", REQUIRED)]),
        ({"spec.hostAliases": [{"ip": "10.0.0.9", "hostnames": ["db.local"]}]}, []),
        ({"spec.hostAliases": [{"ip": "db", "hostnames": ["DB"]}]},
         [("spec.hostAliases[0].ip", INVALID), ("spec.hostAliases[0].hostnames[0]", INVALID)]),
        # tolerations
        ({"spec.tolerations": [{"key": "node.kubernetes.io/not-ready", "operator": "Exists",
                                "effect": "NoExecute", "tolerationSeconds": 300}]}, []),
        ({"spec.tolerations": [{"operator": "Exists"}]}, []),
        ({"spec.tolerations": [{"key": "k", "value": "v"}]}, []),
        ({"spec.tolerations": [{"key": "k", "operator": "Maybe"}]},
         [("spec.tolerations[0].operator", UNSUPPORTED)]),
        ({"spec.tolerations": [{"key": "k", "operator": "Exists", "value": "v"}]},
         [("spec.tolerations[0].operator", INVALID)]),
        ({"spec.tolerations": [{"value": "v"}]}, [("spec.tolerations[0].operator", INVALID)]),
        ({"spec.tolerations": [{"key": "k", "effect": "Never"}]},
         [("spec.tolerations[0].effect", UNSUPPORTED)]),
        ({"spec.tolerations": [{"key": "k", "effect": "NoSchedule", "tolerationSeconds": 5}]},
         [("spec.tolerations[0].effect", INVALID)]),
        ({"spec.tolerations": [{"key": "bad key", "operator": "Exists"}]},
         [("spec.tolerations[0].key", INVALID)]),
    ],
)
def test_pod_spec(changes: dict, expected: list) -> None:
    assert found(validate("Pod", changed(valid_pod(), changes))) == expected


# ---------------------------------------------------------------------------- update


@pytest.mark.parametrize(
    ("old_changes", "changes", "expected"),
    [
        ({}, {f"{C0}.image": "busybox:1.37"}, []),
        ({"spec.initContainers": [INIT]}, {"spec.initContainers[0].image": "alpine"}, []),
        ({}, {"metadata.labels": {"ready": "yes"}}, []),
        ({}, {"spec.nodeName": "node-1"}, [("spec", FORBIDDEN)]),
        ({"spec.nodeName": "node-1"}, {"spec.nodeName": "node-2"}, [("spec", FORBIDDEN)]),
        ({}, {f"{C0}.command": ["sleep", "1"]}, [("spec", FORBIDDEN)]),
        ({}, {f"{C0}.image": ""}, [(f"{C0}.image", REQUIRED)]),
        ({}, {"spec.containers[1]": SECOND}, [("spec.containers", FORBIDDEN)]),
        ({}, {"spec.activeDeadlineSeconds": 60}, []),
        ({"spec.activeDeadlineSeconds": 60}, {"spec.activeDeadlineSeconds": 30}, []),
        ({"spec.activeDeadlineSeconds": 60}, {"spec.activeDeadlineSeconds": 90},
         [("spec.activeDeadlineSeconds", INVALID)]),
        ({"spec.activeDeadlineSeconds": 60}, {"spec.activeDeadlineSeconds": DELETE},
         [("spec.activeDeadlineSeconds", INVALID)]),
        ({}, {"spec.tolerations": [{"key": "k", "operator": "Exists"}]}, []),
        ({"spec.tolerations": [{"key": "k", "operator": "Exists", "effect": "NoExecute",
                                "tolerationSeconds": 60}]},
         {"spec.tolerations": [{"key": "k", "operator": "Exists", "effect": "NoExecute",
                                "tolerationSeconds": 10}, {"operator": "Exists"}]}, []),
        ({"spec.tolerations": [{"key": "k", "operator": "Exists"}]}, {"spec.tolerations": []},
         [("spec.tolerations", FORBIDDEN)]),
        ({"spec.terminationGracePeriodSeconds": -5}, {"spec.terminationGracePeriodSeconds": 1}, []),
    ],
)
def test_pod_update(old_changes: dict, changes: dict, expected: list) -> None:
    old = changed(valid_pod(), old_changes)
    assert found(validate("Pod", changed(old, changes), old)) == expected


def test_pod_update_message_names_what_changed() -> None:
    old = valid_pod()
    new = changed(old, {"spec.nodeName": "node-1", f"{C0}.command": ["true"]})
    [error] = validate("Pod", new, old)
    assert error.message.startswith(
        "pod updates may not change fields other than `spec.containers[*].image`,"
        "`spec.initContainers[*].image`,`spec.activeDeadlineSeconds`,`spec.tolerations` (only "
        "additions to existing tolerations),`spec.terminationGracePeriodSeconds` (allow it to be "
        "set to 1 if it was previously negative)")
    assert error.message.endswith("\nchanged: spec.containers[0].command, spec.nodeName")
    new = changed(old, {f"{C0}.command[1]": "1", f"{C0}.image": "busybox:1.37"})
    [error] = validate("Pod", new, old)
    assert error.message.endswith("\nchanged: spec.containers[0].command[1]")


# ---------------------------------------------------------------------------- status


RUNNING = {"phase": "Running", "podIP": "10.244.1.5", "podIPs": [{"ip": "10.244.1.5"}],
           "hostIP": "10.250.0.2", "hostIPs": [{"ip": "10.250.0.2"}],
           "startTime": "2026-01-01T00:00:01Z",
           "conditions": [{"type": "Ready", "status": "True"},
                          {"type": "example.com/gate", "status": "False"}],
           "containerStatuses": [{"name": "app", "ready": True, "restartCount": 0,
                                  "image": "busybox:1.36", "state": {"running": {}}}]}


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        ({}, []),
        ({"status.phase": "Done"}, [("status.phase", UNSUPPORTED)]),
        ({"status.phase": "Unknown"}, []),
        ({"status.podIP": "10.244.1.300"}, [("status.podIP", INVALID)]),
        ({"status.podIPs": [{"ip": "10.244.1.5"}, {"ip": "fd00::5"}]}, []),
        ({"status.podIPs": [{"ip": "10.244.1.5"}, {"ip": "10.244.1.6"}]}, [("status.podIPs", INVALID)]),
        ({"status.podIPs": [{"ip": "10.244.1.5"}, {"ip": "10.244.1.5"}]},
         [("status.podIPs[1].ip", DUPLICATE)]),
        ({"status.podIPs": [{"ip": "10.244.1.6"}]}, [("status.podIPs", INVALID)]),
        ({"status.podIPs": [{}]}, [("status.podIPs[0].ip", REQUIRED)]),
        ({"status.podIPs": ["10.244.1.5"]}, [("status.podIPs[0]", INVALID)]),
        ({"status.hostIP": "node-1"}, [("status.hostIP", INVALID)]),
        ({"status.conditions[0].status": "Yes"}, [("status.conditions[0].status", UNSUPPORTED)]),
        ({"status.conditions[0].type": DELETE}, [("status.conditions[0].type", REQUIRED)]),
        ({"status.conditions[1].type": "bad type"}, [("status.conditions[1].type", INVALID)]),
        ({"status.containerStatuses[0].restartCount": -1},
         [("status.containerStatuses[0].restartCount", INVALID)]),
        ({"status.containerStatuses[0].ready": "true"},
         [("status.containerStatuses[0].ready", INVALID)]),
        ({"status": []}, [("status", INVALID)]),
    ],
)
def test_pod_status(changes: dict, expected: list) -> None:
    old = changed(valid_pod(), {"spec.nodeName": "node-1"})
    new = changed(old, {"status": RUNNING, **changes})
    assert found(validate_status("Pod", new, old)) == expected


def test_status_is_not_judged_on_the_main_resource() -> None:
    """The server resets status on create and keeps the stored one on update."""
    pod: dict[str, Any] = changed(valid_pod(), {"status": {"phase": "Bogus"}})
    assert validate("Pod", pod) == []


@pytest.mark.parametrize(
    ("resources", "expected"),
    [
        ({"limits": {"cpu": "500m", "memory": "128Mi"}, "requests": {"cpu": "0.25"}}, []),
        ({"limits": {"cpu": "1", "example.com/gpu": "2", "hugepages-2Mi": "4Mi"}}, []),
        ({"requests": {"cpu": "2"}, "limits": {"cpu": "1"}},
         [(f"{C0}.resources.requests[cpu]", INVALID)]),
        ({"requests": {"cpu": "1000m"}, "limits": {"cpu": "1"}}, []),
        ({"limits": {"cpu": "lots"}}, [(f"{C0}.resources.limits[cpu]", INVALID)]),
        ({"requests": {"memory": "-1Mi"}}, [(f"{C0}.resources.requests[memory]", INVALID)]),
        ({"limits": {"gpu": "1"}}, [(f"{C0}.resources.limits[gpu]", INVALID)]),
        ({"limits": {"kubernetes.io/cpu": "1"}},
         [(f"{C0}.resources.limits[kubernetes.io/cpu]", INVALID)]),
        ({"limits": "1"}, [(f"{C0}.resources.limits", INVALID)]),
        ("big", [(f"{C0}.resources", INVALID)]),
    ],
)
def test_container_resources(resources: Any, expected: list) -> None:
    pod = changed(valid_pod(), {f"{C0}.resources": resources})
    assert found(validate("Pod", pod)) == expected


def test_a_request_over_its_limit_says_the_limit() -> None:
    pod = changed(valid_pod(), {f"{C0}.resources": {"requests": {"memory": "1Gi"},
                                                    "limits": {"memory": "512Mi"}}})
    (error,) = validate("Pod", pod)
    assert error.message == "must be less than or equal to memory limit of 512Mi"


# ---------------------------------------------------------------------------- securityContext


def _pod_with(pod_sc: dict | None = None, container_sc: dict | None = None) -> dict:
    container = {"name": "c", "image": "i", "imagePullPolicy": "Always",
                 "terminationMessagePolicy": "File"}
    if container_sc is not None:
        container["securityContext"] = container_sc
    spec: dict = {"containers": [container], "restartPolicy": "Always",
                  "dnsPolicy": "ClusterFirst"}
    if pod_sc is not None:
        spec["securityContext"] = pod_sc
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "namespace": "d"},
            "spec": spec}


@pytest.mark.parametrize(("pod_sc", "container_sc", "field", "text"), [
    ({"runAsUser": -1}, None, "spec.securityContext.runAsUser",
     "Invalid value: -1: must be between 0 and 2147483647, inclusive"),
    ({"runAsNonRoot": "yes"}, None, "spec.securityContext.runAsNonRoot",
     'Invalid value: "yes": must be a boolean'),
    ({"supplementalGroups": [1, "x"]}, None, "spec.securityContext.supplementalGroups[1]",
     'Invalid value: "x": must be an integer'),
    ({"fsGroup": 2**31}, None, "spec.securityContext.fsGroup",
     "Invalid value: 2147483648: must be between 0 and 2147483647, inclusive"),
    ({"seccompProfile": {"type": "Localhost"}}, None,
     "spec.securityContext.seccompProfile.localhostProfile",
     "Required value: must be set when the profile type is Localhost"),
    (None, {"seccompProfile": {"type": "Strict"}},
     "spec.containers[0].securityContext.seccompProfile.type",
     'Unsupported value: "Strict": supported values: "Localhost", "RuntimeDefault", '
     '"Unconfined"'),
    (None, {"runAsGroup": 2**40}, "spec.containers[0].securityContext.runAsGroup",
     "Invalid value: 1099511627776: must be between 0 and 2147483647, inclusive"),
    (None, {"privileged": 1}, "spec.containers[0].securityContext.privileged",
     "Invalid value: 1: must be a boolean"),
    (None, {"capabilities": {"add": [5]}}, "spec.containers[0].securityContext.capabilities.add[0]",
     None),
    (None, {"procMount": "Masked"}, "spec.containers[0].securityContext.procMount",
     'Unsupported value: "Masked": supported values: "Default", "Unmasked"'),
    (None, {"privileged": True, "allowPrivilegeEscalation": False},
     "spec.containers[0].securityContext", None),
])
def test_security_context_rules(pod_sc, container_sc, field, text):
    errors = validate("Pod", _pod_with(pod_sc, container_sc))
    found = [e for e in errors if e.field == field]
    assert found, errors
    if text is not None:
        assert found[0].describe() == text


def test_a_full_security_context_is_valid():
    pod_sc = {"runAsUser": 1000, "runAsGroup": 1000, "runAsNonRoot": True,
              "supplementalGroups": [10, 20], "fsGroup": 2000,
              "seccompProfile": {"type": "RuntimeDefault"},
              "sysctls": [{"name": "net.ipv4.ping_group_range", "value": "0 1"}]}
    container_sc = {"runAsUser": 1001, "allowPrivilegeEscalation": False, "privileged": False,
                    "readOnlyRootFilesystem": True, "procMount": "Default",
                    "capabilities": {"drop": ["ALL"], "add": ["NET_BIND_SERVICE"]},
                    "seccompProfile": {"type": "Localhost", "localhostProfile": "p.json"}}
    assert validate("Pod", _pod_with(pod_sc, container_sc)) == []
