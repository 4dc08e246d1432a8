"""Which ConfigMaps and Secrets a Pod refers to, as Kubernetes' ``podutil`` visits them.

Pure. One answer for the API server's Node authorizer (a node may read only what
pods bound to it refer to) and for the node agent (what a container's environment
reads, which objects its volumes watch). The references are the ones Kubernetes'
``VisitPodConfigmapNames`` and ``VisitPodSecretNames`` follow for what miniplane
runs: ``configMap``/``secret`` volumes, ``projected`` sources, ``env[].valueFrom``
key refs, ``envFrom`` and ``imagePullSecrets``, in every kind of container.
Malformed parts of a spec are skipped (validation reports them).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

CONFIGMAPS = "configmaps"
SECRETS = "secrets"
CONTAINER_LISTS = ("initContainers", "containers", "ephemeralContainers")
# Volume plugins that name a Secret, and where (podutil.VisitPodSecretNames): their
# credentials are as much the pod's Secret as a ``secret`` volume, though the node
# agent mounts none of these plugins.
_PLUGIN_SECRET_REFS = {"azureFile": ("secretName",), "cephfs": ("secretRef", "name"),
                       "cinder": ("secretRef", "name"), "flexVolume": ("secretRef", "name"),
                       "iscsi": ("secretRef", "name"), "rbd": ("secretRef", "name"),
                       "scaleIO": ("secretRef", "name"), "storageos": ("secretRef", "name"),
                       "csi": ("nodePublishSecretRef", "name")}


def _dicts(value: Any) -> Iterator[Mapping[str, Any]]:
    for item in value if isinstance(value, list) else []:
        if isinstance(item, Mapping):
            yield item


def _name(ref: Any, field: str = "name") -> str | None:
    if isinstance(ref, Mapping) and isinstance(ref.get(field), str) and ref[field]:
        return str(ref[field])
    return None


def _plugin_secrets(spec: Mapping[str, Any]) -> set[tuple[str, str]]:
    out: set[tuple[str, str]] = set()
    for volume in _dicts(spec.get("volumes")):
        for plugin, (*path, field) in _PLUGIN_SECRET_REFS.items():
            ref: Any = volume.get(plugin)
            for key in path:
                ref = ref.get(key) if isinstance(ref, Mapping) else None
            if (name := _name(ref, field)) is not None:
                out.add((SECRETS, name))
    return out


def volume_references(spec: Mapping[str, Any]) -> set[tuple[str, str]]:
    """(resource, name) of every ConfigMap and Secret the pod's volumes project."""
    out: set[tuple[str, str]] = set()
    for volume in _dicts(spec.get("volumes")):
        if (name := _name(volume.get("configMap"))) is not None:
            out.add((CONFIGMAPS, name))
        if (name := _name(volume.get("secret"), "secretName")) is not None:
            out.add((SECRETS, name))
        projected = volume.get("projected")
        for source in _dicts(projected.get("sources") if isinstance(projected, Mapping)
                             else None):
            if (name := _name(source.get("configMap"))) is not None:
                out.add((CONFIGMAPS, name))
            if (name := _name(source.get("secret"))) is not None:
                out.add((SECRETS, name))
    return out


def container_refs(container: Mapping[str, Any]) -> set[tuple[str, str]]:
    """(resource, name) of what a container's ``envFrom`` and ``env`` read."""
    out: set[tuple[str, str]] = set()
    for env_from in _dicts(container.get("envFrom")):
        if (name := _name(env_from.get("configMapRef"))) is not None:
            out.add((CONFIGMAPS, name))
        if (name := _name(env_from.get("secretRef"))) is not None:
            out.add((SECRETS, name))
    for env in _dicts(container.get("env")):
        source = env.get("valueFrom")
        if isinstance(source, Mapping):
            if (name := _name(source.get("configMapKeyRef"))) is not None:
                out.add((CONFIGMAPS, name))
            if (name := _name(source.get("secretKeyRef"))) is not None:
                out.add((SECRETS, name))
    return out


def pod_references(pod: Mapping[str, Any]) -> set[tuple[str, str]]:
    """(resource, name) of every ConfigMap and Secret the pod refers to."""
    spec = pod.get("spec")
    if not isinstance(spec, Mapping):
        return set()
    out = volume_references(spec) | _plugin_secrets(spec)
    for field in CONTAINER_LISTS:
        for container in _dicts(spec.get(field)):
            out |= container_refs(container)
    for secret in _dicts(spec.get("imagePullSecrets")):
        if (name := _name(secret)) is not None:
            out.add((SECRETS, name))
    return out
