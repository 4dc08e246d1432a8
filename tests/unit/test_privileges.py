"""The node agent's privilege check for ``--own-netns``: what it reports missing, as a table."""

from __future__ import annotations

import pytest

from nodeagent.main import check_environment, parse_args
from nodeagent.node import privileges
from nodeagent.node.privileges import SYSPATHS, effective_caps, message, missing

ALL = 0x000001FFFEFFFFFF  # a root shell on this machine (no CAP_SYS_RESOURCE)
DOCKER_DEFAULT = 0x00000000A80425FB  # what Docker grants by default
NET_ADMIN = 1 << 12
SYS_ADMIN = 1 << 21


def test_effective_caps_from_proc_status() -> None:
    status = "Name:\tpython3\nCapInh:\t0000000000000000\nCapEff:\t00000000a80425fb\nSeccomp:\t2\n"
    assert effective_caps(status) == DOCKER_DEFAULT
    assert effective_caps("Name:\tx\n") is None


@pytest.mark.parametrize(("cap_eff", "writable", "apparmor", "netns_error", "expected"), [
    (ALL, True, "", "", []),
    (DOCKER_DEFAULT | NET_ADMIN | SYS_ADMIN, True, "unconfined", "", []),
    (DOCKER_DEFAULT, False, "", "", ["NET_ADMIN", "SYS_ADMIN", SYSPATHS]),
    (DOCKER_DEFAULT | NET_ADMIN, True, "", "", ["SYS_ADMIN"]),
    (DOCKER_DEFAULT | SYS_ADMIN, False, "", "", ["NET_ADMIN", SYSPATHS]),
    (DOCKER_DEFAULT | NET_ADMIN | SYS_ADMIN, False, "", "", [SYSPATHS]),
    # can't read the mask: don't guess, the other checks still count
    (None, True, "", "", []),
    (ALL, True, "docker-default (enforce)", "",
     ["an AppArmor profile that allows mounts (this one: docker-default (enforce); "
      "apparmor=unconfined)"]),
    (ALL, True, "docker-default (complain)", "", []),
    (ALL, True, "my-profile (enforce)", "", []),
    (ALL, True, "", "unshare: unshare failed: Operation not permitted",
     ["permission to create network namespaces (unshare: unshare failed: Operation not "
      "permitted; seccomp=unconfined or a profile allowing unshare)"]),
    # a failed probe is only reported when nothing more basic explains it
    (DOCKER_DEFAULT, True, "", "Operation not permitted", ["NET_ADMIN", "SYS_ADMIN"]),
])
def test_missing(cap_eff: int | None, writable: bool, apparmor: str, netns_error: str,
                 expected: list[str]) -> None:
    assert missing(cap_eff=cap_eff, proc_sys_writable=writable, apparmor=apparmor,
                   netns_error=netns_error) == expected


def test_message_is_one_line_naming_what_is_missing_and_the_fix() -> None:
    line = message(["NET_ADMIN", SYSPATHS])
    assert "\n" not in line
    assert line.startswith("--own-netns needs privileges this container lacks: NET_ADMIN, "
                           "a writable /proc/sys")
    for words in ("cap_add: [NET_ADMIN, SYS_ADMIN]", "systempaths=unconfined",
                  "apparmor=unconfined", "--cap-add NET_ADMIN",
                  "remount /proc/sys read-write"):
        assert words in line


def test_message_mentions_the_remount_only_for_proc_sys() -> None:
    assert "remount" not in message(["SYS_ADMIN"])


def test_check_environment_runs_the_check_only_with_own_netns(
        monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[int] = []

    def fake_check() -> str:
        calls.append(1)
        return "lacks NET_ADMIN"

    monkeypatch.setattr(privileges, "check", fake_check)
    assert check_environment(parse_args(["--node", "n1", "--own-netns"])) == "lacks NET_ADMIN"
    assert calls == [1]
    # the proxy alone, or a node namespace given by name, never asks
    check_environment(parse_args(["--node", "n1"]))
    check_environment(parse_args(["--node", "n1", "--own-netns", "--no-pods"]))
    check_environment(parse_args(["--node", "n1", "--netns", "mp-nonexistent-node-1"]))
    assert calls == [1]
