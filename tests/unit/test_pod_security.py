"""A container's effective securityContext and the argv that applies it; the
ServiceAccount token's pure parts and its atomic ``..data`` swap on real files."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from nodeagent.pods.envvars import service_env
from nodeagent.pods.launch import BIND_FLAGS, LaunchError, _mount_point, parse
from nodeagent.pods.security import (
    ALL_CAPABILITIES,
    DEFAULT_CAPABILITIES,
    MS_BIND,
    MS_NODEV,
    MS_NOSUID,
    MS_RDONLY,
    MS_RELATIME,
    MS_REMOUNT,
    SERVICE_ACCOUNT_MOUNT,
    ConfigError,
    Remount,
    Security,
    effective_capabilities,
    effective_security,
    launch_argv,
    read_only_remounts,
    setpriv_argv,
)
from nodeagent.pods.serviceaccount import (
    Token,
    parse_time,
    refresh_delay,
    service_account_name,
    token_dir_owner,
    token_from_status,
    token_request,
    wants_token,
)


def pod(psc: dict[str, Any] | None = None, **spec: Any) -> dict[str, Any]:
    return {"metadata": {"name": "web", "namespace": "ns1", "uid": "u-1"},
            "spec": {**({"securityContext": psc} if psc is not None else {}), **spec}}


def ctr(csc: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"name": "c", **({"securityContext": csc} if csc is not None else {})}


SECURITY_CASES = [
    ("nothing: root with the default set", None, None,
     Security(uid=0, gid=0, groups=(), capabilities=DEFAULT_CAPABILITIES)),
    ("pod user", {"runAsUser": 1000, "runAsGroup": 2000}, None,
     Security(uid=1000, gid=2000)),
    ("container overrides pod", {"runAsUser": 1000, "runAsGroup": 2000},
     {"runAsUser": 1500, "runAsGroup": 2500}, Security(uid=1500, gid=2500)),
    ("container null does not override", {"runAsUser": 1000}, {"runAsUser": None},
     Security(uid=1000, gid=0)),
    ("supplemental + fsGroup, sorted", {"supplementalGroups": [30, 10], "fsGroup": 20}, None,
     Security(groups=(10, 20, 30))),
    ("fsGroup already listed", {"supplementalGroups": [5], "fsGroup": 5}, None,
     Security(groups=(5,))),
    ("non-root with a user", {"runAsNonRoot": True, "runAsUser": 7}, None, Security(uid=7)),
    ("privileged: everything", None, {"privileged": True},
     Security(capabilities=frozenset(ALL_CAPABILITIES), privileged=True)),
    ("no escalation → no_new_privs", None, {"allowPrivilegeEscalation": False},
     Security(no_new_privs=True)),
    ("escalation true: no flag", None, {"allowPrivilegeEscalation": True}, Security()),
    ("read-only root", None, {"readOnlyRootFilesystem": True}, Security(read_only_root=True)),
    ("drop ALL", None, {"capabilities": {"drop": ["ALL"]}},
     Security(capabilities=frozenset())),
]


@pytest.mark.parametrize(("what", "psc", "csc", "want"), SECURITY_CASES,
                         ids=[c[0] for c in SECURITY_CASES])
def test_effective_security(what: str, psc: dict | None, csc: dict | None,
                            want: Security) -> None:
    assert effective_security(pod(psc), ctr(csc)) == want


def test_group_defaults_to_the_users_primary_group_then_zero() -> None:
    assert effective_security(pod({"runAsUser": 1000}), ctr(),
                              primary_gid={1000: 1001}.get).gid == 1001
    assert effective_security(pod({"runAsUser": 4242}), ctr(),
                              primary_gid={1000: 1001}.get).gid == 0


CAPABILITY_CASES = [
    ("default", None, DEFAULT_CAPABILITIES),
    ("add one", {"add": ["NET_ADMIN"]}, DEFAULT_CAPABILITIES | {"NET_ADMIN"}),
    ("CAP_ prefix and case", {"add": ["cap_sys_time"]}, DEFAULT_CAPABILITIES | {"SYS_TIME"}),
    ("drop one", {"drop": ["NET_RAW"]}, DEFAULT_CAPABILITIES - {"NET_RAW"}),
    ("drop ALL, add one", {"drop": ["ALL"], "add": ["NET_BIND_SERVICE"]},
     frozenset({"NET_BIND_SERVICE"})),
    ("add ALL, drop one", {"add": ["ALL"], "drop": ["CHOWN"]},
     frozenset(ALL_CAPABILITIES) - {"CHOWN"}),
    ("add and drop the same: drop wins", {"add": ["SYS_ADMIN"], "drop": ["SYS_ADMIN"]},
     DEFAULT_CAPABILITIES),
]


@pytest.mark.parametrize(("what", "caps", "want"), CAPABILITY_CASES,
                         ids=[c[0] for c in CAPABILITY_CASES])
def test_effective_capabilities(what: str, caps: dict | None, want: frozenset[str]) -> None:
    assert effective_capabilities(caps, field="f") == want


def test_default_set_is_kubernetes_fourteen_without_sys_admin() -> None:
    assert len(DEFAULT_CAPABILITIES) == 14
    assert "SYS_ADMIN" not in DEFAULT_CAPABILITIES and "NET_ADMIN" not in DEFAULT_CAPABILITIES
    assert set(ALL_CAPABILITIES) >= DEFAULT_CAPABILITIES


REFUSED = [
    ("non-root, no user", {"runAsNonRoot": True}, None,
     'container has runAsNonRoot and image will run as root (pod: "web_ns1(u-1)", '
     "container: c)"),
    ("non-root, user 0", None, {"runAsNonRoot": True, "runAsUser": 0},
     "container's runAsUser breaks non-root policy (pod: \"web_ns1(u-1)\", container: c)"),
    ("container non-root over pod's false", {"runAsNonRoot": False}, {"runAsNonRoot": True},
     "container has runAsNonRoot and image will run as root"),
    ("negative uid", {"runAsUser": -1}, None, "runAsUser: invalid value -1"),
    ("string uid", None, {"runAsUser": "1000"}, "runAsUser: invalid value '1000'"),
    ("bool uid", None, {"runAsUser": True}, "runAsUser: invalid value True"),
    ("unknown capability", None, {"capabilities": {"add": ["FLY"]}},
     "capabilities.add: unknown capability 'FLY'"),
    ("supplementalGroups not a list", {"supplementalGroups": "1"}, None,
     "supplementalGroups: must be a list"),
    ("privileged not a bool", None, {"privileged": "yes"}, "privileged: invalid value"),
    ("securityContext not an object", None, None, "securityContext: must be an object"),
]


@pytest.mark.parametrize(("what", "psc", "csc", "message"), REFUSED,
                         ids=[c[0] for c in REFUSED])
def test_refused(what: str, psc: dict | None, csc: dict | None, message: str) -> None:
    c = ctr(csc) if what != "securityContext not an object" else {"name": "c",
                                                                  "securityContext": []}
    with pytest.raises(ConfigError) as exc:
        effective_security(pod(psc), c)
    assert message in str(exc.value)


def test_setpriv_argv() -> None:
    argv = setpriv_argv(Security(uid=1000, gid=1000, groups=(5, 6),
                                 capabilities=frozenset({"KILL", "CHOWN"}), no_new_privs=True))
    assert argv == ["setpriv", "--reuid", "1000", "--regid", "1000", "--groups", "5,6",
                    "--inh-caps", "-all", "--ambient-caps", "-all",
                    "--bounding-set", "-all,+chown,+kill", "--no-new-privs"]
    root = setpriv_argv(Security(capabilities=frozenset()))
    assert "--clear-groups" in root and root[root.index("--bounding-set") + 1] == "-all"
    assert "--no-new-privs" not in root


def test_launch_argv_without_and_with_mounts() -> None:
    plain = launch_argv(netns="mp-x-pod-1", sec=Security(), command=["id", "-u"],
                        env={"A": "1", "B=C": "x"}, token_dir=None, python="/py")
    assert plain[:4] == ["ip", "netns", "exec", "mp-x-pod-1"]
    assert "unshare" not in plain
    i = plain.index("env")
    assert plain[i:] == ["env", "-i", "--", "A=1", "id", "-u"]  # a name with "=" left out
    mounted = launch_argv(netns="n", sec=Security(read_only_root=True), command=["x"], env={},
                          token_dir="/state/pods/u/serviceaccount", python="/py")
    assert mounted[4:13] == ["unshare", "--mount", "--propagation", "private", "--",
                             "/py", "-I", "-m", "nodeagent.pods.launch"]
    assert mounted[13:18] == ["--bind-ro", "/state/pods/u/serviceaccount",
                              SERVICE_ACCOUNT_MOUNT, "--read-only-root", "--"]
    assert mounted[18] == "setpriv"
    assert parse(mounted[13:]) == ([("/state/pods/u/serviceaccount", SERVICE_ACCOUNT_MOUNT,
                                     BIND_FLAGS["--bind-ro"])], True, mounted[18:])
    with pytest.raises(LaunchError):
        parse(["--read-only-root"])


def test_launch_argv_joins_the_pods_uts_namespace_and_binds_its_files() -> None:
    binds = [("/state/pods/u/resolv.conf", "/etc/resolv.conf"),
             ("/state/pods/u/etc-hosts", "/etc/hosts")]
    argv = launch_argv(netns="n", sec=Security(), command=["hostname"], env={},
                       token_dir=None, python="/py", binds=binds, uts="/state/pods/u/uts")
    assert argv[:8] == ["ip", "netns", "exec", "n", "nsenter", "--uts=/state/pods/u/uts", "--",
                        "unshare"]
    i = argv.index("nodeagent.pods.launch") + 1
    assert parse(argv[i:])[0] == [(s, t, BIND_FLAGS["--bind-ro"]) for s, t in binds]
    # a hostNetwork pod on an agent that runs in its node's namespace: no ip netns exec
    host = launch_argv(netns=None, sec=Security(), command=["hostname"], env={},
                       token_dir=None, python="/py", binds=binds, uts="/state/pods/u/uts")
    assert host[:3] == ["nsenter", "--uts=/state/pods/u/uts", "--"]


MOUNTINFO = """\
22 1 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw
23 22 0:5 / /proc rw,nosuid,nodev,noexec,relatime shared:2 - proc proc rw
24 22 0:6 / /dev rw,nosuid,relatime shared:3 - devtmpfs udev rw
25 24 0:7 / /dev/shm rw,nosuid,nodev shared:4 - tmpfs tmpfs rw
26 22 0:8 / /sys rw,nosuid,nodev,noexec,relatime - sysfs sysfs rw
27 22 0:9 / /mnt/already ro,nosuid,nodev,relatime - tmpfs tmpfs rw
28 22 8:1 /data /srv/with\\040space rw,nosuid,nodev,relatime - ext4 /dev/sda1 rw
29 22 0:10 / /proc2 rw,relatime - tmpfs tmpfs rw
30 22 0:11 / /srv/with\\040space rw,relatime - tmpfs tmpfs rw
"""


def test_read_only_remounts_are_bind_remounts_that_keep_flags() -> None:
    got = {r.target: r for r in read_only_remounts(MOUNTINFO)}
    assert sorted(got) == ["/", "/dev", "/proc2", "/srv/with space", "/sys"]
    base = MS_REMOUNT | MS_BIND | MS_RDONLY
    assert got["/"] == Remount("/", base | MS_RELATIME)
    assert got["/dev"].flags == base | MS_NOSUID | MS_RELATIME
    assert got["/srv/with space"].flags == base | MS_RELATIME  # the top mount wins
    for r in got.values():  # never a plain remount: that would change the host's fs
        assert r.flags & MS_BIND and r.flags & MS_REMOUNT and r.flags & MS_RDONLY
    assert MS_NODEV & got["/sys"].flags


# -- ServiceAccount tokens ------------------------------------------------------------------


def test_token_request_and_names() -> None:
    p = pod(serviceAccountName="builder")
    assert service_account_name(p) == "builder"
    assert service_account_name(pod()) == "default"
    body = token_request(p)
    assert body["apiVersion"] == "authentication.k8s.io/v1" and body["kind"] == "TokenRequest"
    assert body["spec"] == {"expirationSeconds": 3607, "boundObjectRef": {
        "kind": "Pod", "apiVersion": "v1", "name": "web", "uid": "u-1"}}


@pytest.mark.parametrize(("pod_field", "sa_field", "want"), [
    (None, None, True), (False, None, False), (None, False, False), (True, False, True),
    (False, True, False), (None, True, True)])
def test_wants_token(pod_field: bool | None, sa_field: bool | None, want: bool) -> None:
    p = pod(**({} if pod_field is None else {"automountServiceAccountToken": pod_field}))
    sa = {} if sa_field is None else {"automountServiceAccountToken": sa_field}
    assert wants_token(p, sa) is want


def test_token_lifetime_and_refresh() -> None:
    issued = parse_time("2026-01-01T00:00:00Z")
    tok = token_from_status({"status": {"token": "a.b.c",
                                        "expirationTimestamp": "2026-01-01T01:00:00Z"}},
                            now=issued)
    assert tok == Token("a.b.c", issued + 3600, issued)
    assert refresh_delay(tok, now=issued) == pytest.approx(2880)
    assert refresh_delay(tok, now=issued + 3000) == 0
    with pytest.raises(ValueError):
        token_from_status({"status": {}}, now=issued)


@pytest.mark.parametrize(("secs", "fs_group", "want"), [
    ([Security(uid=1000, gid=1000)], None, (1000, 1000, 0o750)),
    ([Security(uid=1000, gid=0), Security(uid=1000, gid=0)], None, (1000, 0, 0o750)),
    ([Security(uid=1000, gid=5), Security(uid=2000, gid=6)], 7, (0, 7, 0o750)),
    ([Security(uid=1000, gid=5), Security(uid=2000, gid=5)], None, (0, 5, 0o750)),
    ([Security(uid=1000, gid=5), Security(uid=2000, gid=6)], None, (0, 0, 0o755)),
])
def test_token_dir_owner(secs: list[Security], fs_group: int | None,
                         want: tuple[int, int, int]) -> None:
    assert token_dir_owner(secs, fs_group) == want


def test_service_env_as_the_kubelet_injects_it() -> None:
    svc = {"metadata": {"name": "kubernetes", "namespace": "default"},
           "spec": {"clusterIP": "10.96.0.1",
                    "ports": [{"name": "https", "port": 443, "protocol": "TCP"}]}}
    assert service_env(svc) == {
        "KUBERNETES_SERVICE_HOST": "10.96.0.1", "KUBERNETES_SERVICE_PORT": "443",
        "KUBERNETES_SERVICE_PORT_HTTPS": "443", "KUBERNETES_PORT": "tcp://10.96.0.1:443",
        "KUBERNETES_PORT_443_TCP": "tcp://10.96.0.1:443",
        "KUBERNETES_PORT_443_TCP_PROTO": "tcp", "KUBERNETES_PORT_443_TCP_PORT": "443",
        "KUBERNETES_PORT_443_TCP_ADDR": "10.96.0.1"}
    assert service_env({"metadata": {"name": "x"}, "spec": {"clusterIP": "None"}}) == {}


def test_a_file_is_bound_on_a_file_and_a_directory_on_a_directory(tmp_path: Path) -> None:
    src_file, src_dir = tmp_path / "etc-hosts", tmp_path / "token"
    src_file.write_text("x")
    src_dir.mkdir()
    _mount_point(str(src_file), str(tmp_path / "etc" / "hosts"))
    _mount_point(str(src_dir), str(tmp_path / "var" / "token"))
    assert (tmp_path / "etc" / "hosts").is_file()
    assert (tmp_path / "etc" / "hosts").read_text() == ""  # an empty mount point
    assert (tmp_path / "var" / "token").is_dir()
