"""Where the API server is and how to talk to it: flags, environment, kubeconfig.

Precedence for the server URL, first match wins:

1. ``server`` passed explicitly (a ``--server`` flag);
2. the ``MINIPLANE_SERVER`` environment variable;
3. a kubeconfig: the ``kubeconfig`` argument, else the first existing file of the
   ``:``-separated ``KUBECONFIG`` list, else ``~/.kube/config`` if it exists;
4. ``https://127.0.0.1:6443``, the API server's default listen address.

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

import yaml

from apimachinery.kubeconfig import kubeconfig

DEFAULT_SERVER = "https://127.0.0.1:6443"
SERVER_ENV = "MINIPLANE_SERVER"
KUBECONFIG_ENV = "KUBECONFIG"


class ConfigError(ValueError):
    """The configuration can't be used; the message is one line, fit for a user."""


@dataclass(frozen=True)
class ClientConfig:
    """Everything a client needs to reach one API server."""

    server: str
    token: str | None = None
    ca_file: str | None = None
    insecure: bool = False
    client_cert: str | None = None
    client_key: str | None = None
    namespace: str = "default"


def load_config(server: str | None = None, kubeconfig: str | os.PathLike[str] | None = None
                ) -> ClientConfig:
    """Resolve the configuration by the precedence in the module docstring.

    Raises ``ConfigError`` for a named kubeconfig that is missing, unreadable or
    malformed, or whose current context can't be resolved.
    """
    explicit = server or os.environ.get(SERVER_ENV) or None
    if explicit:
        if kubeconfig is None:
            return ClientConfig(server=_check_server(explicit, "server"))
        base = read_kubeconfig(kubeconfig, require_server=False)
        return replace(base, server=_check_server(explicit, "server"))
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
    return ClientConfig(
        server=_check_server(server_url, f"kubeconfig {path}") if server_url else DEFAULT_SERVER,
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
                     key_pem: bytes | None = None, token: str | None = None) -> None:
    """Write (or merge into) a kubeconfig whose current context reaches ``server``,
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


# -- helpers -------------------------------------------------------------------------


def _check_server(url: str, origin: str) -> str:
    url = str(url).strip().rstrip("/")
    if not url.startswith(("http://", "https://")):
        raise ConfigError(f"{origin}: server URL must start with http:// or https://, "
                          f"got {url!r}")
    return url


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
