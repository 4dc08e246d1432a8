"""Choosing the API server: the rotation, one request's walk, when a request may go
again, how httpx's errors are read, and how the server list is parsed.

All pure (``client.failover``, ``client.config``); the same rules against real
servers are in tests/integration/test_failover.py.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
import pytest
import yaml

from apimachinery.kinds import SERVICE
from client.backoff import Backoff
from client.config import (
    ClientConfig,
    ConfigError,
    ServerFlagError,
    load_config,
    parse_servers,
    read_kubeconfig,
    write_kubeconfig,
)
from client.errors import ConnectionFailed, ServerError
from client.failover import Failure, Servers, may_resend
from client.http import FAILOVER_CONNECT_TIMEOUT, answer_failure, request_timeout, transport_failure
from client.watch import Listed, Target, too_large_resource_version, watch_forever

A, B, C = "https://a:6443", "https://b:6443", "https://c:6443"


# -- the rotation ------------------------------------------------------------------------


def test_rotation_is_sticky_and_moves_on_once_per_failure():
    servers = Servers([A, B, C])
    assert servers.current == A
    servers.succeeded(A)
    assert servers.current == A  # a success never moves it
    assert servers.failed(A) == B
    # another request that was in flight on A fails too: no second move, to C
    assert servers.failed(A) == B
    servers.succeeded(B)
    assert servers.failed(B) == C
    assert servers.failed(C) == A  # round robin, and A is tried again


def test_fresh_is_the_current_server_until_it_failed_since_the_last_success():
    servers = Servers([A, B])
    assert servers.fresh() == A
    servers.failed(A)
    assert servers.fresh() == B  # B has not failed: worth trying at once
    servers.failed(B)
    assert servers.fresh() is None  # every server failed: back off
    servers.succeeded(A)
    assert servers.fresh() == A


def test_one_server_never_moves():
    servers = Servers([A])
    assert servers.failed(A) == A and servers.fresh() is None
    with pytest.raises(ValueError):
        Servers([])


# -- one request's walk ---------------------------------------------------------------------


def walk_until_given_up(servers: Servers, method: str, failure: Failure) -> list[str]:
    walk = servers.walk(method)
    order = [walk.server]
    while (following := walk.failed(failure, "boom")) is not None:
        order.append(following)
    assert [s for s, _ in walk.tried] == order
    return order


def test_a_read_tries_every_server_once_from_the_current_one():
    servers = Servers([A, B, C])
    servers.failed(A)  # an earlier request left A
    assert walk_until_given_up(servers, "GET", Failure.MAYBE_SENT) == [B, C, A]
    assert servers.current == B  # it went round once and gave up where it started


def test_a_write_that_may_have_arrived_is_not_sent_again():
    servers = Servers([A, B])
    assert walk_until_given_up(servers, "POST", Failure.MAYBE_SENT) == [A]
    # but the rotation moved: the next request goes to B
    assert servers.current == B


def test_a_write_that_never_left_goes_to_the_next_server():
    assert walk_until_given_up(Servers([A, B]), "POST", Failure.UNSENT) == [A, B]


@pytest.mark.parametrize(("method", "failure", "again"), [
    ("GET", Failure.UNSENT, True),
    ("GET", Failure.MAYBE_SENT, True),
    ("get", Failure.UNAVAILABLE, True),
    ("HEAD", Failure.MAYBE_SENT, True),
    ("POST", Failure.UNSENT, True),
    ("POST", Failure.MAYBE_SENT, False),
    ("PUT", Failure.MAYBE_SENT, False),  # a repeat answers 409 for a write that happened
    ("DELETE", Failure.MAYBE_SENT, False),  # a repeat answers 404 for a delete that happened
    ("PATCH", Failure.MAYBE_SENT, False),
    ("POST", Failure.UNAVAILABLE, False),  # a 503 with no promise it was not processed
    ("POST", Failure.RETRY_LATER, True),  # 503 with Retry-After: not processed
])
def test_may_resend(method, failure, again):
    assert may_resend(method, failure) is again


def test_concurrent_failures_do_not_skip_a_server():
    servers = Servers([A, B, C])
    first, second = servers.walk("GET"), servers.walk("GET")
    assert first.failed(Failure.UNSENT, "refused") == B
    assert second.failed(Failure.UNSENT, "refused") == B  # not C: B is untried


# -- reading httpx ---------------------------------------------------------------------------


@pytest.mark.parametrize(("exc", "failure"), [
    (httpx.ConnectError("[Errno 111] Connection refused"), Failure.UNSENT),
    (httpx.ConnectError("[SSL: UNEXPECTED_EOF_WHILE_READING] EOF"), Failure.UNSENT),
    (httpx.ConnectTimeout("timed out"), Failure.UNSENT),
    (httpx.PoolTimeout("no connection"), None),  # our pool, not the server
    (httpx.ReadError("[Errno 104] Connection reset by peer"), Failure.MAYBE_SENT),
    (httpx.RemoteProtocolError("Server disconnected without sending a response."),
     Failure.MAYBE_SENT),
    (httpx.ReadTimeout("timed out"), Failure.MAYBE_SENT),
    (httpx.WriteError("broken pipe"), Failure.MAYBE_SENT),
    (httpx.UnsupportedProtocol("ftp"), None),
    (httpx.DecodingError("bad gzip"), None),
])
def test_transport_failure(exc, failure):
    assert transport_failure(exc) is failure


def test_only_a_503_answer_is_a_server_failure():
    def answer(code: int, **headers: str) -> httpx.Response:
        return httpx.Response(code, headers=headers)

    assert answer_failure(answer(503)) is Failure.UNAVAILABLE
    assert answer_failure(answer(503, **{"Retry-After": "1"})) is Failure.RETRY_LATER
    for code in (200, 404, 409, 429, 500, 504):
        assert answer_failure(answer(code)) is None


# -- the server list ------------------------------------------------------------------------


@pytest.fixture
def clean_env(monkeypatch, tmp_path):
    monkeypatch.delenv("MINIPLANE_SERVER", raising=False)
    monkeypatch.delenv("KUBECONFIG", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    return tmp_path


def test_parse_servers_keeps_order_drops_repeats_and_slashes():
    assert parse_servers(f" {A}/ ,{B}, {A}") == (A, B)
    assert parse_servers("http://[::1]:8080/prefix") == ("http://[::1]:8080/prefix",)


@pytest.mark.parametrize(("text", "message"), [
    (f"{A},,{B}", "empty URL in the server list"),
    (f"{A},", "empty URL in the server list"),
    (f"{A},b:6443", "must start with http:// or https://, got 'b:6443'"),
    ("https://:6443", "no host"),
    ("https://a:65536", "invalid server URL 'https://a:65536'"),
    ("https://a:port", "invalid server URL 'https://a:port'"),
    ("https://a:6443/?x=1", "invalid server URL"),
])
def test_bad_server_lists(text, message):
    with pytest.raises(ConfigError, match=message.replace("?", r"\?")):
        parse_servers(text, "--server")


def test_flag_and_environment_lists(clean_env, monkeypatch):
    cfg = load_config(server=f"{A},{B}")
    assert (cfg.server, cfg.fallback_servers, cfg.servers) == (A, (B,), (A, B))
    monkeypatch.setenv("MINIPLANE_SERVER", f"{B},{C}")
    assert load_config().servers == (B, C)
    with pytest.raises(ServerFlagError, match="^MINIPLANE_SERVER: empty URL"):
        monkeypatch.setenv("MINIPLANE_SERVER", f"{B},")
        load_config()
    with pytest.raises(ServerFlagError, match="^--server: "):
        load_config(server="nope")


def write_kubeconfig_doc(path: Path, server: str) -> Path:
    path.write_text(yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config", "current-context": "c",
        "clusters": [{"name": "c", "cluster": {"server": server}}],
        "users": [{"name": "u", "user": {"token": "t0k"}}],
        "contexts": [{"name": "c", "context": {"cluster": "c", "user": "u"}}]}))
    return path


def test_a_list_keeps_the_named_kubeconfigs_credentials(clean_env):
    kc = write_kubeconfig_doc(clean_env / "kc", "https://kc:6443")
    cfg = load_config(server=f"{A},{B}", kubeconfig=kc)
    assert (cfg.servers, cfg.token) == ((A, B), "t0k")


def test_a_kubeconfig_server_is_one_url(clean_env):
    kc = write_kubeconfig_doc(clean_env / "kc", f"{A},{B}")
    with pytest.raises(ConfigError, match="server must be one URL .* with --server or "
                                          "MINIPLANE_SERVER") as info:
        read_kubeconfig(kc)
    assert not isinstance(info.value, ServerFlagError)  # a file, not a flag


def test_a_kubeconfig_lists_more_servers_in_an_extension_kubectl_ignores(clean_env):
    path = clean_env / "ha.kubeconfig"
    write_kubeconfig(path, server=A, cluster_name="ha", token="t0k", fallback_servers=(B, C))
    doc = yaml.safe_load(path.read_text())
    assert doc["clusters"][0]["cluster"]["server"] == A  # what kubectl uses
    assert doc["clusters"][0]["cluster"]["extensions"] == [
        {"name": "miniplane.io/fallback-servers", "extension": {"servers": [B, C]}}]
    assert load_config(kubeconfig=path).servers == (A, B, C)
    # an explicit list wins, as an explicit server does
    assert load_config(server=C, kubeconfig=path).servers == (C,)


@pytest.mark.parametrize("extension", [{"servers": "https://b:1"}, {"servers": ["b:1"]}, None])
def test_a_bad_fallback_extension_is_a_clear_error(clean_env, extension):
    path = write_kubeconfig_doc(clean_env / "kc", A)
    doc = yaml.safe_load(path.read_text())
    doc["clusters"][0]["cluster"]["extensions"] = [
        {"name": "miniplane.io/fallback-servers", "extension": extension}]
    path.write_text(yaml.safe_dump(doc))
    with pytest.raises(ConfigError, match=f"kubeconfig {path}: .*miniplane.io/fallback-servers"):
        read_kubeconfig(path)


def test_a_config_built_with_a_list_splits_it():
    cfg = ClientConfig(server=f"{A},{B}")
    assert (cfg.server, cfg.fallback_servers) == (A, (B,))
    assert ClientConfig(server=A, fallback_servers=(A, B, B)).servers == (A, B)
    assert cfg.with_servers(C).servers == (C,)


# -- the watch loop after a failover -----------------------------------------------------------


class Canned:
    """Answers list_all/watch from rounds in order and records what was asked."""

    def __init__(self, rounds) -> None:
        self.rounds = list(rounds)
        self.asked: list[tuple[str, str | None]] = []

    async def list_all(self, kind, namespace=None, **options):
        self.asked.append(("list", None))
        want, answer = self.rounds.pop(0)
        assert want == "list"
        return answer

    async def watch(self, kind, namespace=None, *, resource_version=None, **options):
        self.asked.append(("watch", resource_version))
        want, events, end = self.rounds.pop(0)
        assert want == "watch"
        for e in events:
            yield e
        if end is not None:
            raise end


def svc(name: str, version: int) -> dict:
    return {"type": "ADDED", "object": {"metadata": {"name": name, "namespace": "ns",
                                                     "resourceVersion": str(version)}}}


TOO_LARGE = ServerError("Too large resource version: 40, current: 12", code=504,
                        reason="Timeout", status={
                            "kind": "Status", "code": 504, "reason": "Timeout",
                            "details": {"causes": [{"reason": "ResourceVersionTooLarge"}]}})


def test_watch_resumes_on_the_next_server_at_once_then_backs_off():
    lost_a = ConnectionFailed("GET https://a/...: peer closed", next_server=B)
    lost_b = ConnectionFailed("GET https://b/...: peer closed", next_server=A)
    all_down = ConnectionFailed("no API server answered", next_server=None)
    rounds = [
        ("list", {"metadata": {"resourceVersion": "10"}, "items": []}),
        ("watch", [svc("x", 11)], lost_a),   # A died mid-stream: on to B, no wait
        ("watch", [], lost_b),               # B broke too before any event: now wait
        ("watch", [], all_down),             # and longer
        ("watch", [svc("y", 12)], None),
        ("watch", [], TOO_LARGE),            # the server is behind what we saw: relist
        ("list", {"metadata": {"resourceVersion": "12"}, "items": []}),
    ]
    client = Canned(rounds)
    slept: list[float] = []

    async def sleep(seconds: float) -> None:
        slept.append(seconds)

    async def main() -> list:
        seen = []
        stream = watch_forever(client, Target(SERVICE, "ns"), sleep=sleep,  # type: ignore[arg-type]
                               backoff=Backoff(base=1, cap=8, jitter=0))
        async for item in stream:
            seen.append(item)
            if not client.rounds:
                break
        await stream.aclose()
        return seen

    seen = asyncio.run(main())
    assert client.asked == [("list", None), ("watch", "10"), ("watch", "11"), ("watch", "11"),
                            ("watch", "11"), ("watch", "12"), ("list", None)]
    assert slept == [2, 4]  # the first failover waited for nothing
    assert [type(i).__name__ if isinstance(i, Listed) else i["type"] for i in seen] == \
        ["Listed", "ADDED", "ADDED", "Listed"]


def test_too_large_resource_version_is_recognised_by_its_cause():
    assert too_large_resource_version(TOO_LARGE)
    assert not too_large_resource_version(ServerError("timeout", code=504, reason="Timeout"))
    assert not too_large_resource_version(ConnectionFailed("refused"))


def test_a_connect_gives_up_sooner_only_when_there_is_another_server() -> None:
    alone, several = request_timeout(30, 1), request_timeout(30, 3)
    assert (alone.connect, alone.read) == (30, 30)
    assert (several.connect, several.read, several.write) == (FAILOVER_CONNECT_TIMEOUT, 30, 30)
    assert request_timeout(30, 3, None).read is None  # a watch waits for events
    assert request_timeout(1, 3).connect == 1  # never longer than asked
