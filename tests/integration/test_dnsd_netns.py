"""Listening inside a network namespace (how dnsd serves pods on the cluster fabric).

Needs root and iproute2. Each test makes its own namespace ``mp-t<random>-dns``,
brings up its loopback, and deletes it at teardown even on failure. Nothing in
the root namespace's network configuration is touched, and every query to the
namespace's address is sent from a thread inside that namespace.
"""

from __future__ import annotations

import os
import secrets
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import dns.message
import dns.query
import pytest

from dnsd.netns import bound_socket, run_in_netns
from dnsd.testing import BIN, DnsdProcess, free_port
from tests.conftest import ApiServer

pytestmark = [
    pytest.mark.root,
    pytest.mark.skipif(os.geteuid() != 0, reason="network namespaces need root"),
    pytest.mark.skipif(shutil.which("ip") is None, reason="iproute2 (`ip`) is not installed"),
]


@pytest.fixture
def netns() -> Iterator[str]:
    name = f"mp-t{secrets.token_hex(3)}-dns"
    subprocess.run(["ip", "netns", "add", name], check=True, capture_output=True)
    try:
        subprocess.run(["ip", "-n", name, "link", "set", "lo", "up"], check=True,
                       capture_output=True)
        yield name
    finally:
        subprocess.run(["ip", "netns", "delete", name], capture_output=True)


def ask_inside(netns: str, port: int, name: str, *, tcp: bool = False) -> list[str]:
    def query() -> list[str]:
        q = dns.message.make_query(name, "A")
        send = dns.query.tcp if tcp else dns.query.udp
        reply = send(q, "127.0.0.1", port=port, timeout=2)
        return [rd.to_text() for rrset in reply.answer for rd in rrset]
    return run_in_netns(netns, query)


def test_socket_bound_inside_stays_inside(netns: str) -> None:
    port = free_port()
    here = os.readlink("/proc/thread-self/ns/net")
    assert run_in_netns(netns, lambda: os.readlink("/proc/thread-self/ns/net")) != here
    sock = bound_socket("127.0.0.1", port, socket.SOCK_DGRAM, netns=netns)
    try:
        def echo_once() -> bytes:
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as client:
                client.settimeout(2)
                client.sendto(b"ping", ("127.0.0.1", port))
                sock.setblocking(True)
                sock.settimeout(2)
                data, addr = sock.recvfrom(100)
                sock.sendto(data.upper(), addr)
                return client.recv(100)
        assert run_in_netns(netns, echo_once) == b"PING"
        # the thread that entered the namespace is gone; this one never left the root
        assert os.readlink("/proc/thread-self/ns/net") == here
    finally:
        sock.close()


def test_missing_namespace_is_an_error() -> None:
    with pytest.raises(FileNotFoundError):
        bound_socket("127.0.0.1", 0, socket.SOCK_DGRAM, netns="mp-does-not-exist-dns")


def test_dnsd_serves_inside_a_namespace(netns: str, apiserver: ApiServer,
                                        tmp_path: Path) -> None:
    inner = free_port()
    dnsd = DnsdProcess(apiserver.url, tmp_path / "dnsd.log", kubeconfig=apiserver.kubeconfig,
                       extra_args=("--listen", f"netns:{netns}:127.0.0.1:{inner}"))
    try:
        dnsd.start()
        name = "kubernetes.default.svc.cluster.local."
        assert ask_inside(netns, inner, name) == ["10.96.0.1"]
        assert ask_inside(netns, inner, name, tcp=True) == ["10.96.0.1"]
        # and the loopback listener in the root namespace works alongside it
        assert [rd.to_text() for rr in dnsd.query(name).answer for rd in rr] == ["10.96.0.1"]
    finally:
        dnsd.stop()


def test_dnsd_refuses_to_start_in_a_missing_namespace() -> None:
    started = time.monotonic()
    result = subprocess.run([str(BIN / "mp-dnsd"), "--listen",
                             "netns:mp-no-such-ns-dns:127.0.0.1:5353"],
                            capture_output=True, text=True, timeout=30)
    assert result.returncode == 1 and result.stderr.count("\n") == 1
    assert "cannot listen on netns:mp-no-such-ns-dns:127.0.0.1:5353 (udp)" in result.stderr
    assert time.monotonic() - started < 10
