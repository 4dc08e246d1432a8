"""HTTPS serving for ``mp-apiserver``: listeners, the cert dir, TLS, the client certificate.

There is no plain-HTTP mode. What it takes, as kube-apiserver names it:

- ``--cert-dir DIR``: on first start the CA (``ca.crt``/``ca.key``), the serving
  certificate (``apiserver.crt``/``.key``) and ``admin.kubeconfig`` (cluster-admin:
  ``kubernetes-admin`` in ``system:masters``, server ``https://<first --listen>``) are
  made there, and reused afterwards, as k3s does. The CA and the admin credential
  never change once made; the serving certificate is reissued only when its names
  (SANs) no longer match the flags, or it nears expiry.
- ``--tls-cert-file``/``--tls-private-key-file`` and ``--client-ca-file`` bring your
  own serving pair and client CA instead. ``admin.kubeconfig`` is written only when
  both come from the cert dir (otherwise its CA could not vouch for them).

Client certificates are requested and verified against the client CA when given
(``CERT_OPTIONAL``): a request without one is anonymous or carries a token, one
with a certificate from another CA fails the TLS handshake (Python's ``ssl`` can't
ask for a certificate without verifying it). The DER bytes of a verified
certificate go into the ASGI scope under ``CLIENT_CERT_KEY`` for every request on
the connection: ``ClientCertProtocol`` does that, as uvicorn does not.

Listeners are bound up front (``bind``), optionally inside a network namespace
(``netns:NS:IP:PORT``, as mp-dnsd's ``--listen``), and handed to uvicorn.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import ipaddress
import re
import socket
import ssl
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol, RequestResponseCycle
from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol

from apimachinery.kubeconfig import kubeconfig
from apiserver.auth.user import CLIENT_CERT_KEY, MASTERS
from apiserver.connections import DROP_KEY, HEADER_TIMEOUT, HEADERS_TOO_LARGE, Connections
from componentbase import files, flags, pki
from componentbase.flags import Listen
from componentbase.netns import run_in_netns

ADMIN_USER = "kubernetes-admin"
ADMIN_KUBECONFIG = "admin.kubeconfig"
SERVING_NAME = "apiserver"  # apiserver.crt / apiserver.key in the cert dir
CLUSTER_NAME = "miniplane"  # the cluster/user/context name inside admin.kubeconfig
# What kube-apiserver puts in its serving certificate besides addresses: the names
# pods use for the ``kubernetes`` Service.
KUBERNETES_NAMES = ("kubernetes", "kubernetes.default", "kubernetes.default.svc",
                    "kubernetes.default.svc.cluster.local")
# Request line and headers together (Go's http.DefaultMaxHeaderBytes, kube-apiserver's).
MAX_HEADER_BYTES = 1 << 20
DROP_WAIT = 5.0  # seconds a dropped connection may take to be reported lost
_DNS_NAME = re.compile(r"^(\*\.)?[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?"
                       r"(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*$")


# -- flags ------------------------------------------------------------------------------


def client_url(listen: Listen) -> str:
    """How a client on this host reaches ``listen`` (a wildcard through loopback)."""
    host = ("::1" if ":" in listen.host else "127.0.0.1") if listen.is_wildcard else listen.host
    return f"https://[{host}]:{listen.port}" if ":" in host else f"https://{host}:{listen.port}"


def parse_listen(value: str) -> Listen:
    """``--listen``: an empty host is 127.0.0.1, port 0 is refused (clients must know it)."""
    return flags.parse_listen(value, default_host="127.0.0.1", min_port=1)


def parse_san(value: str) -> str:
    """A ``--tls-san``: an IP address or a DNS name (lower-cased)."""
    text = value.strip().lower()
    try:
        return str(ipaddress.ip_address(text))
    except ValueError:
        pass
    if not text or len(text) > 253 or not _DNS_NAME.match(text):
        raise ValueError(f"{value!r} is neither an IP address nor a DNS name")
    return text


# -- what the serving certificate names ---------------------------------------------------


def advertise_address(listens: Sequence[Listen], explicit: str | None,
                      host_ip: str | None = None) -> str:
    """The address other hosts and pods use: ``--advertise-address``, else the first
    specific ``--listen`` IP, else ``host_ip`` (this host's name resolved), else
    127.0.0.1."""
    if explicit:
        return explicit
    for listen in listens:
        if not listen.is_wildcard:
            return listen.host
    return host_ip or "127.0.0.1"


def serving_identity(*, listens: Sequence[Listen], advertise: str, service_cidr: str,
                     extra_sans: Iterable[str] = ()) -> pki.Identity:
    """The serving certificate's subject and SANs (pure): localhost, loopback, every
    listen IP, the advertise address, the ``kubernetes`` Service's ClusterIP and
    names, and ``--tls-san`` values."""
    network = ipaddress.ip_network(service_cidr, strict=False)
    ips = ["127.0.0.1", *(li.host for li in listens if not li.is_wildcard), advertise,
           str(network.network_address + 1)]
    dns = ["localhost", *KUBERNETES_NAMES]
    for san in extra_sans:
        (ips if _is_ip(san) else dns).append(san)
    return pki.server_identity("kube-apiserver", dns, ips)


def _is_ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


# -- the cert dir -----------------------------------------------------------------------


@dataclass(frozen=True)
class TLSFiles:
    """What the TLS context is made of (paths)."""

    cert_file: str
    key_file: str
    client_ca_file: str


def prepare_tls(*, cert_dir: str | None, tls_cert_file: str | None,
                tls_key_file: str | None, client_ca_file: str | None, who: pki.Identity,
                admin_server: str) -> TLSFiles:
    """Make what the cert dir lacks and return the files to serve with.

    Raises ``pki.PKIError`` (one line) for an unreadable file or a missing one that
    can't be made (no cert dir).
    """
    if bool(tls_cert_file) != bool(tls_key_file):
        raise pki.PKIError("--tls-cert-file and --tls-private-key-file go together")
    need_dir = not (tls_cert_file and client_ca_file)
    if need_dir and not cert_dir:
        raise pki.PKIError("no --cert-dir: give it, or --tls-cert-file, "
                           "--tls-private-key-file and --client-ca-file")
    ca: pki.KeyPair | None = None
    if cert_dir and need_dir:
        _private_dir(Path(cert_dir))
        ca = pki.ensure_ca(cert_dir)
    if tls_cert_file and tls_key_file:
        pki.load(tls_cert_file, tls_key_file)  # fails here, with the file's name
        cert_file, key_file = tls_cert_file, tls_key_file
    else:
        assert cert_dir is not None and ca is not None
        pki.ensure_cert(cert_dir, SERVING_NAME, ca, who)
        cert_file = str(Path(cert_dir) / f"{SERVING_NAME}.crt")
        key_file = str(Path(cert_dir) / f"{SERVING_NAME}.key")
    if client_ca_file:
        _read(client_ca_file)
        ca_file = client_ca_file
    else:
        assert cert_dir is not None
        ca_file = str(Path(cert_dir) / "ca.crt")
    if cert_dir and ca is not None and not tls_cert_file and not client_ca_file:
        ensure_admin_kubeconfig(Path(cert_dir) / ADMIN_KUBECONFIG, ca, admin_server)
    return TLSFiles(cert_file, key_file, ca_file)


def _private_dir(path: Path) -> None:
    try:
        path.mkdir(parents=True, exist_ok=True, mode=0o700)
    except OSError as exc:
        raise pki.PKIError(f"cannot make --cert-dir {path}: {exc.strerror}") from exc


def _read(path: str) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as exc:
        raise pki.PKIError(f"cannot read {path}: {exc.strerror}") from exc


def ensure_admin_kubeconfig(path: Path, ca: pki.KeyPair, server: str) -> None:
    """``admin.kubeconfig`` for cluster-admin. An existing admin certificate that ``ca``
    still vouches for is kept (only the server address and CA are refreshed), so a
    kubeconfig copied elsewhere keeps working across restarts."""
    who = pki.client_identity(ADMIN_USER, [MASTERS])
    pair = _existing_admin(path)
    if pair is None or not pki.fits(pair, ca, who):
        pair = pki.issue(ca, who)
    doc = kubeconfig(CLUSTER_NAME, server, ca.cert_pem, cert_pem=pair.cert_pem,
                     key_pem=pair.key_pem)
    text = yaml.safe_dump(doc, default_flow_style=False, sort_keys=False).encode()
    if not path.exists() or path.read_bytes() != text:
        files.write_atomic(path, text)


def _existing_admin(path: Path) -> pki.KeyPair | None:
    """The admin pair embedded in an existing kubeconfig, if it can be read."""
    try:
        doc = yaml.safe_load(path.read_text())
        user = doc["users"][0]["user"]
        pair = pki.KeyPair(base64.b64decode(user["client-certificate-data"]),
                           base64.b64decode(user["client-key-data"]))
        pair.cert  # noqa: B018 - parse now: a broken one is made anew
        pair.private_key()
    except (OSError, yaml.YAMLError, KeyError, IndexError, TypeError, ValueError,
            binascii.Error, pki.PKIError):
        return None
    return pair


def server_context(files: TLSFiles) -> ssl.SSLContext:
    """TLS 1.2+, the serving pair, client certificates verified when offered."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        ctx.load_cert_chain(files.cert_file, files.key_file)
    except ssl.SSLError as exc:
        raise pki.PKIError(f"{files.cert_file} / {files.key_file}: the certificate and "
                           f"key don't match or can't be used ({exc.reason or exc})") from exc
    except OSError as exc:
        raise pki.PKIError(f"cannot read {exc.filename or files.cert_file}: "
                           f"{exc.strerror}") from exc
    try:
        ctx.load_verify_locations(cafile=files.client_ca_file)
    except (ssl.SSLError, OSError) as exc:
        raise pki.PKIError(f"{files.client_ca_file}: not a PEM CA certificate "
                           f"({getattr(exc, 'reason', None) or exc})") from exc
    ctx.verify_mode = ssl.CERT_OPTIONAL
    ctx.set_alpn_protocols(["http/1.1"])
    return ctx


# -- sockets and the protocol -----------------------------------------------------------


def bind(listen: Listen) -> socket.socket:
    """A listening TCP socket for ``listen``, made inside its namespace if it names one
    (the socket stays there; the process's threads never leave the root namespace)."""

    def make() -> socket.socket:
        family = socket.AF_INET6 if ":" in listen.host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        try:
            if family == socket.AF_INET6:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((listen.host, listen.port))
            sock.listen(2048)
            sock.setblocking(False)
        except BaseException:
            sock.close()
            raise
        return sock

    try:
        return run_in_netns(listen.netns or None, make)
    except OSError as exc:
        raise OSError(exc.errno, f"cannot listen on {listen}: "
                      f"{exc.strerror or exc}") from None


class ClientCertProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol, adding the verified client certificate (DER) to
    every request's scope under ``CLIENT_CERT_KEY`` (absent when none was given), and
    the limits uvicorn lacks:

    - request line and headers over ``MAX_HEADER_BYTES`` (Go's 1 MiB default, which
      kube-apiserver keeps) are answered 431 and the connection closed;
    - headers not complete by their deadline (``connections.Connections``: from the
      accept, or from a request's first byte) close the connection;
    - an HTTP/1.0 client gets no chunked encoding, which it can't read: a response of
      unknown length (a watch) is sent as is and ends when the connection closes.

Every request's scope offers ``DROP_KEY`` (``drop``): a response that must give up
on a client that does not read (a cut watch) ends its connection with it.

    ``limits`` is set by ``connections.LimitedServer``; without it (uvicorn's own
    server) there is no header deadline and no cap.
    """

    _client_cert: bytes | None = None
    limits: Connections | None = None
    _head_bytes = 0  # of the request being read, until its headers are complete
    _head_done = False
    _head_timer: asyncio.TimerHandle | None = None
    _raw: asyncio.Transport | None = None  # the TCP connection under TLS
    _lost: asyncio.Future[None] | None = None  # done at connection_lost, once dropped
    _gone = False  # connection_lost has run

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        ssl_object: Any = transport.get_extra_info("ssl_object")
        self._client_cert = ssl_object.getpeercert(binary_form=True) if ssl_object else None

    @property
    def busy(self) -> bool:
        """Serving a request (its headers read, its response not yet complete)."""
        return self.cycle is not None and not self.cycle.response_complete

    def accepted(self, raw: asyncio.Transport, deadline: float) -> None:
        """Its TCP connection (under TLS) is accepted: the first request's headers are
        due by ``deadline``, the TLS handshake included."""
        self._raw = raw
        self.start_reading_head(deadline)

    def abort(self) -> None:
        """Drop the connection, in its TLS handshake too."""
        raw = self._raw or self.transport
        if raw is not None:
            raw.abort()

    async def drop(self) -> None:
        """Abort the connection, then return once ``connection_lost`` has run: the
        request is then disconnected, so a response that ends incomplete is no app
        error to uvicorn (which would log one, then close gracefully: TLS would wait
        up to 30 s to flush a buffer the stuck client never reads, holding the
        connection, counted busy, all that time)."""
        if self._gone:
            return
        if self._lost is None:
            self._lost = self.loop.create_future()
        self.abort()
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(DROP_WAIT):
                await asyncio.shield(self._lost)

    def start_reading_head(self, deadline: float) -> None:
        """Close the connection unless a request's headers are in by ``deadline``."""
        if self._head_timer is None and self.limits is not None:
            self._head_timer = self.loop.call_at(deadline, self._head_timeout)

    def _head_timeout(self) -> None:
        self._head_timer = None
        if not self._head_done and not self.busy:
            self._count_closed(HEADER_TIMEOUT)
            self.abort()

    def _count_closed(self, reason: str) -> None:
        """Count the connection out, as closed by a limit for ``reason``."""
        if self.limits is not None and self in self.limits:
            self.limits.closed[reason] += 1
            self.limits.discard(self)

    def _stop_head_timer(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def data_received(self, data: bytes) -> None:
        if self.transport.is_closing():
            return  # refused: what follows is not read
        if not self._head_done:
            self._head_bytes += len(data)
        super().data_received(data)
        if not self._head_done and self._head_bytes > MAX_HEADER_BYTES \
                and not self.transport.is_closing():
            self._count_closed(HEADERS_TOO_LARGE)
            self._refuse(431, "Request Header Fields Too Large")

    def _refuse(self, code: int, text: str) -> None:
        """A plain answer before any request reached the app, then close (as Go does)."""
        body = f"{code} {text}".encode()
        self.transport.write(b"HTTP/1.1 %d %s\r\ncontent-type: text/plain; charset=utf-8\r\n"
                             b"content-length: %d\r\nconnection: close\r\n\r\n%s"
                             % (code, text.encode(), len(body), body))
        self.transport.close()

    def on_message_begin(self) -> None:
        super().on_message_begin()
        if self.limits is not None:
            self.start_reading_head(self.loop.time() + self.limits.read_header_timeout)
        if self._client_cert:
            self.scope[CLIENT_CERT_KEY] = self._client_cert  # type: ignore[literal-required]
        self.scope[DROP_KEY] = self.drop  # type: ignore[literal-required]

    def on_headers_complete(self) -> None:
        self._head_done = True
        self._stop_head_timer()
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        super().on_message_complete()
        self._head_done, self._head_bytes = False, 0

    def connection_lost(self, exc: Exception | None) -> None:
        self._stop_head_timer()
        if self.limits is not None:
            self.limits.discard(self)
        super().connection_lost(exc)
        self._gone = True
        if self._lost is not None and not self._lost.done():
            self._lost.set_result(None)

    def _start_asgi_task(self, cycle: RequestResponseCycle, app: Any) -> None:
        if cycle.scope["http_version"] == "1.0":
            cycle.__class__ = Http10Cycle
        super()._start_asgi_task(cycle, app)

    def shutdown(self) -> None:
        """At a stop: an idle keep-alive connection is dropped at once. Closing it
        would send TLS close_notify and wait for the peer's, which an idle client
        pool never sends: every stop would wait out the graceful timeout."""
        if self.cycle is None or self.cycle.response_complete:
            self.transport.abort()
        else:
            super().shutdown()


def _no_subprotocol(_headers: Any) -> None:
    """``websockets``' subprotocol step, skipped (``ClientCertWebSocketProtocol``)."""
    return None


class ClientCertWebSocketProtocol(WebSocketsSansIOProtocol):
    """uvicorn's WebSocket protocol (``websockets``, sans-I/O), adding the verified client
    certificate to the scope as ``ClientCertProtocol`` does for HTTP: kubectl's exec
    and attach authenticate with it.

    The offered subprotocols are not parsed as RFC 7230 tokens: kubectl port-forward
    offers ``SPDY/3.1+portforward.k8s.io`` (a "/"), which ``websockets`` refuses with
    a 400. uvicorn lists them for the app and answers with the one it accepts."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.conn.process_subprotocol = _no_subprotocol  # type: ignore[method-assign,assignment]

    async def run_asgi(self) -> None:
        ssl_object: Any = self.transport.get_extra_info("ssl_object") \
            if self.transport is not None else None
        der = ssl_object.getpeercert(binary_form=True) if ssl_object else None
        if der:
            self.scope[CLIENT_CERT_KEY] = der  # type: ignore[literal-required]
        await super().run_asgi()


class Http10Cycle(RequestResponseCycle):
    """A request/response cycle for an HTTP/1.0 client: a response without a length is
    sent close-delimited instead of chunked (RFC 9112 §6.1: no Transfer-Encoding to a
    1.0 client). uvicorn already closes a 1.0 connection after its response."""

    _close_delimited = False

    async def send(self, message: Any) -> None:
        if message["type"] == "http.response.start" and not self.response_started:
            headers = message.get("headers", [])
            if not any(name.lower() == b"content-length" for name, _ in headers):
                self._close_delimited = True
                self.chunked_encoding = False  # uvicorn adds chunking only when None
        elif message["type"] == "http.response.body" and self._close_delimited:
            # uvicorn counts a body down from its Content-Length: let it count this one
            self.expected_content_length = len(message.get("body", b""))
        await super().send(message)


def host_ip() -> str | None:
    """This host's address by its name (``/etc/hosts`` in a container), if not loopback."""
    try:
        ip = socket.gethostbyname(socket.gethostname())
    except OSError:
        return None
    return None if ipaddress.ip_address(ip).is_loopback else ip


def default_cert_dir(storage_url: str) -> str | None:
    """``pki/`` beside the SQLite file; None for other databases (no obvious place)."""
    if storage_url.startswith("sqlite:///") and ":memory:" not in storage_url:
        return str(Path(storage_url.removeprefix("sqlite:///")).parent / "pki")
    return None

