"""A Service's IP family fields against the cluster's families (apiserver/ipfamilies.py):
Kubernetes' ``initIPFamilyFields`` outcomes and messages, as a table."""

from __future__ import annotations

import pytest

from apiserver.ipfamilies import FamilyFields, ip_family_fields, written_cluster_ips

V4 = ("IPv4",)
V6 = ("IPv6",)
SEL = {"app": "web"}
NOT_HERE = "not configured on this cluster"
MULTI_FAMILIES = ('Invalid value: "SingleStack": must be \'RequireDualStack\' or '
                  "'PreferDualStack' when multiple IP families are specified")
MULTI_IPS = ('Invalid value: "SingleStack": must be \'RequireDualStack\' or '
             "'PreferDualStack' when multiple cluster IPs are specified")


def svc(**spec: object) -> dict:
    return {"type": "ClusterIP", "selector": SEL, **spec}


def headless(**spec: object) -> dict:
    return {"type": "ClusterIP", "clusterIP": "None", "clusterIPs": ["None"], **spec}


def outcome(result: FamilyFields | list) -> object:
    if isinstance(result, list):
        return [f"{e.field}: {e.describe()}" for e in result]
    return (result.policy, list(result.families), list(result.cluster_ips))


CREATE = [
    # (configured, spec, outcome)
    (V4, svc(), ("SingleStack", ["IPv4"], [])),
    (V4, svc(clusterIP="10.96.0.5"), ("SingleStack", ["IPv4"], ["10.96.0.5"])),
    (V4, svc(clusterIPs=["10.96.0.5"]), ("SingleStack", ["IPv4"], ["10.96.0.5"])),
    (V4, svc(ipFamilies=["IPv4"]), ("SingleStack", ["IPv4"], [])),
    (V4, svc(ipFamilyPolicy="PreferDualStack"), ("PreferDualStack", ["IPv4"], [])),
    (V4, svc(ipFamilies=["IPv6"]),
     [f'spec.ipFamilies[0]: Invalid value: "IPv6": {NOT_HERE}']),
    (V4, svc(ipFamilyPolicy="RequireDualStack"),
     ['spec.ipFamilyPolicy: Invalid value: "RequireDualStack": this cluster is not '
      "configured for dual-stack services"]),
    (V4, svc(ipFamilies=["IPv4", "IPv6"]), [f"spec.ipFamilyPolicy: {MULTI_FAMILIES}"]),
    (V4, svc(ipFamilies=["IPv4", "IPv6"], ipFamilyPolicy="PreferDualStack"),
     [f'spec.ipFamilies[1]: Invalid value: "IPv6": {NOT_HERE}']),
    (V4, svc(ipFamilies=["IPv6", "IPv4"], ipFamilyPolicy="RequireDualStack"),
     ['spec.ipFamilyPolicy: Invalid value: "RequireDualStack": this cluster is not '
      "configured for dual-stack services",
      f'spec.ipFamilies[0]: Invalid value: "IPv6": {NOT_HERE}']),
    # only the address names the family: the error points at it, as Kubernetes'
    (V4, svc(clusterIP="fd00::5"),
     ['spec.clusterIPs[0]: Invalid value: []string{"fd00::5"}: IPv6 is ' + NOT_HERE]),
    (V4, svc(clusterIPs=["10.96.0.5", "fd00::5"], ipFamilyPolicy="PreferDualStack"),
     ['spec.clusterIPs[1]: Invalid value: []string{"10.96.0.5", "fd00::5"}: IPv6 is '
      + NOT_HERE]),
    (V4, svc(clusterIPs=["10.96.0.5", "fd00::5"]),
     [f"spec.ipFamilyPolicy: {MULTI_IPS}",
      'spec.clusterIPs[1]: Invalid value: []string{"10.96.0.5", "fd00::5"}: IPv6 is '
      + NOT_HERE]),
    # headless without a selector: no address, so both families on any cluster
    (V4, headless(), ("RequireDualStack", ["IPv4", "IPv6"], ["None"])),
    (V4, headless(ipFamilies=["IPv6"]), ("RequireDualStack", ["IPv6", "IPv4"], ["None"])),
    (V4, headless(ipFamilyPolicy="SingleStack"), ("SingleStack", ["IPv4"], ["None"])),
    (V4, headless(selector=SEL), ("SingleStack", ["IPv4"], ["None"])),
    (V4, headless(selector=SEL, ipFamilies=["IPv6"]),
     [f'spec.ipFamilies[0]: Invalid value: "IPv6": {NOT_HERE}']),
    (V4, headless(selector=SEL, ipFamilyPolicy="PreferDualStack"),
     ("PreferDualStack", ["IPv4"], ["None"])),
    # an IPv6 Service CIDR: the same rules the other way round
    (V6, svc(), ("SingleStack", ["IPv6"], [])),
    (V6, svc(ipFamilies=["IPv4"]), [f'spec.ipFamilies[0]: Invalid value: "IPv4": {NOT_HERE}']),
    (V6, svc(clusterIP="10.96.0.5"),
     ['spec.clusterIPs[0]: Invalid value: []string{"10.96.0.5"}: IPv4 is ' + NOT_HERE]),
    # a dual-stack cluster (the function is general): PreferDualStack gets both
    (("IPv4", "IPv6"), svc(ipFamilyPolicy="PreferDualStack"),
     ("PreferDualStack", ["IPv4", "IPv6"], [])),
    (("IPv4", "IPv6"), svc(ipFamilyPolicy="RequireDualStack", ipFamilies=["IPv6"]),
     ("RequireDualStack", ["IPv6", "IPv4"], [])),
]


@pytest.mark.parametrize(("configured", "spec", "expected"), CREATE)
def test_create(configured: tuple[str, ...], spec: dict, expected: object) -> None:
    assert outcome(ip_family_fields(spec, None, configured=configured)) == expected


STORED = svc(clusterIP="10.96.0.5", clusterIPs=["10.96.0.5"], ipFamilies=["IPv4"],
             ipFamilyPolicy="SingleStack")
STORED_HEADLESS = headless(ipFamilies=["IPv4", "IPv6"], ipFamilyPolicy="RequireDualStack")
PREFER_V6 = svc(clusterIP="fd00::5", clusterIPs=["fd00::5"], ipFamilies=["IPv6"],
                ipFamilyPolicy="PreferDualStack")

UPDATE = [
    # (old, new, outcome)
    # a PUT without the family fields keeps the policy and infers the family
    (STORED, svc(clusterIP="10.96.0.5", clusterIPs=["10.96.0.5"]),
     ("SingleStack", ["IPv4"], ["10.96.0.5"])),
    (STORED, {**STORED, "ipFamilies": ["IPv4", "IPv6"]},
     [f"spec.ipFamilyPolicy: {MULTI_FAMILIES}"]),
    (STORED, {**STORED, "ipFamilyPolicy": "RequireDualStack"},
     ['spec.ipFamilyPolicy: Invalid value: "RequireDualStack": this cluster is not '
      "configured for dual-stack services"]),
    (STORED, {**STORED, "ipFamilyPolicy": "PreferDualStack"},
     ("PreferDualStack", ["IPv4"], ["10.96.0.5"])),
    # headless, selectorless: the second family goes only with SingleStack
    (STORED_HEADLESS, {**STORED_HEADLESS, "ipFamilies": ["IPv4"]},
     ['spec.ipFamilyPolicy: Invalid value: "RequireDualStack": must be \'SingleStack\' '
      "to release the secondary IP family"]),
    (STORED_HEADLESS, {**STORED_HEADLESS, "ipFamilyPolicy": "SingleStack"},
     ("SingleStack", ["IPv4"], ["None"])),
    (STORED_HEADLESS, headless(), ("RequireDualStack", ["IPv4", "IPv6"], ["None"])),
    # a selector makes it an ordinary headless Service: dual-stack is then refused
    (STORED_HEADLESS, {**STORED_HEADLESS, "selector": SEL},
     ['spec.ipFamilyPolicy: Invalid value: "RequireDualStack": this cluster is not '
      "configured for dual-stack services",
      f'spec.ipFamilies[1]: Invalid value: "IPv6": {NOT_HERE}']),
    # PreferDualStack untouched keeps what it has, even a family the cluster lost
    (PREFER_V6, dict(PREFER_V6), ("PreferDualStack", ["IPv6"], ["fd00::5"])),
]


@pytest.mark.parametrize(("old", "new", "expected"), UPDATE)
def test_update(old: dict, new: dict, expected: object) -> None:
    assert outcome(ip_family_fields(new, old, configured=V4)) == expected


@pytest.mark.parametrize(("spec", "ips"), [
    ({}, []), ({"clusterIP": "10.96.0.5"}, ["10.96.0.5"]),
    ({"clusterIP": "10.96.0.5", "clusterIPs": ["10.96.0.5", "fd00::5"]},
     ["10.96.0.5", "fd00::5"]),
    ({"clusterIP": "None"}, ["None"]), ({"clusterIPs": []}, []),
])
def test_written_cluster_ips_reads_the_plural_else_the_singular(spec: dict,
                                                                ips: list[str]) -> None:
    assert written_cluster_ips(spec) == ips
