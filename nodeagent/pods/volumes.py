"""What a pod's ``configMap``, ``secret``, ``projected`` and ``downwardAPI`` volumes
hold, and where each container mounts them. Pure.

``volume_files(volume, pod=…, lookup=…, tokens=…)`` is the payload of one volume
(relative path → bytes and mode) as the kubelet's volume plugins build it:

- ``configMap``: every key of ``data`` (UTF-8) and ``binaryData`` (base64), or
  only ``items`` (key → path, each with its own ``mode``); ``defaultMode`` else
  0644. A missing object is an error unless ``optional`` (then the volume is empty),
  and so is an ``items`` key the object lacks.
- ``secret``: the same, from ``secretName``; ``data`` is base64.
- ``downwardAPI``: ``items`` of ``fieldRef`` (``metadata.name``, ``namespace``,
  ``uid``, ``labels``, ``annotations``, ``labels['k']``, ``annotations['k']``).
- ``projected``: ``sources`` of the above plus ``serviceAccountToken`` (a token
  for ``audience``, fetched by the caller and passed in ``tokens``), merged
  into one directory under the volume's ``defaultMode``.

With ``fsGroup`` the files are group-readable by it (mode | 0440, as the kubelet's
``SetVolumeOwnership`` does for read-only volumes).

``container_mounts(container, volumes)`` lists a container's bind mounts of the
volumes the node agent projects; a ``subPath`` mount names one entry of the
volume, which the caller resolves to its current file, so it is never updated
(as in Kubernetes). Mounts of other volume types are not made here.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from apimachinery.podrefs import CONFIGMAPS, SECRETS
from nodeagent.pods.atomicwriter import FileProjection, PayloadError, check_path

DEFAULT_MODE = 0o644  # the API's default for every projected file
TOKEN_MODE = 0o600  # kubelet's for a projected token when the pod has an fsGroup
DEFAULT_TOKEN_EXPIRATION = 3600  # the API's default for serviceAccountToken
PROJECTED_TYPES = ("configMap", "secret", "projected", "downwardAPI")

Object = Mapping[str, Any]
Lookup = Callable[[str, str], Object | None]  # (resource, name) → object or None if absent
Payload = dict[str, FileProjection]


class VolumeError(Exception):
    """The volume can't be set up; the message is the FailedMount event's."""


class MissingObject(VolumeError):
    """A required ConfigMap or Secret does not exist (yet)."""


@dataclass(frozen=True)
class TokenSource:
    """One ``serviceAccountToken`` a projected volume asks for."""

    audience: str
    expiration_seconds: int


@dataclass(frozen=True)
class Mount:
    volume: str
    source: str  # the volume's directory, or a path inside it for a subPath
    target: str
    sub_path: str = ""


def volume_kind(volume: Mapping[str, Any]) -> str | None:
    """Which of the projected types ``volume`` is; None for the others."""
    return next((t for t in PROJECTED_TYPES if isinstance(volume.get(t), Mapping)), None)


def _mode(value: Any, default: int) -> int:
    return value & 0o777 if isinstance(value, int) and not isinstance(value, bool) else default


def file_mode(mode: int, fs_group: int | None) -> int:
    return mode | 0o440 if fs_group is not None else mode


def _decode(value: Any, where: str) -> bytes:
    try:
        return base64.b64decode(str(value), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise VolumeError(f"{where}: invalid base64 data") from exc


def object_data(resource: str, obj: Object) -> dict[str, bytes]:
    """Key → bytes: a ConfigMap's ``data`` and ``binaryData``, a Secret's ``data``."""
    out: dict[str, bytes] = {}
    if resource == CONFIGMAPS:
        out.update({k: str(v).encode() for k, v in (obj.get("data") or {}).items()})
        out.update({k: _decode(v, f"binaryData[{k}]")
                    for k, v in (obj.get("binaryData") or {}).items()})
    else:
        out.update({k: _decode(v, f"data[{k}]") for k, v in (obj.get("data") or {}).items()})
    return out


def _singular(resource: str) -> str:
    return "configmap" if resource == CONFIGMAPS else "secret"


def _keys_to_paths(resource: str, name: str, source: Mapping[str, Any], *, lookup: Lookup,
                   default_mode: int) -> Payload:
    """One ConfigMap or Secret source (a volume or a projected source) → files."""
    obj = lookup(resource, name)
    optional = bool(source.get("optional"))
    if obj is None:
        if optional:
            return {}
        raise MissingObject(f'{_singular(resource)} "{name}" not found')
    data = object_data(resource, obj)
    items = source.get("items") or []
    if not items:
        return {key: FileProjection(value, default_mode) for key, value in data.items()}
    out: Payload = {}
    for item in items:
        key, path = item.get("key"), item.get("path")
        if key not in data:
            if optional:
                continue
            what = "config" if resource == CONFIGMAPS else "secret"
            raise VolumeError(f"{_singular(resource)} references non-existent {what} key: "
                              f"{key}")
        out[str(path)] = FileProjection(data[key], _mode(item.get("mode"), default_mode))
    return out


def _field(pod: Object, path: str) -> str:
    """A ``fieldRef`` a downward API file may show (kubelet's ``ExtractFieldPathAsString``)."""
    meta = pod.get("metadata") or {}
    simple = {"metadata.name": "name", "metadata.namespace": "namespace",
              "metadata.uid": "uid"}
    if path in simple:
        return str(meta.get(simple[path], ""))
    for field in ("labels", "annotations"):
        values = meta.get(field) or {}
        if path == f"metadata.{field}":
            return "\n".join(f"{k}={json.dumps(v)}" for k, v in sorted(values.items()))
        prefix = f"metadata.{field}['"
        if path.startswith(prefix) and path.endswith("']"):
            return str(values.get(path[len(prefix):-2], ""))
    raise VolumeError(f"unsupported fieldPath: {path}")


def _downward(source: Mapping[str, Any], *, pod: Object, default_mode: int) -> Payload:
    out: Payload = {}
    for item in source.get("items") or []:
        ref = item.get("fieldRef")
        if not isinstance(ref, Mapping):
            raise VolumeError(f"downward API item {item.get('path')!r}: only fieldRef is "
                              "supported")
        out[str(item.get("path"))] = FileProjection(
            _field(pod, str(ref.get("fieldPath", ""))).encode(),
            _mode(item.get("mode"), default_mode))
    return out


def token_sources(volume: Mapping[str, Any]) -> list[TokenSource]:
    """The tokens a projected volume needs, for the caller to request."""
    projected = volume.get("projected") or {}
    out = []
    for source in projected.get("sources") or []:
        token = source.get("serviceAccountToken")
        if isinstance(token, Mapping):
            out.append(TokenSource(str(token.get("audience") or ""),
                                   int(token.get("expirationSeconds")
                                       or DEFAULT_TOKEN_EXPIRATION)))
    return out


def _projected(spec: Mapping[str, Any], *, pod: Object, lookup: Lookup,
               tokens: Mapping[TokenSource, str], fs_group: int | None,
               default_mode: int) -> Payload:
    out: Payload = {}
    for source in spec.get("sources") or []:
        if isinstance(cm := source.get("configMap"), Mapping):
            part = _keys_to_paths(CONFIGMAPS, str(cm.get("name", "")), cm, lookup=lookup,
                                  default_mode=default_mode)
        elif isinstance(secret := source.get("secret"), Mapping):
            part = _keys_to_paths(SECRETS, str(secret.get("name", "")), secret,
                                  lookup=lookup, default_mode=default_mode)
        elif isinstance(downward := source.get("downwardAPI"), Mapping):
            part = _downward(downward, pod=pod, default_mode=default_mode)
        elif isinstance(token := source.get("serviceAccountToken"), Mapping):
            wanted = TokenSource(str(token.get("audience") or ""),
                                 int(token.get("expirationSeconds")
                                     or DEFAULT_TOKEN_EXPIRATION))
            if wanted not in tokens:
                raise VolumeError("no ServiceAccount token yet")
            # kubelet: the volume's mode, but 0600 (then | 0440) under an fsGroup
            mode = TOKEN_MODE if fs_group is not None else default_mode
            part = {str(token.get("path")): FileProjection(tokens[wanted].encode(), mode)}
        else:
            continue
        out.update(part)
    return out


def volume_files(volume: Mapping[str, Any], *, pod: Object, lookup: Lookup,
                 tokens: Mapping[TokenSource, str] | None = None) -> Payload:
    """The files of one volume; raises ``MissingObject`` for a required object that
    does not exist, ``VolumeError`` for anything else that stops the mount."""
    fs_group = ((pod.get("spec") or {}).get("securityContext") or {}).get("fsGroup")
    fs_group = fs_group if isinstance(fs_group, int) else None
    kind = volume_kind(volume)
    spec = volume.get(kind) if kind else None
    if kind is None or not isinstance(spec, Mapping):
        raise VolumeError(f"volume {volume.get('name')!r} is not a {'/'.join(PROJECTED_TYPES)}"
                          " volume")
    default_mode = _mode(spec.get("defaultMode"), DEFAULT_MODE)
    if kind == "configMap":
        files = _keys_to_paths(CONFIGMAPS, str(spec.get("name", "")), spec, lookup=lookup,
                               default_mode=default_mode)
    elif kind == "secret":
        files = _keys_to_paths(SECRETS, str(spec.get("secretName", "")), spec,
                               lookup=lookup, default_mode=default_mode)
    elif kind == "downwardAPI":
        files = _downward(spec, pod=pod, default_mode=default_mode)
    else:
        files = _projected(spec, pod=pod, lookup=lookup, tokens=tokens or {},
                           fs_group=fs_group, default_mode=default_mode)
    for path in files:
        try:
            check_path(path)
        except PayloadError as exc:
            raise VolumeError(str(exc)) from exc
    return {path: FileProjection(f.data, file_mode(f.mode, fs_group))
            for path, f in sorted(files.items())}


def projected_volumes(pod: Object) -> list[Mapping[str, Any]]:
    """The pod's volumes of the types ``volume_files`` builds, in spec order."""
    return [v for v in (pod.get("spec") or {}).get("volumes") or []
            if isinstance(v, Mapping) and volume_kind(v) is not None]


def container_mounts(container: Mapping[str, Any], volume_dirs: Mapping[str, str]
                     ) -> list[Mount]:
    """The container's mounts of the volumes in ``volume_dirs`` (name → directory),
    parents before children (a mount under another's path must come after it).
    These volume types are always mounted read-only, as by the kubelet."""
    out = []
    for m in container.get("volumeMounts") or []:
        name = m.get("name")
        if name not in volume_dirs:
            continue
        sub = str(m.get("subPath") or "")
        source = volume_dirs[name] + (f"/{sub}" if sub else "")
        out.append(Mount(volume=name, source=source, target=str(m.get("mountPath", "")),
                         sub_path=sub))
    return sorted(out, key=lambda mt: (mt.target.rstrip("/").count("/"), mt.target))
