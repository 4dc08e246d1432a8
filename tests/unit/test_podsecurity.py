"""Pod Security levels: each check, each level, Kubernetes' exact words."""

from __future__ import annotations

import pytest

from apiserver.admission import podsecurity as ps
from apiserver.admission.podsecurity import LevelVersion, Policy, Violation, evaluate


def pod(spec: dict | None = None, *, containers: list[dict] | None = None,
        annotations: dict | None = None) -> dict:
    body_spec = {"containers": containers or [{"name": "c", "image": "i"}], **(spec or {})}
    meta: dict = {"name": "p"}
    if annotations:
        meta["annotations"] = annotations
    return {"metadata": meta, "spec": body_spec}


RESTRICTED_SC = {"allowPrivilegeEscalation": False, "runAsNonRoot": True,
                 "capabilities": {"drop": ["ALL"]},
                 "seccompProfile": {"type": "RuntimeDefault"}}


def c(name: str = "c", **sc) -> dict:
    return {"name": name, "image": "i", "securityContext": sc}


# (check, pod, expected violation or None)
CASES = [
    ("hostNamespaces", ps.host_namespaces, pod({"hostNetwork": True, "hostPID": True}),
     Violation("host namespaces", "hostNetwork, hostPID")),
    ("hostNamespaces ok", ps.host_namespaces, pod({"hostNetwork": False}), None),
    ("privileged", ps.privileged, pod(containers=[c(privileged=True), c("d")]),
     Violation("privileged", 'container "c" must not set securityContext.privileged=true')),
    ("privileged two", ps.privileged,
     pod(containers=[c(privileged=True), c("d", privileged=True)]),
     Violation("privileged",
               'containers "c", "d" must not set securityContext.privileged=true')),
    ("privileged init first", ps.privileged,
     pod({"initContainers": [c("init", privileged=True)]}, containers=[c(privileged=True)]),
     Violation("privileged",
               'containers "init", "c" must not set securityContext.privileged=true')),
    ("capabilities baseline", ps.capabilities_baseline,
     pod(containers=[c(capabilities={"add": ["NET_RAW", "CHOWN", "SYS_ADMIN"]})]),
     Violation("non-default capabilities", 'container "c" must not include "NET_RAW", '
                                           '"SYS_ADMIN" in securityContext.capabilities.add')),
    ("capabilities baseline default set", ps.capabilities_baseline,
     pod(containers=[c(capabilities={"add": ["CHOWN", "NET_BIND_SERVICE", "KILL"]})]), None),
    ("hostPath", ps.host_path_volumes,
     pod({"volumes": [{"name": "root", "hostPath": {"path": "/"}}, {"name": "e", "emptyDir": {}}]}),
     Violation("hostPath volumes", 'volume "root"')),
    ("hostPorts", ps.host_ports,
     pod(containers=[{"name": "c", "image": "i",
                      "ports": [{"containerPort": 80, "hostPort": 8080},
                                {"containerPort": 90, "hostPort": 9090}]}]),
     Violation("hostPort", 'container "c" uses hostPorts 8080, 9090')),
    ("hostPort zero", ps.host_ports,
     pod(containers=[{"name": "c", "ports": [{"containerPort": 80, "hostPort": 0}]}]), None),
    ("appArmor", ps.app_armor,
     pod({"securityContext": {"appArmorProfile": {"type": "Unconfined"}}}),
     Violation("forbidden AppArmor profile",
               'pod must not set AppArmor profile type to "Unconfined"')),
    ("appArmor annotation", ps.app_armor,
     pod(annotations={"container.apparmor.security.beta.kubernetes.io/c": "unconfined"}),
     # joinQuote does not escape: the annotation's own quotes show as they are
     Violation("forbidden AppArmor profile", 'annotation must not set AppArmor profile type '
               'to "container.apparmor.security.beta.kubernetes.io/c="unconfined""')),
    ("appArmor runtime default", ps.app_armor,
     pod(containers=[c(appArmorProfile={"type": "RuntimeDefault"})]), None),
    ("seLinux", ps.se_linux, pod(containers=[c(seLinuxOptions={"type": "spc_t", "user": "u"})]),
     Violation("seLinuxOptions", 'container "c" set forbidden securityContext.seLinuxOptions: '
                                 'type "spc_t"; user may not be set')),
    ("seLinux allowed type", ps.se_linux,
     pod({"securityContext": {"seLinuxOptions": {"type": "container_t", "level": "s0"}}}), None),
    ("procMount", ps.proc_mount, pod(containers=[c(procMount="Unmasked")]),
     Violation("procMount",
               'container "c" must not set securityContext.procMount to "Unmasked"')),
    ("procMount default", ps.proc_mount, pod(containers=[c(procMount="Default")]), None),
    ("seccomp baseline", ps.seccomp_baseline,
     pod({"securityContext": {"seccompProfile": {"type": "Unconfined"}}}),
     Violation("seccompProfile",
               'pod must not set securityContext.seccompProfile.type to "Unconfined"')),
    ("seccomp baseline unset", ps.seccomp_baseline, pod(), None),
    ("sysctls", ps.sysctls,
     pod({"securityContext": {"sysctls": [{"name": "kernel.msgmax", "value": "1"},
                                          {"name": "net.ipv4.tcp_syncookies", "value": "1"}]}}),
     Violation("forbidden sysctls", "kernel.msgmax")),
    ("allowPrivilegeEscalation", ps.allow_privilege_escalation, pod(),
     Violation("allowPrivilegeEscalation != false",
               'container "c" must set securityContext.allowPrivilegeEscalation=false')),
    ("allowPrivilegeEscalation false", ps.allow_privilege_escalation,
     pod(containers=[c(allowPrivilegeEscalation=False)]), None),
    ("capabilities restricted", ps.capabilities_restricted,
     pod(containers=[c(capabilities={"add": ["NET_BIND_SERVICE", "NET_RAW"]}),
                     c("d", capabilities={"drop": ["ALL"]})]),
     Violation("unrestricted capabilities",
               'container "c" must set securityContext.capabilities.drop=["ALL"]; '
               'container "c" must not include "NET_RAW" in securityContext.capabilities.add')),
    ("restricted volumes", ps.restricted_volumes,
     pod({"volumes": [{"name": "h", "hostPath": {"path": "/"}}, {"name": "e", "emptyDir": {}},
                      {"name": "g", "gitRepo": {"repository": "x"}}]}),
     Violation("restricted volume types", 'volumes ["g" "h"] have restricted types')),
    ("runAsNonRoot unset", ps.run_as_non_root, pod(),
     Violation("runAsNonRoot != true",
               'pod or container "c" must set securityContext.runAsNonRoot=true')),
    ("runAsNonRoot false", ps.run_as_non_root,
     pod({"securityContext": {"runAsNonRoot": False}}, containers=[c(runAsNonRoot=False)]),
     Violation("runAsNonRoot != true",
               'pod and container "c" must not set securityContext.runAsNonRoot=false')),
    ("runAsNonRoot at pod level", ps.run_as_non_root,
     pod({"securityContext": {"runAsNonRoot": True}}), None),
    ("runAsUser 0", ps.run_as_user,
     pod({"securityContext": {"runAsUser": 0}}, containers=[c(runAsUser=0), c("d", runAsUser=5)]),
     Violation("runAsUser=0", 'pod and container "c" must not set runAsUser=0')),
    ("runAsUser 1000", ps.run_as_user, pod(containers=[c(runAsUser=1000)]), None),
    ("seccomp restricted unset", ps.seccomp_restricted, pod(),
     Violation("seccompProfile", 'pod or container "c" must set '
                                 'securityContext.seccompProfile.type to "RuntimeDefault" '
                                 'or "Localhost"')),
    ("seccomp restricted at pod", ps.seccomp_restricted,
     pod({"securityContext": {"seccompProfile": {"type": "Localhost",
                                                 "localhostProfile": "p.json"}}}), None),
]


@pytest.mark.parametrize(("check", "body", "expected"), [case[1:] for case in CASES],
                         ids=[case[0] for case in CASES])
def test_check(check, body, expected):
    assert check(body["metadata"], body["spec"]) == expected


def test_privileged_level_allows_anything():
    assert evaluate("privileged", pod({"hostNetwork": True},
                                      containers=[c(privileged=True)])) == []


def test_baseline_allows_a_plain_pod_and_refuses_host_access():
    assert evaluate("baseline", pod()) == []
    found = evaluate("baseline", pod({"hostPID": True, "volumes": [
        {"name": "root", "hostPath": {"path": "/"}}]}, containers=[c(privileged=True)]))
    assert [v.reason for v in found] == ["host namespaces", "privileged", "hostPath volumes"]


def test_restricted_message_for_a_plain_pod_is_kubernetes():
    found = evaluate("restricted", pod())
    assert ps.forbidden_detail(found) == (
        'allowPrivilegeEscalation != false (container "c" must set '
        'securityContext.allowPrivilegeEscalation=false), unrestricted capabilities '
        '(container "c" must set securityContext.capabilities.drop=["ALL"]), '
        'runAsNonRoot != true (pod or container "c" must set '
        'securityContext.runAsNonRoot=true), seccompProfile (pod or container "c" must set '
        'securityContext.seccompProfile.type to "RuntimeDefault" or "Localhost")')


def test_restricted_allows_a_hardened_pod():
    assert evaluate("restricted", pod(containers=[c(**RESTRICTED_SC)])) == []


def test_restricted_replaces_the_overlapping_baseline_checks():
    """At restricted, hostPath shows once (as a restricted volume type), not twice."""
    found = evaluate("restricted", pod({"volumes": [{"name": "h", "hostPath": {"path": "/"}}]},
                                       containers=[c(**RESTRICTED_SC)]))
    assert found == [Violation("restricted volume types", 'volumes ["h"] have restricted types')]


# ---------------------------------------------------------------------------- labels


DEFAULT = Policy.default("baseline")


@pytest.mark.parametrize(("labels", "enforce", "warn", "audit"), [
    ({}, "baseline:latest", "privileged:latest", "privileged:latest"),
    ({"pod-security.kubernetes.io/enforce": "restricted",
      "pod-security.kubernetes.io/enforce-version": "v1.29"},
     "restricted:v1.29", "privileged:latest", "privileged:latest"),
    ({"pod-security.kubernetes.io/warn": "restricted",
      "pod-security.kubernetes.io/audit": "baseline"},
     "baseline:latest", "restricted:latest", "baseline:latest"),
    ({"pod-security.kubernetes.io/enforce": "privileged"},
     "privileged:latest", "privileged:latest", "privileged:latest"),
])
def test_policy_from_labels(labels, enforce, warn, audit):
    policy, errors = ps.policy_for(labels, DEFAULT)
    assert errors == []
    assert (str(policy.enforce), str(policy.warn), str(policy.audit)) == (enforce, warn, audit)


def test_bad_labels_fail_closed_for_enforce_and_open_for_warn():
    policy, errors = ps.policy_for({"pod-security.kubernetes.io/enforce": "strict",
                                    "pod-security.kubernetes.io/warn": "loud",
                                    "pod-security.kubernetes.io/audit-version": "1.2"}, DEFAULT)
    assert policy.enforce == LevelVersion("restricted")
    assert policy.warn == LevelVersion("privileged")
    assert [(e.field, e.describe()) for e in errors] == [
        ("metadata.labels[pod-security.kubernetes.io/enforce]",
         'Invalid value: "strict": must be one of privileged, baseline, restricted'),
        ("metadata.labels[pod-security.kubernetes.io/audit-version]",
         'Invalid value: "1.2": must be "latest" or "v1.x"'),
        ("metadata.labels[pod-security.kubernetes.io/warn]",
         'Invalid value: "loud": must be one of privileged, baseline, restricted'),
    ]


def test_default_level_must_be_a_level():
    with pytest.raises(ValueError):
        Policy.default("strict")


def test_only_image_changes_are_judged_again():
    old = pod(containers=[c(privileged=True)])
    relabelled = {**old, "metadata": {"name": "p", "labels": {"a": "b"}}}
    assert not ps.is_significant_update(relabelled, old)
    new_image = pod(containers=[{**c(privileged=True), "image": "j"}])
    assert ps.is_significant_update(new_image, old)


def test_existing_pod_warnings_group_by_reason():
    pods = [pod(containers=[c(privileged=True)]) | {"metadata": {"name": n}}
            for n in ("a", "b", "c")] + [pod({"hostPID": True}) | {"metadata": {"name": "d"}}]
    assert ps.existing_pod_warnings("ns", LevelVersion("baseline"), pods) == [
        'existing pods in namespace "ns" violate the new PodSecurity enforce level '
        '"baseline:latest"',
        "a (and 2 other pods): privileged",
        "d: host namespaces",
    ]
    assert ps.existing_pod_warnings("ns", LevelVersion("baseline"), [pod()]) == []
