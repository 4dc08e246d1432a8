"""Where a container's environment comes from in the cluster (the edge of ``envvars``).

Services: the manager's informer on every Service (the node's role lists and
watches them; kubelet keeps the same informer), so the variables are those of the
Services that exist when the container starts. ConfigMaps and Secrets: read with
one ``GET`` each when a container starts (kubelet's ``Get`` change-detection
strategy), through ``read_object`` alone, so what a node may read is decided in
one place: the API server's Node authorizer lets a node get only those referenced
by pods bound to it. Allocatable: the node's own (``nodeagent.node.capacity``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from apimachinery.kinds import CONFIGMAP, SECRET, Kind
from client.errors import ApiError, NotFound
from client.http import AsyncClient
from nodeagent.node.capacity import capacity
from nodeagent.pods import envvars
from nodeagent.pods.serviceaccount import service_account_name


@dataclass
class Objects:
    """The ConfigMaps and Secrets a container reads, fetched; None where not found."""

    configmaps: dict[str, Mapping[str, Any] | None] = field(default_factory=dict)
    secrets: dict[str, Mapping[str, Any] | None] = field(default_factory=dict)

    def configmap(self, name: str) -> Mapping[str, Any] | None:
        return self.configmaps.get(name)

    def secret(self, name: str) -> Mapping[str, Any] | None:
        return self.secrets.get(name)


async def read_object(client: AsyncClient, kind: Kind, namespace: str, name: str
                      ) -> dict[str, Any] | None:
    """One ConfigMap or Secret as this node may read it; None if it does not exist.
    Any other failure (a refusal included) raises ``EnvError`` with its message."""
    try:
        return await client.get(kind, name, namespace)
    except NotFound:
        return None
    except ApiError as exc:
        raise envvars.EnvError(str(exc)) from None


class EnvSource:
    """Builds containers' environments for the pods of this node."""

    def __init__(self, client: AsyncClient | None,
                 services: Callable[[], Iterable[Mapping[str, Any]]],
                 allocatable: Mapping[str, Any] | None = None) -> None:
        self.client = client
        self.services = services
        self.allocatable = dict(allocatable if allocatable is not None else capacity())

    async def objects(self, container: Mapping[str, Any], namespace: str) -> Objects:
        found = Objects()
        if self.client is None:
            return found
        cms, secrets = envvars.referenced(container)
        for name in sorted(cms):
            found.configmaps[name] = await read_object(self.client, CONFIGMAP, namespace, name)
        for name in sorted(secrets):
            found.secrets[name] = await read_object(self.client, SECRET, namespace, name)
        return found

    def context(self, pod: Mapping[str, Any], *, pod_ip: str | None,
                host_ip: str | None) -> envvars.PodContext:
        meta, spec = pod.get("metadata") or {}, pod.get("spec") or {}
        links = spec.get("enableServiceLinks") is not False
        return envvars.PodContext(
            service_env=envvars.services_env(self.services(),
                                             str(meta.get("namespace") or "default"),
                                             enable_service_links=links),
            pod_ips=[pod_ip] if pod_ip else [], host_ips=[host_ip] if host_ip else [],
            allocatable=self.allocatable, service_account=service_account_name(pod))

    async def build(self, pod: Mapping[str, Any], container: Mapping[str, Any], *,
                    pod_ip: str | None, host_ip: str | None) -> envvars.Built:
        """The container's variables. Raises ``EnvError``."""
        namespace = str((pod.get("metadata") or {}).get("namespace") or "default")
        objects = await self.objects(container, namespace)
        return envvars.container_env(pod, container,
                                     self.context(pod, pod_ip=pod_ip, host_ip=host_ip),
                                     objects)
