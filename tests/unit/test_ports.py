"""componentbase.ports: the port a component is started with, probed as it will bind it."""

from __future__ import annotations

import socket

import pytest

from componentbase import ports


def test_random_ports_come_from_outside_the_ephemeral_range() -> None:
    """Outgoing connections take their local ports from the ephemeral range (and leave
    TIME_WAIT there), so a listener's port is drawn from elsewhere."""
    low, high = ports.ephemeral_range()
    for _ in range(20):
        port = ports.free_port(udp=True)
        assert ports.LOWEST <= port < 65536 and not low <= port <= high
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp, socket.socket() as tcp:
            udp.bind(("127.0.0.1", port))
            tcp.bind(("127.0.0.1", port))


def test_a_taken_preferred_port_is_passed_over() -> None:
    with socket.create_server(("127.0.0.1", 0)) as listener:
        taken = listener.getsockname()[1]
        assert ports.free_port(taken) != taken
        assert ports.free_port(taken, udp=True) != taken
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
        udp.bind(("127.0.0.1", 0))
        taken = udp.getsockname()[1]
        assert ports.free_port(taken) == taken  # TCP only: UDP's use doesn't matter
        assert ports.free_port(taken, udp=True) != taken


def test_no_candidate_left_is_one_oserror() -> None:
    with socket.create_server(("127.0.0.1", 0)) as listener:
        taken = listener.getsockname()[1]
        with pytest.raises(OSError, match="no free port on 127.0.0.1"):
            ports.free_port(taken, attempts=0)
