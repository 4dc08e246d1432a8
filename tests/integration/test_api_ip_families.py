"""IP families on a single-stack (IPv4) cluster, against a real API server and the real
kubectl: what the cluster cannot serve is a 422 naming the field, with Kubernetes'
message, and nothing is stored; PreferDualStack falls back to IPv4 and keeps its
policy; a headless Service without a selector gets both families, as in Kubernetes."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import USER_KUBECTL, ApiServer, admin_tls
from tests.integration.rest import SVC, service, status_of

NS = "default"
PATH = SVC.format(ns=NS)
NOT_DUAL = "this cluster is not configured for dual-stack services"


@pytest.fixture(scope="module")
def api(shared_api: ApiServer) -> Iterator[httpx.Client]:
    with httpx.Client(verify=admin_tls(), base_url=shared_api.url, timeout=30) as client:
        yield client


def refused(api: httpx.Client, body: dict) -> list[tuple[str, str]]:
    """POST ``body``: it must be a 422 that stored nothing; its causes."""
    resp = api.post(PATH, json=body)
    assert resp.status_code == 422, resp.text
    status = status_of(resp)
    assert status["reason"] == "Invalid"
    assert api.get(f"{PATH}/{body['metadata']['name']}").status_code == 404
    return [(c["field"], c["message"]) for c in status["details"]["causes"]]


def test_families_the_cluster_lacks_are_refused_with_kubernetes_messages(
        api: httpx.Client) -> None:
    assert refused(api, service("v6", ipFamilies=["IPv6"])) == [
        ("spec.ipFamilies[0]", 'Invalid value: "IPv6": not configured on this cluster')]
    assert refused(api, service("require", ipFamilyPolicy="RequireDualStack")) == [
        ("spec.ipFamilyPolicy", f'Invalid value: "RequireDualStack": {NOT_DUAL}')]
    assert refused(api, service("two", ipFamilies=["IPv4", "IPv6"],
                                ipFamilyPolicy="PreferDualStack")) == [
        ("spec.ipFamilies[1]", 'Invalid value: "IPv6": not configured on this cluster')]
    assert refused(api, service("two-single", ipFamilies=["IPv4", "IPv6"])) == [
        ("spec.ipFamilyPolicy", 'Invalid value: "SingleStack": must be \'RequireDualStack\' '
         "or 'PreferDualStack' when multiple IP families are specified")]
    assert refused(api, service("v6-ip", clusterIP="fd00::5")) == [
        ("spec.clusterIPs[0]",
         'Invalid value: []string{"fd00::5"}: IPv6 is not configured on this cluster')]
    assert refused(api, service("v6-ips", clusterIPs=["10.96.7.7", "fd00::7"],
                                ipFamilyPolicy="PreferDualStack")) == [
        ("spec.clusterIPs[1]", 'Invalid value: []string{"10.96.7.7", "fd00::7"}: IPv6 is '
         "not configured on this cluster")]
    # the address asked for above was not taken by any of the refusals
    made = api.post(PATH, json=service("v4-ip", clusterIPs=["10.96.7.7"]))
    assert made.status_code == 201, made.text
    assert made.json()["spec"]["clusterIP"] == "10.96.7.7"


def test_prefer_dual_stack_falls_back_to_ipv4_and_headless_selectorless_gets_both(
        api: httpx.Client) -> None:
    prefer = api.post(PATH, json=service("prefer", ipFamilyPolicy="PreferDualStack"))
    assert prefer.status_code == 201, prefer.text
    spec = prefer.json()["spec"]
    assert (spec["ipFamilyPolicy"], spec["ipFamilies"]) == ("PreferDualStack", ["IPv4"])
    assert spec["clusterIPs"] == [spec["clusterIP"]] and ":" not in spec["clusterIP"]
    body = service("bare", clusterIP="None")
    del body["spec"]["selector"]
    bare = api.post(PATH, json=body)
    assert bare.status_code == 201, bare.text
    spec = bare.json()["spec"]
    assert (spec["ipFamilyPolicy"], spec["ipFamilies"], spec["clusterIPs"]) == (
        "RequireDualStack", ["IPv4", "IPv6"], ["None"])


def test_an_update_cannot_add_a_family_and_leaves_the_service_as_it_was(
        api: httpx.Client) -> None:
    made = api.post(PATH, json=service("upd")).json()
    patch = api.patch(f"{PATH}/upd", json={"spec": {"ipFamilyPolicy": "RequireDualStack",
                                                    "ipFamilies": ["IPv4", "IPv6"]}},
                      headers={"Content-Type": "application/merge-patch+json"})
    assert patch.status_code == 422, patch.text
    assert [c["field"] for c in status_of(patch)["details"]["causes"]] == [
        "spec.ipFamilyPolicy", "spec.ipFamilies[1]"]
    after = api.get(f"{PATH}/upd").json()
    assert after["metadata"]["resourceVersion"] == made["metadata"]["resourceVersion"]
    assert after["spec"]["ipFamilies"] == ["IPv4"]


def test_kubectl_apply_of_an_ipv6_service_says_why_and_fails(shared_api: ApiServer,
                                                              tmp_path: Path) -> None:
    manifest = tmp_path / "v6.yaml"
    manifest.write_text(json.dumps({
        "apiVersion": "v1", "kind": "Service", "metadata": {"name": "kv6"},
        "spec": {"ipFamilies": ["IPv6"], "ipFamilyPolicy": "RequireDualStack",
                 "selector": {"app": "kv6"}, "ports": [{"port": 80}]}}))
    proc = subprocess.run(
        [str(USER_KUBECTL), "--kubeconfig", shared_api.kubeconfig, "--server", shared_api.url,
         "--cache-dir", str(tmp_path / "cache"), "apply", "-f", str(manifest)],
        capture_output=True, text=True, env={"HOME": str(tmp_path), "PATH": "/usr/bin:/bin"},
        timeout=60)
    assert (proc.returncode, proc.stderr) == (1, (
        'The Service "kv6" is invalid: \n'
        f'* spec.ipFamilyPolicy: Invalid value: "RequireDualStack": {NOT_DUAL}\n'
        '* spec.ipFamilies[0]: Invalid value: "IPv6": not configured on this cluster\n'))
