"""Where the API server is and how to talk to it: flags, environment, kubeconfig.

Precedence for the server URL, first match wins:

1. ``server`` passed explicitly (a ``--server`` flag);
2. the ``MINIPLANE_SERVER`` environment variable;
3. a kubeconfig: the ``kubeconfig`` argument, else the first existing file of the
   ``:``-separated ``KUBECONFIG`` list, else ``~/.kube/config`` if it exists;
4. ``https://127.0.0.1:6443``, the API server's default listen address.

An explicit server (1 or 2) may list several API servers of one cluster,
separated by commas (``https://a:6443,https://b:6443``): the client uses the
first and moves to the next when one is unreachable (``client.failover``). They
share the CA and credentials, which come from the kubeconfig as for one server.
A kubeconfig's ``server`` stays one URL, because kubectl and the official
clients read the same file and take the whole field as one URL; a comma in it
is an error that says to pass the list with ``--server``/``MINIPLANE_SERVER``.
A kubeconfig lists more servers in a cluster extension, which kubectl keeps and
ignores (it uses ``server`` alone)::

    clusters:
    - name: ha
      cluster:
        server: https://10.0.0.1:6443
        extensions:
        - name: miniplane.io/fallback-servers
          extension: {servers: [https://10.0.0.2:6443, https://10.0.0.3:6443]}

With an explicit server (1 or 2) a kubeconfig is read only if it was named by the
``kubeconfig`` argument, and then only for credentials, CA and namespace (as
``kubectl --kubeconfig K --server S`` does). A kubeconfig found implicitly is
ignored then: it may belong to another cluster, whose token must not be sent to
this one, and a broken stray file must not break an explicit ``--server``.

Embedded ``*-data`` fields are written to private temporary files (removed at
exit), because TLS libraries load certificates and keys from paths.
"""

from __future__ import annotations

import atexit
import base64
import binascii
import os
import shutil
import tempfile
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import yaml

from apimachinery.kubeconfig import kubeconfig

DEFAULT_SERVER = "https://127.0.0.1:6443"
SERVER_ENV = "MINIPLANE_SERVER"
KUBECONFIG_ENV = "KUBECONFIG"
FALLBACK_EXTENSION = "miniplane.io/fallback-servers"

# The --server help every command shares, so they all say the same thing.
SERVER_HELP = ("API server URL, or several of one cluster separated by commas (the next "
               "is used when one is unreachable); else $MINIPLANE_SERVER, a kubeconfig, "
               "https://127.0.0.1:6443")


class ConfigError(ValueError):
    """The configuration can't be used; the message is one line, fit for a user."""


class ServerFlagError(ConfigError):
    """``--server`` or ``MINIPLANE_SERVER`` is not a URL or a list of URLs: a usage
    error (commands exit 2 for it), unlike a broken kubeconfig file."""


@dataclass(frozen=True)
class ClientConfig:
    """Everything a client needs to reach the API: ``server`` first, then
    ``fallback_servers`` in turn when the one in use is unreachable.

    ``server`` may be given as a comma-separated list; it is split into the first
    URL and the fallbacks (before any given ``fallback_servers``).
    """

    server: str
    token: str | None = None
    ca_file: str | None = None
    insecure: bool = False
    client_cert: str | None = None
    client_key: str | None = None
    namespace: str = "default"
    fallback_servers: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        fallbacks = self.fallback_servers
        if "," in self.server:
            first, *rest = parse_servers(self.server)
            object.__setattr__(self, "server", first)
            fallbacks = (*rest, *fallbacks)
        object.__setattr__(self, "fallback_servers", tuple(
            dict.fromkeys(url for url in fallbacks if url != self.server)))

    @property
    def servers(self) -> tuple[str, ...]:
        """Every API server URL, in the order they are tried."""
        return (self.server, *self.fallback_servers)

    def with_servers(self, text: str, origin: str = "server") -> ClientConfig:
        """This configuration reaching the comma-separated ``text`` instead."""
        first, *rest = parse_servers(text, origin)
        return replace(self, server=first, fallback_servers=tuple(rest))


def load_config(server: str | None = None, kubeconfig: str | os.PathLike[str] | None = None
                ) -> ClientConfig:
    """Resolve the configuration by the precedence in the module docstring.

    Raises ``ConfigError`` for a named kubeconfig that is missing, unreadable or
    malformed, or whose current context can't be resolved.
    """
    origin = "--server" if server else SERVER_ENV
    explicit = server or os.environ.get(SERVER_ENV) or None
    if explicit:
        try:
            first, *rest = parse_servers(explicit, origin)
        except ConfigError as exc:
            raise ServerFlagError(str(exc)) from None
        base = ClientConfig(server=DEFAULT_SERVER) if kubeconfig is None else \
            read_kubeconfig(kubeconfig, require_server=False)
        return replace(base, server=first, fallback_servers=tuple(rest))
    path = Path(kubeconfig) if kubeconfig is not None else find_kubeconfig()
    if path is None:
        return ClientConfig(server=DEFAULT_SERVER)
    return read_kubeconfig(path)


def find_kubeconfig() -> Path | None:
    """The kubeconfig kubectl would use: ``$KUBECONFIG``'s first existing file, or
    ``~/.kube/config`` when ``KUBECONFIG`` is unset; None if there is none."""
    env = os.environ.get(KUBECONFIG_ENV)
    if env is not None:
        for part in env.split(os.pathsep):
            if part and Path(part).expanduser().is_file():
                return Path(part).expanduser()
        return None
    home = Path("~/.kube/config").expanduser()
    return home if home.is_file() else None


def read_kubeconfig(path: str | os.PathLike[str], *, require_server: bool = True
                    ) -> ClientConfig:
    """The ``ClientConfig`` of a kubeconfig file's current context."""
    path = Path(path)
    doc = _load_yaml(path)
    context_name = doc.get("current-context")
    if not context_name:
        raise ConfigError(f"kubeconfig {path}: current-context is not set")
    context = _named(doc, "contexts", "context", context_name, path)
    if context is None:
        raise ConfigError(f'kubeconfig {path}: context "{context_name}" not found')

    cluster_name = context.get("cluster")
    cluster = _named(doc, "clusters", "cluster", cluster_name, path) if cluster_name else None
    if cluster is None:
        if require_server:
            raise ConfigError(f'kubeconfig {path}: context "{context_name}" has no cluster '
                              f'"{cluster_name or ""}"')
        cluster = {}
    user_name = context.get("user")
    user = _named(doc, "users", "user", user_name, path) if user_name else None
    user = user or {}

    server_url = cluster.get("server")
    if require_server and not server_url:
        raise ConfigError(f'kubeconfig {path}: cluster "{cluster_name}" has no server')
    here = path.parent
    token = user.get("token")
    if not token and user.get("tokenFile"):
        token_path = _resolve(here, user["tokenFile"])
        try:
            token = Path(token_path).read_text().strip()
        except OSError as exc:
            raise ConfigError(f"kubeconfig {path}: cannot read tokenFile {token_path}: "
                              f"{exc.strerror}") from exc
    if server_url and "," in str(server_url):
        raise ConfigError(f'kubeconfig {path}: cluster "{cluster_name}" server must be one URL '
                          f"(kubectl reads it too); list several API servers with --server "
                          f"or {SERVER_ENV}, separated by commas")
    return ClientConfig(
        server=_check_server(server_url, f"kubeconfig {path}") if server_url else DEFAULT_SERVER,
        fallback_servers=_fallback_servers(cluster, path) if server_url else (),
        token=token or None,
        ca_file=_file_or_data(cluster, "certificate-authority", here, path),
        insecure=bool(cluster.get("insecure-skip-tls-verify", False)),
        client_cert=_file_or_data(user, "client-certificate", here, path),
        client_key=_file_or_data(user, "client-key", here, path),
        namespace=context.get("namespace") or "default",
    )


def write_kubeconfig(path: str | os.PathLike[str], *, server: str,
                     cluster_name: str = "miniplane", namespace: str = "default",
                     ca_pem: bytes | None = None, cert_pem: bytes | None = None,
                     key_pem: bytes | None = None, token: str | None = None,
                     fallback_servers: tuple[str, ...] = ()) -> None:
    """Write (or merge into) a kubeconfig whose current context reaches ``server``
    (then ``fallback_servers``, in the ``miniplane.io/fallback-servers`` extension),
    with the CA and the credentials given (embedded as ``*-data``).

    The cluster, user and context are all named ``cluster_name``; entries of that
    name are replaced and everything else in an existing file is kept, so pointing
    it at ``~/.kube/config`` adds a context instead of destroying others. Written
    atomically with mode 0600, as kubectl does (it holds credentials).
    """
    path = Path(path).expanduser()
    doc: dict[str, Any] = _load_yaml(path) if path.exists() else {}
    doc.setdefault("apiVersion", "v1")
    doc.setdefault("kind", "Config")
    doc.setdefault("preferences", {})
    built = kubeconfig(cluster_name, server, ca_pem, cert_pem=cert_pem, key_pem=key_pem,
                       token=token, namespace=namespace)
    entries = {section: built[section][0] for section in ("clusters", "users", "contexts")}
    if fallback_servers:
        entries["clusters"]["cluster"]["extensions"] = [
            {"name": FALLBACK_EXTENSION, "extension": {"servers": list(fallback_servers)}}]
    for section, entry in entries.items():
        kept = [e for e in (doc.get(section) or []) if isinstance(e, dict)
                and e.get("name") != cluster_name]
        doc[section] = [*kept, entry]
    doc["current-context"] = cluster_name
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as f:
            yaml.safe_dump(doc, f, default_flow_style=False, sort_keys=False)
        os.chmod(tmp, 0o600)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def parse_servers(text: str, origin: str = "server") -> tuple[str, ...]:
    """``https://a:6443,https://b:6443`` → each URL checked and normalised, in order,
    repeats dropped; ``ConfigError`` naming ``origin`` for an empty entry or a bad URL."""
    urls: list[str] = []
    for part in str(text).split(","):
        if not part.strip():
            raise ConfigError(f"{origin}: empty URL in the server list {text!r}")
        url = _check_server(part, origin)
        if url not in urls:
            urls.append(url)
    return tuple(urls)


# -- helpers -------------------------------------------------------------------------


def _check_server(url: str, origin: str) -> str:
    """One server URL: http(s), a host, a valid port, no query; trailing ``/`` dropped."""
    url = str(url).strip().rstrip("/")
    if not url.startswith(("http://", "https://")):
        raise ConfigError(f"{origin}: server URL must start with http:// or https://, "
                          f"got {url!r}")
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError for a port that is not 0-65535
    except ValueError as exc:
        raise ConfigError(f"{origin}: invalid server URL {url!r}: {exc}") from None
    if not parts.hostname:
        raise ConfigError(f"{origin}: invalid server URL {url!r}: no host")
    if parts.query or parts.fragment or "," in url or any(c.isspace() for c in url):
        raise ConfigError(f"{origin}: invalid server URL {url!r}")
    return url


def _fallback_servers(cluster: dict[str, Any], path: Path) -> tuple[str, ...]:
    """The URLs of the cluster's ``miniplane.io/fallback-servers`` extension, if any."""
    extensions = cluster.get("extensions") or []
    if not isinstance(extensions, list):
        raise ConfigError(f"kubeconfig {path}: cluster extensions must be a list")
    for entry in extensions:
        if isinstance(entry, dict) and entry.get("name") == FALLBACK_EXTENSION:
            body = entry.get("extension")
            urls = body.get("servers") if isinstance(body, dict) else None
            if not isinstance(urls, list) or not all(isinstance(u, str) for u in urls):
                raise ConfigError(f"kubeconfig {path}: extension {FALLBACK_EXTENSION} needs "
                                  "servers: a list of URLs")
            return tuple(_check_server(u, f"kubeconfig {path}: {FALLBACK_EXTENSION}")
                         for u in urls)
    return ()


def _load_yaml(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text()
    except OSError as exc:
        raise ConfigError(f"cannot read kubeconfig {path}: {exc.strerror or exc}") from exc
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        where = getattr(exc, "problem_mark", None)
        line = f" (line {where.line + 1})" if where is not None else ""
        raise ConfigError(f"kubeconfig {path} is not valid YAML{line}") from exc
    if doc is None:
        return {}
    if not isinstance(doc, dict):
        raise ConfigError(f"kubeconfig {path} is not a mapping")
    return doc


def _named(doc: dict[str, Any], section: str, field: str, name: str, path: Path
           ) -> dict[str, Any] | None:
    entries = doc.get(section) or []
    if not isinstance(entries, list):
        raise ConfigError(f"kubeconfig {path}: {section} must be a list")
    for entry in entries:
        if isinstance(entry, dict) and entry.get("name") == name:
            value = entry.get(field) or {}
            if not isinstance(value, dict):
                raise ConfigError(f'kubeconfig {path}: {field} "{name}" must be a mapping')
            return value
    return None


def _resolve(here: Path, value: str) -> str:
    """Relative paths in a kubeconfig are relative to the file, as kubectl resolves them."""
    p = Path(value).expanduser()
    return str(p if p.is_absolute() else here / p)


def _file_or_data(section: dict[str, Any], field: str, here: Path, path: Path) -> str | None:
    data = section.get(f"{field}-data")
    if data:
        try:
            raw = base64.b64decode(data, validate=True)
        except (binascii.Error, ValueError) as exc:
            raise ConfigError(f"kubeconfig {path}: {field}-data is not valid base64") from exc
        return _write_private(field, raw)
    value = section.get(field)
    return _resolve(here, value) if value else None


_tempdir: str | None = None


def _write_private(field: str, data: bytes) -> str:
    global _tempdir
    if _tempdir is None:
        _tempdir = tempfile.mkdtemp(prefix="miniplane-kubeconfig-")
        atexit.register(shutil.rmtree, _tempdir, True)
    fd, name = tempfile.mkstemp(prefix=f"{field}-", suffix=".pem", dir=_tempdir)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    return name
