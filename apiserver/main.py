"""``mp-apiserver``: flags, logging, and the uvicorn server."""

from __future__ import annotations

import argparse
import contextlib
import ipaddress
import logging
import socket
import ssl
import sys
from dataclasses import dataclass
from pathlib import Path
from types import FrameType

import uvicorn

from apiserver import connections, nodeproxy, serving
from apiserver.admission.podsecurity import LEVELS
from apiserver.allocators import AllocationError, IPAllocator
from apiserver.app import Config, ResourceFastPath, create_app
from apiserver.auth.authn import AuthenticationConfigError, Authenticator
from apiserver.auth.authorizer import MODES
from apiserver.auth.flags import add_authentication_flags, authentication_options
from apiserver.storage.check import StorageUnusable, check_storage, open_checked
from apiserver.storage.store import Store
from apiserver.watchhub import DEFAULT_BUFFER
from componentbase import flags, pki
from componentbase.startup import fail, setup_logging

log = logging.getLogger("apiserver")


def service_cidr(text: str) -> str:
    """argparse type: a CIDR the ClusterIP allocator can serve (not too small, not huge)."""
    text = flags.cidr()(text)
    try:
        IPAllocator(text)
    except (AllocationError, ValueError) as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return text


def build_parser() -> argparse.ArgumentParser:
    p = flags.Parser(prog="mp-apiserver",
                     description="miniplane API server: Kubernetes-shaped objects "
                                 "with list/watch, stored in SQLite")
    p.add_argument("--listen", action="append", metavar="[netns:NS:]IP:PORT",
                   type=flags.typed(serving.parse_listen, "listen"),
                   help=f"address to serve HTTPS on, repeatable; netns:NS:IP:PORT binds "
                        f"inside network namespace NS (default {DEFAULT_LISTEN})")
    p.add_argument("--advertise-address", metavar="IP", type=flags.typed(_ip, "ip"),
                   help="the address in the kubernetes Service's EndpointSlice (default: "
                        "the first specific --listen IP)")
    p.add_argument("--endpoint-lease-duration", type=flags.duration(minimum=1.0),
                   default=15.0, metavar="DURATION",
                   help="how long this server's identity Lease (kube-system) keeps its "
                        "address in the kubernetes Service's endpoints without a renewal: "
                        "a killed server's address leaves after this (default 15s)")
    p.add_argument("--endpoint-reconcile-interval", type=flags.duration(), default=5.0,
                   metavar="DURATION",
                   help="how often the Lease is renewed and the kubernetes Service's "
                        "endpoints rewritten from every live Lease; less than "
                        "--endpoint-lease-duration (default 5s)")
    p.add_argument("--cert-dir", metavar="DIR",
                   help="CA, serving certificate and admin.kubeconfig, made on first start "
                        "(default: pki/ beside the SQLite file)")
    p.add_argument("--tls-cert-file", metavar="PATH",
                   help="serving certificate (PEM) instead of the cert dir's")
    p.add_argument("--tls-private-key-file", metavar="PATH",
                   help="its private key (PEM)")
    p.add_argument("--client-ca-file", metavar="PATH",
                   help="CA bundle that client certificates are verified against "
                        "(default: the cert dir's ca.crt)")
    p.add_argument("--tls-san", action="append", default=[], metavar="NAME|IP",
                   type=flags.typed(serving.parse_san, "san"),
                   help="extra name or address for the serving certificate, repeatable")
    p.add_argument("--storage-url", default="sqlite:///.miniplane/state.db", type=storage_url,
                   help="SQLAlchemy database URL (sqlite:///PATH or postgresql+psycopg://...)")
    p.add_argument("--service-cluster-ip-range", default="10.96.0.0/16", type=service_cidr,
                   help="CIDR ClusterIPs are allocated from")
    p.add_argument("--service-node-port-range", default="30000-32767",
                   type=flags.port_range(), help="range NodePorts are allocated from, A-B")
    p.add_argument("--event-retention", type=flags.integer(1), default=10_000,
                   help="how many revisions of the event log are kept for watch resume")
    p.add_argument("--compaction-interval", type=flags.duration(), default=5.0,
                   help="seconds between event-log compactions")
    p.add_argument("--watch-buffer", type=flags.integer(1), default=DEFAULT_BUFFER,
                   help="events a watcher may fall behind before its stream is closed")
    add_authentication_flags(p)
    p.add_argument("--authorization-mode", default="Node,RBAC", type=authorization_modes,
                   metavar="MODES",
                   help="comma-separated authorizers, asked in order: Node, RBAC "
                        "(system:masters always pass; there is no AlwaysAllow)")
    p.add_argument("--pod-security-default", default="privileged", choices=list(LEVELS),
                   metavar="LEVEL",
                   help="Pod Security level enforced in namespaces without the "
                        "pod-security.kubernetes.io/enforce label: privileged (default, as "
                        "Kubernetes), baseline or restricted")
    add_serving_limit_flags(p)
    p.add_argument("--log-level", default="info",
                   choices=["debug", "info", "warning", "error"])
    add_kubelet_flags(p)
    # health slice (issue 15)
    p.add_argument("--check-storage", action="store_true",
                   help="check the --storage-url database (SQLite integrity_check, every "
                        "stored row decodes) without serving; exit 0 if sound, 1 if not")
    return p


DEFAULT_LISTEN = "127.0.0.1:6443"


def add_kubelet_flags(p: argparse.ArgumentParser) -> None:
    """How to reach node agents for pods/log, exec and attach (``nodeproxy``)."""
    p.add_argument("--kubelet-client-certificate", metavar="PATH",
                   help="client certificate presented to node agents (the identity they "
                        "accept: kube-apiserver-kubelet-client); without it pods/log, exec "
                        "and attach answer 503")
    p.add_argument("--kubelet-client-key", metavar="PATH", help="its key")
    p.add_argument("--kubelet-certificate-authority", metavar="PATH",
                   help="CA that signed the agents' serving certificates (without it they "
                        "are not verified, as kube-apiserver)")
    p.add_argument("--kubelet-preferred-address-types", type=address_types,
                   default=",".join(nodeproxy.DEFAULT_ADDRESS_TYPES), metavar="TYPES",
                   help="which of a Node's status.addresses to dial, in order (default "
                        f"{','.join(nodeproxy.DEFAULT_ADDRESS_TYPES)})")
    p.add_argument("--kubelet-dial-host", metavar="HOST", default=None,
                   help="dial every node agent at this host instead (its port from the "
                        "Node's status.daemonEndpoints): a local cluster, whose agents all "
                        "listen on the host's 127.0.0.1 while the nodes' addresses are "
                        "cluster addresses the host must not connect to")


def address_types(text: str) -> tuple[str, ...]:
    types = tuple(t.strip() for t in text.split(",") if t.strip())
    bad = [t for t in types if t not in nodeproxy.DEFAULT_ADDRESS_TYPES]
    if bad or not types:
        raise argparse.ArgumentTypeError(
            f"{bad[0] if bad else text!r}: use {', '.join(nodeproxy.DEFAULT_ADDRESS_TYPES)}")
    return types


def add_serving_limit_flags(p: argparse.ArgumentParser) -> None:
    """Load shedding and connection limits (README "Limits"); 0 turns an in-flight
    limit off (a timeout is never 0)."""
    p.add_argument("--max-requests-inflight", type=flags.integer(0), default=400,
                   metavar="N", help="read-only requests served at once; more are answered "
                                     "429 with Retry-After (watches apart; 0: no limit; "
                                     "default 400)")
    p.add_argument("--max-mutating-requests-inflight", type=flags.integer(0), default=200,
                   metavar="N", help="writes served at once; more are answered 429 with "
                                     "Retry-After (0: no limit; default 200)")
    p.add_argument("--request-timeout", type=flags.duration(), default=60.0,
                   metavar="DURATION", help="a request other than a watch still running "
                                            "after this is answered 504 (default 60s)")
    p.add_argument("--read-header-timeout", type=flags.duration(), default=32.0,
                   metavar="DURATION", help="time from a connection's accept (TLS handshake "
                                            "included), or a request's first byte, to the end "
                                            "of its headers; then it is closed (default 32s, "
                                            "as kube-apiserver)")
    p.add_argument("--idle-timeout", type=flags.duration(), default=90.0,
                   metavar="DURATION", help="an idle keep-alive connection is closed after "
                                            "this (default 90s, as kube-apiserver)")
    p.add_argument("--max-connections", type=flags.integer(1), metavar="N",
                   help="connections open at once; at the cap a new one replaces the "
                        "oldest that is not serving a request, or is closed (default: from "
                        "the open-file limit, leaving room for the database and logs)")


def _ip(text: str) -> str:
    return str(ipaddress.ip_address(text))


def authorization_modes(text: str) -> tuple[str, ...]:
    """argparse type: ``Node,RBAC`` → ("Node", "RBAC"); each known, none twice."""
    modes = tuple(m.strip() for m in text.split(",") if m.strip())
    if not modes:
        raise argparse.ArgumentTypeError("must name at least one mode: Node, RBAC")
    for m in modes:
        if m not in MODES:
            raise argparse.ArgumentTypeError(
                f"unknown authorization mode {m!r}: supported modes are {', '.join(MODES)}")
    if len(set(modes)) != len(modes):
        raise argparse.ArgumentTypeError(f"a mode is named twice in {text!r}")
    return modes


def storage_url(url: str) -> str:
    """argparse type: a database URL of a dialect the store speaks."""
    if not url.startswith(("sqlite", "postgresql")):
        raise argparse.ArgumentTypeError(
            f"must be a sqlite:/// or postgresql+psycopg:// URL, got {url!r}")
    return url


def listens(args: argparse.Namespace) -> list[serving.Listen]:
    return list(args.listen or [serving.parse_listen(DEFAULT_LISTEN)])


def config_from_args(args: argparse.Namespace) -> Config:
    """The app's config; makes the SQLite file's directory (OSError if it can't)."""
    first = listens(args)[0]
    url = args.storage_url
    if url.startswith("sqlite:///") and not url.startswith("sqlite:///:memory:"):
        path = Path(url.removeprefix("sqlite:///"))
        path.parent.mkdir(parents=True, exist_ok=True)
    return Config(storage_url=url, service_cidr=args.service_cluster_ip_range,
                  node_port_range=args.service_node_port_range,
                  event_retention=args.event_retention,
                  compaction_interval=args.compaction_interval,
                  watch_buffer=args.watch_buffer,
                  advertise_address=serving.advertise_address(
                      listens(args), args.advertise_address,
                      None if args.advertise_address else serving.host_ip()),
                  port=first.port, cert_dir=cert_dir(args) or "",
                  endpoint_lease_duration=args.endpoint_lease_duration,
                  endpoint_reconcile_interval=args.endpoint_reconcile_interval,
                  pod_security_default=args.pod_security_default,
                  authorization_modes=args.authorization_mode,
                  max_requests_inflight=args.max_requests_inflight,
                  max_mutating_requests_inflight=args.max_mutating_requests_inflight,
                  request_timeout=args.request_timeout,
                  kubelet=nodeproxy.KubeletClientConfig(
                      cert_file=args.kubelet_client_certificate,
                      key_file=args.kubelet_client_key,
                      ca_file=args.kubelet_certificate_authority,
                      preferred_address_types=args.kubelet_preferred_address_types,
                      dial_host=args.kubelet_dial_host))


def cert_dir(args: argparse.Namespace) -> str | None:
    return args.cert_dir or serving.default_cert_dir(args.storage_url)


def prepare_tls(args: argparse.Namespace, config: Config) -> ssl.SSLContext:
    """The cert dir made or reused, then the TLS context (``pki.PKIError`` if unusable)."""
    where = listens(args)
    who = serving.serving_identity(listens=where, advertise=config.advertise_address,
                                   service_cidr=config.service_cidr, extra_sans=args.tls_san)
    files = serving.prepare_tls(cert_dir=cert_dir(args), tls_cert_file=args.tls_cert_file,
                                tls_key_file=args.tls_private_key_file,
                                client_ca_file=args.client_ca_file, who=who,
                                admin_server=serving.client_url(where[0]))
    return serving.server_context(files)


def connection_limits(args: argparse.Namespace) -> connections.Connections:
    """The connection cap (``--max-connections``, else what the open-file limit allows)
    and the header deadline; ValueError for a cap the file limit can't hold."""
    fd_limit = connections.open_file_limit()
    room = connections.connection_cap(fd_limit)
    if args.max_connections is not None and args.max_connections > room:
        raise ValueError(f"--max-connections {args.max_connections} is more than the open-"
                         f"file limit of {fd_limit} can hold (at most {room}): raise it "
                         f"(ulimit -n) or lower the flag")
    return connections.Connections(args.max_connections or room, args.read_header_timeout)


class Server(connections.LimitedServer):
    """uvicorn's server, ending watch streams as soon as a stop signal arrives.

    uvicorn re-raises the stop signal once it has shut down, so the process would
    die "by signal"; a stop we asked for is a clean exit (status 0) instead.
    """

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        if isinstance(self.config.app, ResourceFastPath):
            self.config.app.end_watches()
        super().handle_exit(sig, frame)
        captured = getattr(self, "_captured_signals", None)
        if isinstance(captured, list) and sig in captured:
            captured.remove(sig)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The flags, each judged alone by its type, then together (exit 2 with one line)."""
    p = build_parser()
    args = p.parse_args(argv)
    if bool(args.kubelet_client_certificate) != bool(args.kubelet_client_key):
        p.error("argument --kubelet-client-certificate: give it with --kubelet-client-key")
    if args.endpoint_reconcile_interval >= args.endpoint_lease_duration:
        p.error("argument --endpoint-reconcile-interval: must be less than "
                "--endpoint-lease-duration, or the Lease expires between renewals")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    setup_logging(args.log_level)  # httpx (nodeproxy) would log every log request
    if args.check_storage:
        return check_storage(args.storage_url)
    try:
        config = config_from_args(args)
    except OSError as exc:  # the --storage-url directory can't be made
        where = f" {exc.filename}" if exc.filename else ""
        return fail("mp-apiserver", f"cannot make the state directory{where}: "
                                    f"{exc.strerror or exc}", 2)
    # every flag is judged before the database is touched
    prepared = prepare(args, config)
    if isinstance(prepared, int):
        return prepared
    try:
        store = open_checked(config.storage_url)
    except StorageUnusable as exc:
        return fail("mp-apiserver", exc, 1)
    try:
        return serve(args, config, store, prepared)
    finally:
        store.close()


@dataclass(frozen=True)
class Prepared:
    """What the flags give the server before it opens storage."""

    context: ssl.SSLContext
    authenticator: Authenticator
    limits: connections.Connections


def prepare(args: argparse.Namespace, config: Config) -> Prepared | int:
    """TLS, authentication and the connection limits from the flags, or the exit code
    after a one-line error."""
    try:
        context = prepare_tls(args, config)
        where = cert_dir(args)
        authenticator = Authenticator.from_options(
            authentication_options(args, Path(where) if where else None))
    except (pki.PKIError, AuthenticationConfigError) as exc:
        return fail("mp-apiserver", exc, 2)
    except OSError as exc:  # e.g. a read-only cert dir: one line, not a traceback
        directory = Path(exc.filename).parent if exc.filename else cert_dir(args)
        return fail("mp-apiserver", f"cannot write the certificate directory {directory}: "
                                    f"{exc.strerror or exc}", 1)
    try:
        limits = connection_limits(args)
    except ValueError as exc:
        return fail("mp-apiserver", exc, 2)
    try:
        config.kubelet.context  # noqa: B018 - read the kubelet client files now
    except (OSError, ssl.SSLError) as exc:
        return fail("mp-apiserver", f"--kubelet-client-certificate/--kubelet-client-key/"
                                    f"--kubelet-certificate-authority: "
                                    f"{getattr(exc, 'strerror', None) or exc}", 2)
    return Prepared(context, authenticator, limits)


def serve(args: argparse.Namespace, config: Config, store: Store, prepared: Prepared) -> int:
    """Serve on the opened ``store`` until a stop signal."""
    context, authenticator, limits = prepared.context, prepared.authenticator, prepared.limits
    log.info("serving at most %d connections (open-file limit %d)", limits.cap,
             connections.open_file_limit())
    sockets: list[socket.socket] = []
    try:
        for listen in listens(args):
            sockets.append(serving.bind(listen))
    except OSError as exc:
        for sock in sockets:
            sock.close()
        return fail("mp-apiserver", exc.strerror or exc, 1)
    server = Server(uvicorn.Config(
        create_app(config, authenticator, store, (limits.collect,)), log_level="warning",
        access_log=False,
        loop="uvloop", http=serving.ClientCertProtocol, ws=serving.ClientCertWebSocketProtocol,
        timeout_graceful_shutdown=5,
        lifespan="on", proxy_headers=False, ssl_context_factory=lambda _c, _d: context,
        timeout_keep_alive=args.idle_timeout), limits)
    log.info("mp-apiserver listening on %s (HTTPS), advertising %s, certificates in %s",
             ", ".join(str(li) for li in listens(args)), config.advertise_address,
             config.cert_dir or "the given files")
    if ipaddress.ip_address(config.advertise_address).is_loopback:
        log.info("the advertise address %s is loopback: the kubernetes Service gets no "
                 "endpoints (give --advertise-address for pods to reach this server)",
                 config.advertise_address)
    # uvicorn may re-raise Ctrl-C after a clean shutdown; that is how we stop
    try:
        with contextlib.suppress(KeyboardInterrupt):
            server.run(sockets=sockets)
    finally:
        for sock in sockets:
            sock.close()
    return 0 if server.started else 1


if __name__ == "__main__":
    sys.exit(main())
