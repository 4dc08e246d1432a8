"""The pure parts of the node agent's API and the API server's side of it: CRI log
lines, the remotecommand framing, the caller check, the pod subresource checks and
where a node's agent is."""

from __future__ import annotations

import json

import pytest
from starlette.datastructures import QueryParams

from apimachinery import remotecommand as rc
from apiserver import podconnect
from apiserver.errors import BadRequest, Invalid
from apiserver.main import parse_args as apiserver_parse_args
from apiserver.nodeproxy import KubeletClientConfig, ServiceUnavailable, agent_location
from nodeagent.api.auth import refusal
from nodeagent.main import parse_args as agent_parse_args
from nodeagent.node.agent import node_status
from nodeagent.pods import crilog
from tests.flagcheck import flag_error

T0 = "2026-01-02T03:04:05.000000001Z"


# --------------------------------------------------------------------------- CRI logs


def test_format_lines_stamps_complete_lines_and_keeps_the_rest() -> None:
    text, rest = crilog.format_lines(b"a\nb\nc", stream="stderr", now=T0)
    assert text == f"{T0} stderr F a\n{T0} stderr F b\n".encode()
    assert rest == b"c"
    text, rest = crilog.format_lines(b"c", stream="stdout", now=T0, final=True)
    assert (text, rest) == (f"{T0} stdout P c\n".encode(), b"")


def test_a_long_line_is_cut_into_parts(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(crilog, "MAX_LINE", 4)
    text, rest = crilog.format_lines(b"abcdefghij\n", stream="stdout", now=T0)
    entries, left = crilog.parse(text)
    assert [(e.full, e.text) for e in entries] == [(False, b"abcd"), (False, b"efgh"),
                                                   (True, b"ij")]
    assert left == rest == b""
    assert b"".join(e.render(timestamps=False) for e in entries) == b"abcdefghij\n"


def test_parse_and_render() -> None:
    entries, rest = crilog.parse(f"{T0} stdout F hello world\nnot cri\n{T0} stderr P x\n{T0}"
                                 .encode())
    assert [(e.stream, e.full, e.text) for e in entries] == [
        ("stdout", True, b"hello world"), ("stderr", False, b"x")]
    assert rest == T0.encode()
    assert entries[0].render(timestamps=True) == f"{T0} hello world\n".encode()
    assert entries[1].render(timestamps=False) == b"x"


def _entries(*texts: str, times: tuple[str, ...] = ()) -> list[crilog.Entry]:
    return [crilog.Entry(times[i] if times else T0, "stdout", not t.endswith("+"),
                         t.rstrip("+").encode()) for i, t in enumerate(texts)]


@pytest.mark.parametrize(("tail", "expected"), [
    (None, ["a", "b", "c1", "c2"]), (0, []), (1, ["c1", "c2"]), (2, ["b", "c1", "c2"]),
    (9, ["a", "b", "c1", "c2"])])
def test_tail_counts_lines_not_parts(tail: int | None, expected: list[str]) -> None:
    picked = crilog.select(_entries("a", "b", "c1+", "c2"), tail=tail, since=None)
    assert [e.text.decode() for e in picked] == expected


def test_since_keeps_lines_at_or_after_the_time() -> None:
    times = ("2026-01-01T00:00:00.5Z", "2026-01-01T00:00:01.000000000Z",
             "2026-01-01T00:00:02.25Z")
    since = crilog.parse_time("2026-01-01T00:00:01Z")
    picked = crilog.select(_entries("a", "b", "c", times=times), tail=None, since=since)
    assert [e.text for e in picked] == [b"b", b"c"]
    assert crilog.parse_time("2026-01-01T00:00:02.25Z") - since == pytest.approx(1.25)


def test_rfc3339_nano_round_trips() -> None:
    stamp = crilog.rfc3339_nano(1_767_225_600_123_456_789)
    assert stamp == "2026-01-01T00:00:00.123456789Z"
    assert crilog.parse_time(stamp) == pytest.approx(1_767_225_600.123456789)


# --------------------------------------------------------------------------- remotecommand


def test_the_newest_protocol_both_sides_know_is_chosen() -> None:
    assert rc.choose(["v4.channel.k8s.io", "v5.channel.k8s.io"]) == rc.V5
    assert rc.choose(["v4.channel.k8s.io", "channel.k8s.io"]) == rc.V4
    assert rc.choose(["channel.k8s.io", "base64.channel.k8s.io"]) is None


def test_exit_status_is_kubelets_and_clients_read_it_back() -> None:
    failed = rc.exit_status(3, ["sh", "-c", "exit 3"])
    assert failed["reason"] == "NonZeroExitCode"
    assert failed["details"]["causes"] == [{"reason": "ExitCode", "message": "3"}]
    assert rc.exit_code(failed) == (3, None)
    assert rc.exit_code(rc.exit_status(0, ["true"])) == (0, None)
    assert rc.exit_code(rc.failure("container c is not running")) == \
        (1, "container c is not running")
    channel, payload = rc.parse(rc.status_frame(failed))
    assert channel == rc.ERROR and json.loads(payload) == failed


@pytest.mark.parametrize(("data", "size"), [
    (b'{"Width": 80, "Height": 24}', (80, 24)), (b'{"Width": 80}', None), (b"nope", None),
    (b'{"Width": -1, "Height": 2}', None)])
def test_terminal_size(data: bytes, size: tuple[int, int] | None) -> None:
    assert rc.terminal_size(data) == size


# --------------------------------------------------------------------------- who may call


def _peer(cn: str) -> dict:
    return {"subject": ((("organizationName", "system:nodes"),), (("commonName", cn),))}


def test_only_the_named_client_may_call_the_agent() -> None:
    allowed = ["kube-apiserver-kubelet-client"]
    assert refusal(_peer("kube-apiserver-kubelet-client"), allowed) is None
    assert "may not use" in (refusal(_peer("system:node:node-1"), allowed) or "")
    assert "may not use" in (refusal(_peer("kubernetes-admin"), allowed) or "")
    assert refusal(None, allowed) == "a client certificate is required"
    assert refusal({}, allowed) == "a client certificate is required"


# --------------------------------------------------------------------------- API server side


def _pod(*containers: str, node: str | None = "node-1", phase: str = "Running") -> dict:
    return {"metadata": {"name": "p"}, "status": {"phase": phase},
            "spec": {"containers": [{"name": c} for c in containers],
                     **({"nodeName": node} if node else {})}}


def test_container_defaulting_as_kubernetes() -> None:
    assert podconnect.pick_container(_pod("a"), None) == "a"
    assert podconnect.pick_container(_pod("a", "b"), "b") == "b"
    with pytest.raises(BadRequest, match=r"^a container name must be specified for pod p, "
                                         r"choose one of: \[a b\]$"):
        podconnect.pick_container(_pod("a", "b"), None)
    with pytest.raises(BadRequest, match="^container c is not valid for pod p$"):
        podconnect.pick_container(_pod("a"), "c")
    with pytest.raises(BadRequest, match="^pod p does not have a host assigned$"):
        podconnect.node_of(_pod("a", node=None))


def test_log_options_are_validated_and_passed_on() -> None:
    q = QueryParams("container=c&follow=true&tailLines=5&timestamps=1&limitBytes=9"
                    "&sinceSeconds=3&previous=false")
    assert podconnect.log_query("p", q) == [("follow", "true"), ("timestamps", "true"),
                                            ("tailLines", "5"), ("limitBytes", "9"),
                                            ("sinceSeconds", "3")]
    with pytest.raises(Invalid) as err:
        podconnect.log_query("p", QueryParams("tailLines=-1&limitBytes=0&sinceSeconds=x"))
    assert [c["field"] for c in err.value.details["causes"]] == [
        "tailLines", "limitBytes", "sinceSeconds"]
    assert err.value.message.startswith('PodLogOptions "p" is invalid: ')
    with pytest.raises(Invalid, match="at most one of `sinceTime` or `sinceSeconds`"):
        podconnect.log_query("p", QueryParams("sinceSeconds=1&sinceTime=2026-01-01T00:00:00Z"))


def test_exec_and_attach_options() -> None:
    q = QueryParams("command=sh&command=-c&command=exit 3&stdout=true&stderr=true")
    assert podconnect.stream_query(_pod("a"), q, exec_=True) == [
        ("command", "sh"), ("command", "-c"), ("command", "exit 3"), ("stdout", "true"),
        ("stderr", "true")]
    with pytest.raises(BadRequest, match="at least one command"):
        podconnect.stream_query(_pod("a"), QueryParams("stdout=true"), exec_=True)
    with pytest.raises(BadRequest, match="at least 1 of stdin, stdout, stderr"):
        podconnect.stream_query(_pod("a"), QueryParams("command=ls"), exec_=True)
    with pytest.raises(BadRequest, match="tty and stderr cannot both be true"):
        podconnect.stream_query(_pod("a"), QueryParams("stderr=true&tty=true"), exec_=False)
    with pytest.raises(BadRequest, match="cannot attach to a container in a completed pod; "
                                         "current phase is Succeeded"):
        podconnect.stream_query(_pod("a", phase="Succeeded"), QueryParams("stdout=1"),
                                exec_=False)


def test_connect_targets_are_only_the_agent_served_subresources() -> None:
    hit = podconnect.connect_target("/api/v1/namespaces/ns/pods/p/exec")
    assert hit is not None and hit[0].name == "p" and hit[1].agent_path == "/exec"
    assert podconnect.connect_target("/api/v1/namespaces/ns/pods/p/status") is None
    assert podconnect.connect_target("/api/v1/namespaces/ns/pods/p") is None
    assert podconnect.connect_target("/api/v1/nodes/n/log") is None


def _node(port: int | None, *addresses: tuple[str, str]) -> dict:
    status: dict = {"addresses": [{"type": t, "address": a} for t, a in addresses]}
    if port is not None:
        status["daemonEndpoints"] = {"kubeletEndpoint": {"Port": port}}
    return {"metadata": {"name": "n"}, "status": status}


def test_agent_location_by_preferred_address_type_or_the_dial_host() -> None:
    node = _node(10250, ("InternalIP", "10.250.0.2"), ("Hostname", "n"))
    assert agent_location(node, KubeletClientConfig()) == ("n", 10250)
    prefer_ip = KubeletClientConfig(preferred_address_types=("InternalIP", "Hostname"))
    assert agent_location(node, prefer_ip) == ("10.250.0.2", 10250)
    local = KubeletClientConfig(dial_host="127.0.0.1")
    assert agent_location(node, local) == ("127.0.0.1", 10250)
    with pytest.raises(ServiceUnavailable, match="publishes no agent API port"):
        agent_location(_node(None, ("InternalIP", "10.250.0.2")), local)
    with pytest.raises(ServiceUnavailable, match="no preferred addresses found"):
        agent_location(_node(10250, ("ExternalIP", "1.2.3.4")),
                       KubeletClientConfig(preferred_address_types=("InternalIP",)))


# --------------------------------------------------------------------------- flags


@pytest.mark.parametrize(("argv", "message"), [
    (["--kubelet-client-certificate", "c.crt"], "give it with --kubelet-client-key"),
    (["--kubelet-preferred-address-types", "InternalIP,Bogus"], "'Bogus': use Hostname"),
])
def test_apiserver_kubelet_flags(argv: list[str], message: str,
                                 capsys: pytest.CaptureFixture[str]) -> None:
    assert message in flag_error(capsys, apiserver_parse_args, argv, prog="mp-apiserver")


@pytest.mark.parametrize(("argv", "message"), [
    (["--api-listen", ":10250"], "needs --tls-cert-file, --tls-private-key-file, "
                                 "--client-ca-file"),
    (["--api-listen", "127.0.0.1:0", "--tls-cert-file", "a", "--tls-private-key-file", "b",
      "--client-ca-file", "c"], "give a port"),
])
def test_agent_api_flags(argv: list[str], message: str,
                         capsys: pytest.CaptureFixture[str]) -> None:
    assert message in flag_error(capsys, agent_parse_args, ["--node", "n", *argv],
                                 prog="mp-nodeagent")


def test_agent_api_flags_reach_the_node_status() -> None:
    opts = agent_parse_args(["--node", "n", "--netns", "mp-x-node-1", "--api-listen",
                             ":10250", "--tls-cert-file", "a", "--tls-private-key-file", "b",
                             "--client-ca-file", "c"])
    assert opts.api is not None and opts.api.listen == ("0.0.0.0", 10250)
    assert opts.api.authorized == ("kube-apiserver-kubelet-client",)
    assert opts.node_cfg is not None and opts.node_cfg.api_port == 10250


def test_the_node_status_publishes_the_agent_port_only_when_served() -> None:
    served = node_status(ip="10.250.0.2", ready_since=T0, now=T0, api_port=10250,
                         hostname="node-1")
    assert served["daemonEndpoints"] == {"kubeletEndpoint": {"Port": 10250}}
    assert served["addresses"] == [{"type": "InternalIP", "address": "10.250.0.2"},
                                   {"type": "Hostname", "address": "node-1"}]
    assert "daemonEndpoints" not in node_status(ip=None, ready_since=T0, now=T0)
