"""The API server's serving facts as pure functions: listen addresses, the serving
certificate's names, the advertise address, the ``kubernetes`` EndpointSlice."""

from __future__ import annotations

import pytest

from apiserver.services import kubernetes_endpoint_slice
from apiserver.serving import (
    KUBERNETES_NAMES,
    Listen,
    advertise_address,
    client_url,
    default_cert_dir,
    parse_listen,
    parse_san,
    serving_identity,
)
from controllers.slices import desired_slices


@pytest.mark.parametrize(("text", "listen", "url"), [
    ("127.0.0.1:6443", Listen("127.0.0.1", 6443), "https://127.0.0.1:6443"),
    (":6443", Listen("127.0.0.1", 6443), "https://127.0.0.1:6443"),
    ("0.0.0.0:6443", Listen("0.0.0.0", 6443), "https://127.0.0.1:6443"),
    ("[::1]:6443", Listen("::1", 6443), "https://[::1]:6443"),
    ("netns:mp-c1-fabric:10.250.0.1:6443", Listen("10.250.0.1", 6443, "mp-c1-fabric"),
     "https://10.250.0.1:6443"),
])
def test_parse_listen(text: str, listen: Listen, url: str) -> None:
    assert parse_listen(text) == listen and client_url(listen) == url
    assert parse_listen(str(listen)) == listen


@pytest.mark.parametrize("text", ["localhost:6443", "1.2.3.4:0", "netns:a/b:1.2.3.4:1",
                                  "netns:1.2.3.4", "1.2.3.4"])
def test_parse_listen_refuses(text: str) -> None:
    with pytest.raises(ValueError):
        parse_listen(text)


def test_parse_san() -> None:
    assert parse_san("ApiServer") == "apiserver" and parse_san("10.0.0.1") == "10.0.0.1"
    assert parse_san("*.example.com") == "*.example.com"
    for bad in ("", "a b", "-x", "x" * 254):
        with pytest.raises(ValueError):
            parse_san(bad)


@pytest.mark.parametrize(("listens", "explicit", "host_ip", "expected"), [
    (["127.0.0.1:6443"], None, None, "127.0.0.1"),
    (["0.0.0.0:6443"], None, "172.18.0.5", "172.18.0.5"),
    (["0.0.0.0:6443"], None, None, "127.0.0.1"),
    (["0.0.0.0:6443", "netns:f:10.250.0.1:6443"], None, None, "10.250.0.1"),
    (["127.0.0.1:6443"], "10.250.0.1", "172.18.0.5", "10.250.0.1"),
])
def test_advertise_address(listens: list[str], explicit: str | None, host_ip: str | None,
                           expected: str) -> None:
    assert advertise_address([parse_listen(x) for x in listens], explicit, host_ip) == expected


def test_serving_identity_names_addresses_service_ip_and_extra_sans() -> None:
    who = serving_identity(listens=[parse_listen("0.0.0.0:6443"),
                                    parse_listen("netns:f:10.250.0.1:6443")],
                           advertise="10.250.0.1", service_cidr="10.100.0.0/16",
                           extra_sans=["apiserver", "172.18.0.5"])
    assert who.server and not who.client and who.common_name == "kube-apiserver"
    assert who.ip_addresses == ("127.0.0.1", "10.250.0.1", "10.100.0.1", "172.18.0.5")
    assert who.dns_names == ("localhost", *KUBERNETES_NAMES, "apiserver")


def test_default_cert_dir_is_beside_the_sqlite_file() -> None:
    assert default_cert_dir("sqlite:///.miniplane/state.db") == ".miniplane/pki"
    assert default_cert_dir("sqlite:////var/lib/mp/state.db") == "/var/lib/mp/pki"
    assert default_cert_dir("sqlite:///:memory:") is None
    assert default_cert_dir("postgresql+psycopg://u@h/db") is None


def test_kubernetes_slice_is_left_alone_by_the_endpointslice_controller() -> None:
    ours = kubernetes_endpoint_slice(["10.250.0.1"], 6443)
    assert ours["addressType"] == "IPv4"
    assert kubernetes_endpoint_slice(["fd00::1"], 6443)["addressType"] == "IPv6"
    service = {"metadata": {"name": "kubernetes", "namespace": "default", "uid": "u1"},
               "spec": {"type": "ClusterIP", "ports": [{"name": "https", "port": 443,
                                                        "targetPort": 6443}]}}
    assert desired_slices(service, [], [ours]).empty
