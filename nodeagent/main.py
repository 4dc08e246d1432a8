"""``mp-nodeagent``: the per-node agent: the service proxy (issue 5) and the node (issue 6).

Wiring only: flags → checks (the namespace exists, the backend is installed, the
metrics port binds) → the proxy (``nodeagent.proxy.agent``), the node and pod
runtime (``nodeagent.node.agent``) and the status endpoint, concurrently, until
SIGTERM/SIGINT; neither half waits for the other. Bad flags exit 2 and a bad environment exits 1,
each with one line on stderr. ``--cleanup`` removes every rule the proxy owns
from the namespace (both backends) and exits, like ``kube-proxy --cleanup``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import re
import signal
import socket
import ssl
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from apimachinery import names
from client.config import SERVER_HELP, ClientConfig, ConfigError, load_config
from componentbase import flags
from componentbase.flags import HostPort
from componentbase.startup import fail, setup_logging
from nodeagent.api.auth import DEFAULT_CLIENT
from nodeagent.api.routes import routes
from nodeagent.api.server import DEFAULT_PORT as DEFAULT_API_PORT
from nodeagent.api.server import AgentServer, serving_context
from nodeagent.node import privileges
from nodeagent.node.agent import NodeAgent, NodeConfig, node_labels
from nodeagent.pods.manager import default_state_dir
from nodeagent.pods.runtime import RuntimeConfig
from nodeagent.proxy.agent import ProxyAgent
from nodeagent.proxy.apply import BACKENDS, Backend, IptablesError
from nodeagent.proxy.conntrack import Conntrack
from nodeagent.proxy.metrics import Metrics, StatusServer
from nodeagent.proxy.model import InvalidObject, check_node_name
from nodeagent.proxy.plan import parse_save, plan_cleanup
from nodeagent.proxy.sync import Proxier, ProxyConfig

log = logging.getLogger("nodeagent")

# The backend measured faster for what a proxy does most (one Service's change:
# ~0.07 s against legacy's ~0.7 s at 10,000 Services); see the README's figures.
DEFAULT_BACKEND = "nft"


@dataclass(frozen=True)
class Options:
    server: str | None
    kubeconfig: str | None
    node: str
    netns: str | None
    metrics_listen: HostPort | None
    backend: str
    proxy: ProxyConfig
    cleanup: bool
    log_level: str
    node_cfg: NodeConfig | None = None
    no_pods: bool = False
    api: ApiOptions | None = None


@dataclass(frozen=True)
class ApiOptions:
    """The agent's HTTPS API (``nodeagent.api``): where, and with which files."""

    listen: HostPort
    cert_file: str
    key_file: str
    client_ca_file: str
    authorized: tuple[str, ...]


def netns_name(text: str) -> str:
    """argparse type: a name under /run/netns (no path)."""
    if not text or "/" in text or text in (".", ".."):
        raise argparse.ArgumentTypeError(f"{text!r} is not a namespace name")
    return text


def parse_cluster_domain(text: str) -> str:
    """A DNS subdomain, lower case, no trailing dot (kubelet's --cluster-domain)."""
    domain = text.strip().rstrip(".").lower()
    problems = names.is_dns1123_subdomain(domain)
    if problems:
        raise ValueError(f"{text!r}: {problems[0]}")
    return domain


def parse_args(argv: Sequence[str] | None) -> Options:
    p = flags.Parser(prog="mp-nodeagent", description="miniplane node agent")
    p.add_argument("--server", default=None, help=SERVER_HELP)
    p.add_argument("--kubeconfig", default=None, metavar="PATH",
                   help="kubeconfig with the CA and this node's credentials (and the server, "
                        "unless --server is given)")
    p.add_argument("--node", default=None, help="node name (default: the host name)")
    p.add_argument("--netns", default=None, type=netns_name, help="network namespace to manage "
                   "(default: the one the agent runs in)")
    p.add_argument("--cluster-dns", default="10.96.0.10", help="DNS ClusterIP for pods")
    p.add_argument("--cluster-domain", default="cluster.local", type=flags.typed(parse_cluster_domain, "domain"),
                   help="the cluster's DNS domain, for pods' search path and FQDN "
                   "(cluster.local)")
    p.add_argument("--resolv-conf", default="/etc/resolv.conf", metavar="PATH",
                   help="the node's resolver file: dnsPolicy Default pods get its "
                   "nameservers, ClusterFirst pods its search domains (/etc/resolv.conf; "
                   "as kubelet's, point it past a loopback stub such as systemd-resolved's)")
    p.add_argument("--state-dir", default=None, help="where node state is kept")
    p.add_argument("--metrics-listen", type=flags.host_port(default_host="127.0.0.1"), default=None,
                   metavar="[HOST]:PORT",
                   help="serve /metrics, /healthz and /readyz here (default: off); "
                   "':PORT' is loopback, and /metrics answers loopback callers only")
    p.add_argument("--iptables-backend", choices=BACKENDS, default=DEFAULT_BACKEND,
                   help=f"iptables backend (default {DEFAULT_BACKEND}, by measurement)")
    p.add_argument("--cluster-cidr", default="10.244.0.0/16",
                   type=flags.cidr(ipv4_only=True, allow_empty=True),
                   help="pod CIDR; traffic to a ClusterIP from outside it is masqueraded "
                   "('' disables)")
    p.add_argument("--min-sync-period", type=flags.duration(positive=False), default=1.0, metavar="DURATION",
                   help="at most one sync per this interval; bursts are coalesced (1s)")
    p.add_argument("--sync-period", type=flags.duration(), default=30.0, metavar="DURATION",
                   help="check the kernel's rules for drift this often (30s)")
    p.add_argument("--full-sync-period", type=flags.duration(), default=3600.0, metavar="DURATION",
                   help="rewrite every rule this often even without drift (1h)")
    p.add_argument("--cluster-name", default=None,
                   help="names pod namespaces mp-<cluster>-pod-<uid> (default: from "
                   "--netns mp-<cluster>-node-<n>, else 'mp')")
    p.add_argument("--service-cidr", default="10.96.0.0/16",
                   help="routed via cni0 so the node's own connections hit nat OUTPUT")
    p.add_argument("--heartbeat-interval", type=flags.duration(), default=10.0, metavar="DURATION",
                   help="how often the node's Lease in kube-node-lease is renewed (its "
                   "leaseDurationSeconds is 4 times this) and the node status checked for "
                   "changes; at most a quarter of the controllers' "
                   "--node-monitor-grace-period (10s)")
    p.add_argument("--node-status-report-frequency", type=flags.duration(), default=300.0,
                   metavar="DURATION",
                   help="post an unchanged node status this often; a change is posted at "
                   "once, and while the Lease can't be renewed the status is posted every "
                   "--heartbeat-interval (5m, as kubelet's nodeStatusReportFrequency)")
    p.add_argument("--restart-backoff", type=flags.duration(), default=10.0, metavar="DURATION",
                   help="first container restart delay, doubling per restart (10s)")
    p.add_argument("--max-restart-backoff", type=flags.duration(), default=300.0,
                   metavar="DURATION", help="cap of the container restart delay (5m)")
    p.add_argument("--node-labels", type=flags.typed(node_labels, "labels"), default=(),
                   metavar="KEY=VALUE,...",
                   help="labels the Node carries (kubelet's flag), e.g. "
                   "topology.kubernetes.io/zone=a; the API server's NodeRestriction "
                   "admits only those a node may set on itself")
    p.add_argument("--no-pods", action="store_true",
                   help="run only the proxy (no node registration or pods)")
    p.add_argument("--own-netns", action="store_true",
                   help="without --netns: set up cni0, routes and pods in the namespace the "
                   "agent runs in (a container's); without either, only the proxy runs so "
                   "a host's own network is never changed")
    p.add_argument("--cleanup", action="store_true",
                   help="remove every rule the proxy owns, then exit")
    p.add_argument("--api-listen", type=flags.host_port(default_host="0.0.0.0"), default=None,
                   metavar="[HOST]:PORT",
                   help="serve the agent's API for the API server (logs, exec, attach) "
                   f"over HTTPS here, kubelet's port being {DEFAULT_API_PORT} (default: off); "
                   "the port is published in the Node's status.daemonEndpoints")
    p.add_argument("--tls-cert-file", default=None, metavar="PATH",
                   help="the API's serving certificate (signed by the cluster CA)")
    p.add_argument("--tls-private-key-file", default=None, metavar="PATH",
                   help="its key")
    p.add_argument("--client-ca-file", default=None, metavar="PATH",
                   help="the CA a caller's client certificate must be signed by")
    p.add_argument("--authorized-client", action="append", default=None, metavar="USER",
                   help="the certificate CN allowed to call the API (repeatable; default "
                   f"{DEFAULT_CLIENT}, the API server's --kubelet-client-certificate)")
    p.add_argument("--log-level", default="info",
                   choices=("debug", "info", "warning", "error"))
    args = p.parse_args(argv)
    try:
        node = check_node_name((args.node or socket.gethostname()).lower(), "--node")
    except InvalidObject as exc:
        p.error(f"argument {exc}")
    cidr = args.cluster_cidr or None
    if args.max_restart_backoff < args.restart_backoff:
        p.error("argument --max-restart-backoff: must be at least --restart-backoff")
    if args.node_status_report_frequency < args.heartbeat_interval:
        p.error("argument --node-status-report-frequency: must be at least "
                "--heartbeat-interval")
    if args.min_sync_period > args.sync_period:
        p.error("argument --min-sync-period: must not exceed --sync-period")
    api = None
    if args.api_listen is not None:
        missing = [f for f, v in (("--tls-cert-file", args.tls_cert_file),
                                  ("--tls-private-key-file", args.tls_private_key_file),
                                  ("--client-ca-file", args.client_ca_file)) if not v]
        if missing:
            p.error(f"argument --api-listen: needs {', '.join(missing)}")
        if args.api_listen[1] == 0:
            p.error("argument --api-listen: give a port (the API server must know it)")
        api = ApiOptions(args.api_listen, args.tls_cert_file, args.tls_private_key_file,
                         args.client_ca_file, tuple(args.authorized_client or (DEFAULT_CLIENT,)))
    cluster = args.cluster_name or cluster_from_netns(args.netns)
    if not re.fullmatch(r"[a-z0-9][a-z0-9-]{0,30}", cluster):
        p.error(f"argument --cluster-name: {cluster!r} is not a short DNS label")
    node_part = not args.no_pods and (args.netns is not None or args.own_netns)
    node_cfg = None if not node_part else NodeConfig(
        node=node, netns=args.netns, cluster_cidr=args.cluster_cidr or "10.244.0.0/16",
        service_cidr=args.service_cidr or None, heartbeat_interval=args.heartbeat_interval,
        status_report_interval=args.node_status_report_frequency,
        api_port=api.listen[1] if api is not None else None, labels=args.node_labels,
        runtime=RuntimeConfig(
            node_ns=args.netns, cluster=cluster, dns_ip=args.cluster_dns,
            state_dir=Path(args.state_dir) if args.state_dir else default_state_dir(node),
            backoff_base=args.restart_backoff, backoff_cap=args.max_restart_backoff,
            cluster_domain=args.cluster_domain, node_name=node,
            host_resolv=Path(args.resolv_conf)))
    return Options(
        server=args.server, kubeconfig=args.kubeconfig, node=node, netns=args.netns, metrics_listen=args.metrics_listen,
        backend=args.iptables_backend, cleanup=args.cleanup, log_level=args.log_level,
        node_cfg=node_cfg, no_pods=args.no_pods, api=api,
        proxy=ProxyConfig(node_name=node, cluster_cidr=cidr,
                          min_sync_period=args.min_sync_period, sync_period=args.sync_period,
                          full_sync_period=args.full_sync_period, sctp=kernel_has_sctp()))


def cluster_from_netns(netns: str | None) -> str:
    """``mp-<cluster>-node-<n>`` → ``<cluster>``; anything else → ``mp``."""
    m = re.fullmatch(r"mp-(.+)-node-[^-]+", netns or "")
    return m.group(1) if m else "mp"


def kernel_has_sctp() -> bool:
    """Whether iptables can match SCTP here (the list of matches is kernel-wide)."""
    try:
        with open("/proc/net/ip_tables_matches") as f:
            return "sctp" in f.read().split()
    except OSError:
        return True  # can't tell: let iptables-restore decide


def check_environment(opts: Options) -> str | None:
    """One line saying why the agent can't run here, or None."""
    if opts.node_cfg is not None and opts.netns is None:  # --own-netns: a container's
        problem = privileges.check()
        if problem is not None:
            return problem
    if opts.netns is not None and not os.path.exists(os.path.join("/run/netns", opts.netns)):
        return f"network namespace {opts.netns!r} does not exist (/run/netns/{opts.netns})"
    if not Backend(opts.backend).available():
        return f"iptables-{opts.backend}-restore is not installed (Debian package iptables)"
    return None


def cleanup(opts: Options) -> int:
    """Remove our rules from both backends of the namespace."""
    status = 0
    for kind in BACKENDS:
        backend = Backend(kind, opts.netns)
        if not backend.available():
            continue
        try:
            payloads = plan_cleanup(parse_save(backend.save()))
            for payload in payloads:
                backend.restore(payload.text)
            if payloads:
                log.info("removed the proxy's rules from the %s backend", kind)
        except IptablesError as exc:
            log.error("cleanup of the %s backend failed: %s", kind, exc)
            status = 1
    return status


async def serve(opts: Options, api: ClientConfig, metrics_sock: socket.socket | None,
                api_server: tuple[socket.socket, ssl.SSLContext] | None = None) -> None:
    """Run the proxy and the node/pod runtime side by side until SIGTERM/SIGINT."""
    other = next(k for k in BACKENDS if k != opts.backend)
    metrics = Metrics()
    proxier = Proxier(Backend(opts.backend, opts.netns), opts.proxy, metrics=metrics,
                      conntrack=Conntrack(opts.netns), other_backend=Backend(other, opts.netns))
    agent = ProxyAgent(api, proxier)
    status = StatusServer(metrics.render, readiness=proxier.readiness, health=proxier.health)
    metrics.gauge("services", "Service ports programmed.", lambda: float(len(proxier.fragments)))
    node = NodeAgent(api, opts.node_cfg) if opts.node_cfg is not None else None

    def stop() -> None:
        agent.stop()
        if node is not None:
            node.stop()

    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop)
    if metrics_sock is not None:
        await status.start(metrics_sock)
    agent_api = None
    if api_server is not None and opts.api is not None:
        pods = node.pods if node is not None else None
        closing = asyncio.Event()
        agent_api = AgentServer(api_server[0], api_server[1], routes(
            lambda: list(pods.workers.values()) if pods is not None else [], closing),
            allowed=opts.api.authorized, closing=closing)
        agent_api.start()
        log.info("agent API on %s:%d (HTTPS; callers: %s)", *opts.api.listen,
                 ", ".join(opts.api.authorized))
    log.info("node %s: proxying Services in %s with the %s backend; API server %s%s",
             opts.node, f"namespace {opts.netns}" if opts.netns else "this namespace",
             opts.backend, ", ".join(api.servers),
             f"; metrics on {opts.metrics_listen}"
             if opts.metrics_listen else "")
    if node is None:
        log.info("node and pod runtime off (%s)", "--no-pods" if opts.no_pods else
                 "no --netns and no --own-netns")
    node_task = asyncio.create_task(node.run(), name="node") if node is not None else None
    try:
        await agent.run()
    finally:
        if node is not None and node_task is not None:
            node.stop()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await node_task
        await status.stop()
        if agent_api is not None:
            await agent_api.stop()
        log.info("stopped; rules and pods left in place")


def main(argv: Sequence[str] | None = None) -> int:
    opts = parse_args(argv)
    try:
        api = load_config(server=opts.server, kubeconfig=opts.kubeconfig)
    except ConfigError as exc:
        return fail("mp-nodeagent", exc, 2)
    setup_logging(opts.log_level)
    problem = check_environment(opts)
    if problem is not None:
        return fail("mp-nodeagent", problem, 1)
    if opts.cleanup:
        return cleanup(opts)
    metrics_sock = None
    if opts.metrics_listen is not None:
        host, port = opts.metrics_listen
        try:
            metrics_sock = socket.create_server((host, port), reuse_port=False)
        except OSError as exc:
            return fail("mp-nodeagent", f"cannot listen on {host}:{port}: "
                        f"{exc.strerror or exc}", 1)
    api_server = None
    if opts.api is not None:
        host, port = opts.api.listen
        try:
            context = serving_context(opts.api.cert_file, opts.api.key_file,
                                      opts.api.client_ca_file)
            api_server = (socket.create_server((host, port), reuse_port=False), context)
        except (OSError, ssl.SSLError) as exc:
            if metrics_sock is not None:
                metrics_sock.close()
            return fail("mp-nodeagent", f"agent API on {host}:{port}: "
                        f"{getattr(exc, 'strerror', None) or exc}", 1)
    try:
        asyncio.run(serve(opts, api, metrics_sock, api_server))
    except KeyboardInterrupt:
        pass
    finally:
        if metrics_sock is not None:
            metrics_sock.close()
        if api_server is not None:
            api_server[0].close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
