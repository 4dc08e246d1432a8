"""Which ConfigMaps and Secrets a Pod references (``VisitPodConfigmapNames``/``…SecretNames``).

One answer for the API server's Node authorizer (a node may read only what pods
bound to it reference) and for the node agent (what a container's environment
reads). Pure code; malformed parts of a spec are skipped (validation reports them).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

CONFIGMAPS = "configmaps"
SECRETS = "secrets"


def _dicts(value: Any) -> Iterator[Mapping[str, Any]]:
    for item in value if isinstance(value, list) else []:
        if isinstance(item, dict):
            yield item


def _name(ref: Any, key: str = "name") -> str | None:
    if isinstance(ref, dict) and isinstance(ref.get(key), str) and ref[key]:
        return str(ref[key])
    return None


def container_refs(container: Mapping[str, Any]) -> set[tuple[str, str]]:
    """(resource, name) of what a container's ``envFrom`` and ``env`` read."""
    refs: set[tuple[str, str]] = set()
    for source in _dicts(container.get("envFrom")):
        if (n := _name(source.get("configMapRef"))) is not None:
            refs.add((CONFIGMAPS, n))
        if (n := _name(source.get("secretRef"))) is not None:
            refs.add((SECRETS, n))
    for var in _dicts(container.get("env")):
        src = var.get("valueFrom")
        if not isinstance(src, dict):
            continue
        if (n := _name(src.get("configMapKeyRef"))) is not None:
            refs.add((CONFIGMAPS, n))
        if (n := _name(src.get("secretKeyRef"))) is not None:
            refs.add((SECRETS, n))
    return refs


def pod_refs(pod: Mapping[str, Any]) -> set[tuple[str, str]]:
    """(resource, name) of every ConfigMap and Secret the pod references: its
    containers' (init and ephemeral too) environment, its volumes (``configMap``,
    ``secret``, ``projected`` sources) and ``imagePullSecrets``."""
    spec = pod.get("spec")
    if not isinstance(spec, dict):
        return set()
    refs: set[tuple[str, str]] = set()
    for key in ("containers", "initContainers", "ephemeralContainers"):
        for c in _dicts(spec.get(key)):
            refs |= container_refs(c)
    for vol in _dicts(spec.get("volumes")):
        if (n := _name(vol.get("configMap"))) is not None:
            refs.add((CONFIGMAPS, n))
        if (n := _name(vol.get("secret"), "secretName")) is not None:
            refs.add((SECRETS, n))
        projected = vol.get("projected")
        for source in _dicts(projected.get("sources") if isinstance(projected, dict) else None):
            if (n := _name(source.get("configMap"))) is not None:
                refs.add((CONFIGMAPS, n))
            if (n := _name(source.get("secret"))) is not None:
                refs.add((SECRETS, n))
    for ref in _dicts(spec.get("imagePullSecrets")):
        if (n := _name(ref)) is not None:
            refs.add((SECRETS, n))
    return refs
