"""``mp-apiserver``: flags, logging, and the uvicorn server."""

from __future__ import annotations

import argparse
import contextlib
import logging
import sys
from pathlib import Path
from types import FrameType

import uvicorn

from apiserver.admission.podsecurity import LEVELS
from apiserver.allocators import AllocationError, IPAllocator
from apiserver.app import Config, ResourceFastPath, create_app
from apiserver.auth.authn import AuthenticationConfigError, Authenticator
from apiserver.auth.authorizer import MODES
from apiserver.auth.flags import add_authentication_flags, authentication_options
from apiserver.watchhub import DEFAULT_BUFFER
from componentbase import flags
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
    p.add_argument("--listen", default="127.0.0.1:6443", metavar="HOST:PORT",
                   type=flags.host_port(default_host="127.0.0.1", min_port=1),
                   help="HOST:PORT to serve on")
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
    p.add_argument("--cert-dir", type=Path, metavar="DIR",
                   help="where the cluster's keys and certificates are kept (made on first "
                        "start); default: pki/ beside the SQLite file")
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
    p.add_argument("--log-level", default="info",
                   choices=["debug", "info", "warning", "error"])
    return p


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


def cert_dir(args: argparse.Namespace) -> Path:
    """``--cert-dir``, else ``pki/`` beside the SQLite file (``.miniplane/pki`` otherwise)."""
    if args.cert_dir is not None:
        return Path(args.cert_dir)
    url = args.storage_url
    if url.startswith("sqlite:///") and not url.startswith("sqlite:///:memory:"):
        return Path(url.removeprefix("sqlite:///")).parent / "pki"
    return Path(".miniplane") / "pki"


def config_from_args(args: argparse.Namespace) -> Config:
    """The app's config; makes the SQLite file's directory (OSError if it can't)."""
    host, port = args.listen
    url = args.storage_url
    if url.startswith("sqlite:///") and not url.startswith("sqlite:///:memory:"):
        path = Path(url.removeprefix("sqlite:///"))
        path.parent.mkdir(parents=True, exist_ok=True)
    return Config(storage_url=url, service_cidr=args.service_cluster_ip_range,
                  node_port_range=args.service_node_port_range,
                  event_retention=args.event_retention,
                  compaction_interval=args.compaction_interval,
                  watch_buffer=args.watch_buffer,
                  pod_security_default=args.pod_security_default,
                  advertise_address=host, port=port,
                  authorization_modes=args.authorization_mode)


class Server(uvicorn.Server):
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


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    setup_logging(args.log_level, quiet=())
    try:
        config = config_from_args(args)
        authenticator = Authenticator.from_options(authentication_options(args, cert_dir(args)))
    except OSError as exc:  # the --storage-url directory can't be made
        return fail("mp-apiserver", exc, 2)
    except AuthenticationConfigError as exc:
        return fail("mp-apiserver", exc, 2)
    host, port = args.listen
    server = Server(uvicorn.Config(
        create_app(config, authenticator), host=host, port=port, log_level="warning", access_log=False,
        loop="uvloop", http="httptools", timeout_graceful_shutdown=5, lifespan="on",
        proxy_headers=False))
    log.info("mp-apiserver listening on http://%s:%d", host, port)
    # uvicorn may re-raise Ctrl-C after a clean shutdown; that is how we stop
    with contextlib.suppress(KeyboardInterrupt):
        server.run()
    return 0 if server.started else 1


if __name__ == "__main__":
    sys.exit(main())
