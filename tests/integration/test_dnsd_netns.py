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
from mpctl.cluster import commands as cluster_commands
from mpctl.cluster.plan import PREFERRED_DNS_PORT
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


# -- the port `mpctl cluster up` picks for dnsd (issue 15) ---------------------------------

ONLY_EPHEMERAL = 40000  # a namespace's whole ephemeral range: every port-0 bind gets it
TIME_WAIT = "06"  # the state column of /proc/net/tcp


def _time_wait_on(port: int) -> bool:
    with open("/proc/thread-self/net/tcp") as table:  # this thread's namespace
        return any(f"0100007F:{port:04X}" == cols[1] and cols[3] == TIME_WAIT
                   for cols in (line.split() for line in table.readlines()[1:]))


def _close_leaving_time_wait(listener: socket.socket, port: int, *, client_first: bool) -> None:
    """Connect to ``listener`` and close so that the side that closes first (which keeps
    TIME_WAIT) has local port ``port``; return once the kernel shows it."""
    client = socket.create_connection(listener.getsockname()[:2], timeout=2)
    conn, _ = listener.accept()
    first, second = (client, conn) if client_first else (conn, client)
    first.shutdown(socket.SHUT_WR)
    assert second.recv(1) == b""
    second.close()
    assert first.recv(1) == b""
    first.close()
    deadline = time.monotonic() + 10
    while not _time_wait_on(port):
        assert time.monotonic() < deadline, f"no TIME_WAIT socket on port {port}"
        time.sleep(0.01)


def _dnsd_binds(port: int) -> None:
    """UDP and TCP on ``port`` exactly as ``mp-dnsd --listen 127.0.0.1:PORT`` binds them."""
    for sock in [bound_socket("127.0.0.1", port, kind)
                 for kind in (socket.SOCK_DGRAM, socket.SOCK_STREAM)]:
        sock.close()


def test_cluster_up_dns_port_despite_a_client_time_wait(netns: str) -> None:
    """`cluster up` failed with "no free port on 127.0.0.1" when the random UDP port it
    picked for dnsd had a TCP socket in TIME_WAIT on its number (the test suite's
    connections leave them on ephemeral ports for 60 s). Made certain here: in a fresh
    namespace whose ephemeral range is one port, a client connection gets that port and
    closes first, so TIME_WAIT stays on it; a random UDP port would be that number."""
    subprocess.run(["ip", "netns", "exec", netns, "sysctl", "-qw",
                    f"net.ipv4.ip_local_port_range={ONLY_EPHEMERAL} {ONLY_EPHEMERAL}"],
                   check=True, capture_output=True)

    def scenario() -> int:
        with socket.create_server(("127.0.0.1", 53)) as listener:
            _close_leaving_time_wait(listener, ONLY_EPHEMERAL, client_first=True)
        port = cluster_commands.free_port(udp=True)
        _dnsd_binds(port)
        assert _time_wait_on(ONLY_EPHEMERAL)  # still there: it was avoided, not expired
        return port

    port = run_in_netns(netns, scenario)
    assert port != ONLY_EPHEMERAL and 10000 <= port < 65536


def test_cluster_up_keeps_the_preferred_dns_port_after_a_restart(netns: str) -> None:
    """dnsd closes idle TCP connections itself, leaving TIME_WAIT on its own port; the
    next `cluster up` must still get that port (dnsd's listener binds it with
    SO_REUSEADDR), not turn it down for a random one."""

    def scenario() -> int:
        with socket.create_server(("127.0.0.1", PREFERRED_DNS_PORT)) as old_dnsd:
            _close_leaving_time_wait(old_dnsd, PREFERRED_DNS_PORT, client_first=False)
        port = cluster_commands.free_port(PREFERRED_DNS_PORT, udp=True)
        _dnsd_binds(port)
        return port

    assert run_in_netns(netns, scenario) == PREFERRED_DNS_PORT
