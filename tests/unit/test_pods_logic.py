"""Pure parts of the pod runtime: IPAM, names, resolv.conf, restarts, probes, status."""

from __future__ import annotations

import json
import socket
from pathlib import Path

import pytest

from nodeagent.pods.ipam import Exhausted, Ipam, next_free
from nodeagent.pods.netns import gratuitous_arp
from nodeagent.pods.probes import ProbeCounter, resolve_port
from nodeagent.pods.status import (
    ContainerRecord,
    pod_netns,
    pod_phase,
    pod_status,
    restart_delay,
    should_restart,
)

T0, T1 = "2026-01-01T00:00:00Z", "2026-01-01T00:00:05Z"


def test_next_free_skips_network_gateway_and_used() -> None:
    assert next_free("10.244.1.0/24", set()) == "10.244.1.2"
    assert next_free("10.244.1.0/24", {"10.244.1.2"}) == "10.244.1.3"
    with pytest.raises(Exhausted):
        next_free("10.244.1.0/30", {"10.244.1.2"})


def test_next_free_goes_round_from_the_last_address_given() -> None:
    assert next_free("10.244.1.0/24", set(), after="10.244.1.5") == "10.244.1.6"
    assert next_free("10.244.1.0/24", {"10.244.1.7"}, after="10.244.1.6") == "10.244.1.8"
    # past the end it wraps to the first host, never to the network or gateway
    assert next_free("10.244.1.0/24", {"10.244.1.2"}, after="10.244.1.254") == "10.244.1.3"
    assert next_free("10.244.1.0/24", set(), after="10.9.9.9") == "10.244.1.2"
    assert next_free("fd00:10:244:1::/64", set(), after="fd00:10:244:1::5") == \
        "fd00:10:244:1::6"


def test_ipam_persists_and_is_idempotent(tmp_path: Path) -> None:
    ipam = Ipam(tmp_path / "ipam.json", "10.244.1.0/24")
    a, b = ipam.allocate("uid-a"), ipam.allocate("uid-b")
    assert (a, b) == ("10.244.1.2", "10.244.1.3")
    assert ipam.allocate("uid-a") == a
    again = Ipam(tmp_path / "ipam.json", "10.244.1.0/24")
    assert again.allocate("uid-c") == "10.244.1.4"  # a restart never reuses a live IP
    again.release("uid-a")
    # a freed IP waits its turn: stale neighbour entries for it must not meet a new pod
    assert Ipam(tmp_path / "ipam.json", "10.244.1.0/24").allocate("uid-d") == "10.244.1.5"
    assert Ipam(tmp_path / "ipam.json", "10.244.9.0/24").owners == {}  # another CIDR
    # a damaged record of the last IP given costs the round-robin, not the pods
    record = json.loads((tmp_path / "ipam.json").read_text())
    (tmp_path / "ipam.json").write_text(json.dumps({**record, "last": "not an ip"}))
    assert Ipam(tmp_path / "ipam.json", "10.244.1.0/24").allocate("uid-e") == a


def test_names() -> None:
    assert pod_netns("t1", "0a1b2c3d-4e5f-aaaa-bbbb-cccccccccccc") == "mp-t1-pod-0a1b2c3d"


@pytest.mark.parametrize(("policy", "code", "restart"), [
    ("Always", 0, True), ("Always", 1, True), ("OnFailure", 0, False),
    ("OnFailure", 2, True), ("Never", 1, False), ("Never", 0, False),
])
def test_should_restart(policy: str, code: int, restart: bool) -> None:
    assert should_restart(policy, code) is restart


def test_restart_delay_doubles_and_caps() -> None:
    assert [restart_delay(n, base=10, cap=300) for n in range(7)] == [0, 10, 20, 40, 80, 160,
                                                                     300]


def test_probe_counter_thresholds() -> None:
    c = ProbeCounter(success_threshold=2, failure_threshold=3)
    assert c.record(True) is None
    assert c.record(True) is True
    assert c.record(False) is True and c.record(False) is True
    assert c.record(False) is False
    assert c.record(True) is False
    assert c.record(True) is True


def test_resolve_port() -> None:
    container = {"ports": [{"name": "http", "containerPort": 8080}]}
    assert resolve_port(80, container) == 80
    assert resolve_port("http", container) == 8080
    with pytest.raises(ValueError):
        resolve_port("nope", container)


def running(name: str, *, ready: bool) -> ContainerRecord:
    return ContainerRecord(name=name, state={"running": {"startedAt": T0}}, ready=ready,
                           started=True)


def test_phase() -> None:
    assert pod_phase([]) == "Pending"
    assert pod_phase([ContainerRecord(name="a")]) == "Pending"
    assert pod_phase([running("a", ready=False)]) == "Running"
    backoff = ContainerRecord(name="a", state={"waiting": {"reason": "CrashLoopBackOff"}},
                              started=True, restart_count=2)
    assert pod_phase([backoff]) == "Running"
    assert pod_phase([ContainerRecord(name="a", state={"waiting": {
        "reason": "CreateContainerError"}})]) == "Pending"
    done = ContainerRecord(name="a", state={"terminated": {"exitCode": 0}}, finished=True)
    failed = ContainerRecord(name="b", state={"terminated": {"exitCode": 3}}, finished=True)
    assert pod_phase([done]) == "Succeeded"
    assert pod_phase([done, failed]) == "Failed"


def test_status_ready_and_transition_times_kept() -> None:
    s1 = pod_status(old_status={}, containers=[running("a", ready=False)], pod_ip="10.244.1.2",
                    host_ip="10.250.0.2", start_time=T0, now=T0)
    cond = {c["type"]: c for c in s1["conditions"]}
    assert s1["phase"] == "Running" and s1["podIP"] == "10.244.1.2"
    assert s1["podIPs"] == [{"ip": "10.244.1.2"}] and s1["hostIP"] == "10.250.0.2"
    assert cond["Ready"]["status"] == "False" and cond["PodScheduled"]["status"] == "True"
    s2 = pod_status(old_status=s1, containers=[running("a", ready=True)], pod_ip="10.244.1.2",
                    host_ip="10.250.0.2", start_time=T0, now=T1)
    cond2 = {c["type"]: c for c in s2["conditions"]}
    assert cond2["Ready"] == {"type": "Ready", "status": "True", "lastProbeTime": None,
                              "lastTransitionTime": T1}
    assert cond2["PodScheduled"]["lastTransitionTime"] == T0
    s3 = pod_status(old_status=s2, containers=[running("a", ready=True)], pod_ip="10.244.1.2",
                    host_ip="10.250.0.2", start_time=T0, now="2026-01-01T00:09:00Z")
    assert s3 == s2  # unchanged pod → identical status, no write


def test_gratuitous_arp_is_an_rfc5227_announcement() -> None:
    mac = bytes.fromhex("020000000042")
    frame = gratuitous_arp(mac, "10.244.7.9")
    ip = socket.inet_aton("10.244.7.9")
    assert frame[:6] == b"\xff" * 6 and frame[6:12] == mac and frame[12:14] == b"\x08\x06"
    arp = frame[14:]
    assert arp[:8] == bytes.fromhex("0001080006040001")  # Ethernet/IPv4, request
    assert (arp[8:14], arp[14:18], arp[18:24], arp[24:28]) == (mac, ip, b"\x00" * 6, ip)
