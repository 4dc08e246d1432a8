"""A watch on an API server that the network cuts off (not killed: no reset, no FIN).

The server listens inside a namespace ``srv`` (``--listen netns:…``) and the client
runs in a namespace ``cli``, joined by a veth; the cut is an iptables DROP inside
``srv`` (a namespace of this test, never the root one). What a user relies on: the
client's watch fails within about half a minute (TCP keepalive, a limit on
unacknowledged data) instead of at its read timeout ten minutes later, so an
informer moves to another server.
"""

from __future__ import annotations

import threading
from typing import Any

import pytest

from apimachinery.kinds import NAMESPACE
from client.errors import ApiError, ConnectionFailed
from client.http import Client
from tests.conftest import admin_config, wait_until
from tests.netns import Lab, have_root_tools, run_in_netns, sh

pytestmark = [pytest.mark.root,
              pytest.mark.skipif(have_root_tools() is not None, reason=have_root_tools() or "")]

SRV_IP, CLI_IP = "10.254.1.1", "10.254.1.2"  # inside this test's namespaces only


def test_a_watch_on_a_server_cut_off_by_the_network_fails_within_a_minute(
        lab: Lab, make_apiserver) -> None:
    srv, cli = lab.ns("srv"), lab.ns("cli")
    lab.veth(srv, "eth0", cli, "eth0")
    sh("ip", "-n", srv, "addr", "add", f"{SRV_IP}/24", "dev", "eth0")
    sh("ip", "-n", cli, "addr", "add", f"{CLI_IP}/24", "dev", "eth0")
    server = make_apiserver("--listen", f"netns:{srv}:{SRV_IP}:6443", "--tls-san", SRV_IP)
    url = f"https://{SRV_IP}:6443"
    seen: list[str] = []
    outcome: dict[str, Any] = {}

    def watch() -> None:  # runs with its thread inside `cli`
        try:
            with Client(admin_config(url)) as client:
                rv = client.list(NAMESPACE)["metadata"]["resourceVersion"]
                for event in client.watch(NAMESPACE, resource_version=rv, timeout_seconds=600):
                    seen.append(event["object"]["metadata"]["name"])
            outcome["ended"] = "the server ended the watch"
        except (ConnectionFailed, ApiError) as exc:
            outcome["error"] = exc

    watcher = threading.Thread(target=lambda: run_in_netns(cli, watch), daemon=True)
    watcher.start()
    with server.client() as local:  # the same server, on loopback
        made = iter(range(1000))
        wait_until(lambda: outcome or (local.create(NAMESPACE, {"metadata": {
            "name": f"n{next(made)}"}}) and bool(seen)), timeout=15,
            what="the watch to deliver an event")
    assert not outcome, outcome
    lab.exec(srv, "iptables", "-w", "5", "-A", "INPUT", "-i", "eth0", "-j", "DROP")
    lab.exec(srv, "iptables", "-w", "5", "-A", "OUTPUT", "-o", "eth0", "-j", "DROP")
    wait_until(lambda: outcome, timeout=75, interval=0.5,
               what="the watch on the cut-off server to fail")
    assert isinstance(outcome.get("error"), ConnectionFailed), outcome
    watcher.join(5)
