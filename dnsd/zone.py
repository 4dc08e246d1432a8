"""The zone's data: trimmed Services, slices and namespaces, indexed for answering.

``ZoneData`` is what ``records.answer`` reads. It is mutated only through the
``put_*``/``delete_*`` methods, which keep the derived indexes (merged endpoints
per Service, IP → owning Services, Services per namespace) consistent and report
what changed as a ``Changes`` value, or None when the write changed nothing DNS
can see. The index turns ``Changes`` into re-rendered wire answers; tests build a
``ZoneData`` with the same methods, so both see exactly the same structure.

No I/O, no clock: the SOA serial is set by the caller.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from dnsd.model import (
    Key,
    ServiceEndpoints,
    ServiceInfo,
    ServiceKind,
    SliceInfo,
    merge_endpoints,
    service_ips,
)
from dnsd.names import Labels, join_name

DNS_SERVICE: Key = ("kube-system", "kube-dns")  # whose ClusterIP the zone's NS glue is
EMPTY_ENDPOINTS = ServiceEndpoints()

# A cached answer's tag names the one thing whose change could alter it, so a
# change drops only the answers that read what changed (see ``Changes.tags``).
Tag = tuple[str, ...]
NEVER: Tag = ()  # names no watched object can create (outside the grammar, not ours)
ANY: Tag = ("any",)  # answers that read several owners (CNAME chains): every change
APEX: Tag = ("apex",)


def service_tag(key: Key) -> Tag:
    return ("svc", *key)


def namespace_tag(namespace: str) -> Tag:
    return ("ns", namespace)


def ip_tag(ip: str) -> Tag:
    return ("ip", ip)


@dataclass(frozen=True)
class Changes:
    """What a write touched: answers under these owners may differ now."""

    services: frozenset[Key] = frozenset()
    ips: frozenset[str] = frozenset()
    namespaces: frozenset[str] = frozenset()

    def __or__(self, other: Changes) -> Changes:
        return Changes(self.services | other.services, self.ips | other.ips,
                       self.namespaces | other.namespaces)

    @property
    def apex(self) -> bool:
        """The zone's NS answer names the DNS Service, so it changes with it."""
        return DNS_SERVICE in self.services

    def tags(self) -> set[Tag]:
        """The cache tags of every answer these changes may have altered."""
        tags = {service_tag(k) for k in self.services}
        tags |= {namespace_tag(ns) for ns in self.namespaces}
        tags |= {ip_tag(ip) for ip in self.ips}
        tags.add(ANY)
        if self.apex:
            tags.add(APEX)
        return tags


@dataclass
class ZoneData:
    """The cluster zone's state. ``origin`` is the zone as labels (``("cluster", "local")``)."""

    origin: Labels
    ttl: int = 5
    pod_records: bool = True
    serial: int = 0
    local_ips: tuple[str, ...] = ()  # NS glue when there is no kube-dns Service
    services: dict[Key, ServiceInfo] = field(default_factory=dict)
    slices: dict[Key, SliceInfo] = field(default_factory=dict)
    namespaces: set[str] = field(default_factory=set)
    _slices_by_service: dict[Key, set[Key]] = field(default_factory=dict)
    _endpoints: dict[Key, ServiceEndpoints] = field(default_factory=dict)
    _ip_owners: dict[str, set[Key]] = field(default_factory=dict)
    _owned_ips: dict[Key, frozenset[str]] = field(default_factory=dict)
    _service_count: dict[str, int] = field(default_factory=dict)
    _aliases: set[Key] = field(default_factory=set)

    @property
    def zone(self) -> str:
        """The zone's absolute name, ``cluster.local.``."""
        return join_name(self.origin)

    # -- reads -----------------------------------------------------------------------

    def endpoints(self, key: Key) -> ServiceEndpoints:
        return self._endpoints.get(key, EMPTY_ENDPOINTS)

    def ip_owners(self, ip: str) -> list[Key]:
        """Services whose ClusterIP or published headless endpoint is ``ip``, sorted."""
        return sorted(self._ip_owners.get(ip, ()))

    def namespace_exists(self, namespace: str) -> bool:
        """A Namespace object was seen, or a Service lives there (the Service watch may
        deliver before the Namespace watch; a Service is proof enough)."""
        return namespace in self.namespaces or self._service_count.get(namespace, 0) > 0

    def in_zone_aliases(self) -> set[Key]:
        """ExternalName Services whose target is a name in this zone: their answers
        carry the target's records, so any change may alter them. Kept as a set so
        finding them costs nothing per change."""
        return self._aliases

    def services_in(self, namespace: str) -> list[Key]:
        return sorted(k for k in self.services if k[0] == namespace)

    def known_ips(self) -> list[str]:
        return sorted(self._ip_owners)

    # -- writes ----------------------------------------------------------------------

    def put_service(self, info: ServiceInfo) -> Changes | None:
        key = info.key
        old = self.services.get(key)
        if old == info:
            return None
        self.services[key] = info
        if old is None:
            self._service_count[key[0]] = self._service_count.get(key[0], 0) + 1
        if info.kind is ServiceKind.EXTERNAL_NAME and \
                (info.external_name + ".").endswith("." + self.zone):
            self._aliases.add(key)
        else:
            self._aliases.discard(key)
        return self._refresh(key) | Changes(services=frozenset({key}),
                                            namespaces=frozenset({key[0]}))

    def delete_service(self, key: Key) -> Changes | None:
        if self.services.pop(key, None) is None:
            return None
        self._aliases.discard(key)
        count = self._service_count.get(key[0], 0) - 1
        if count > 0:
            self._service_count[key[0]] = count
        else:
            self._service_count.pop(key[0], None)
        return self._refresh(key) | Changes(services=frozenset({key}),
                                            namespaces=frozenset({key[0]}))

    def put_slice(self, info: SliceInfo) -> Changes | None:
        old = self.slices.get(info.key)
        if old == info:
            return None
        self.slices[info.key] = info
        affected = {info.service_key}
        if old is not None and old.service_key != info.service_key:
            self._unlink(old)
            affected.add(old.service_key)
        self._slices_by_service.setdefault(info.service_key, set()).add(info.key)
        return self._refresh_endpoints(affected)

    def delete_slice(self, key: Key) -> Changes | None:
        old = self.slices.pop(key, None)
        if old is None:
            return None
        self._unlink(old)
        return self._refresh_endpoints({old.service_key})

    def put_namespace(self, name: str) -> Changes | None:
        if name in self.namespaces:
            return None
        self.namespaces.add(name)
        return Changes(namespaces=frozenset({name}))

    def delete_namespace(self, name: str) -> Changes | None:
        if name not in self.namespaces:
            return None
        self.namespaces.discard(name)
        return Changes(namespaces=frozenset({name}))

    def replace_all(self, *, services: Iterable[ServiceInfo], slices: Iterable[SliceInfo],
                    namespaces: Iterable[str]) -> None:
        """Load a whole state at once (tests, and nothing else needs it)."""
        for ns in namespaces:
            self.put_namespace(ns)
        for s in slices:
            self.put_slice(s)
        for svc in services:
            self.put_service(svc)

    # -- internals -------------------------------------------------------------------

    def _unlink(self, old: SliceInfo) -> None:
        keys = self._slices_by_service.get(old.service_key)
        if keys is not None:
            keys.discard(old.key)
            if not keys:
                del self._slices_by_service[old.service_key]

    def _refresh_endpoints(self, keys: set[Key]) -> Changes | None:
        changes = Changes()
        changed = False
        for key in keys:
            before = self._endpoints.get(key, EMPTY_ENDPOINTS)
            after = self._merged(key)
            if after != before:
                changed = True
                changes = changes | self._refresh(key) | Changes(services=frozenset({key}))
        return changes if changed else None

    def _merged(self, key: Key) -> ServiceEndpoints:
        slices = [self.slices[k] for k in self._slices_by_service.get(key, ())]
        return merge_endpoints(self.services.get(key), slices) if slices else EMPTY_ENDPOINTS

    def _refresh(self, key: Key) -> Changes:
        """Recompute one Service's merged endpoints and IP ownership; report the IPs
        whose PTR answers may have changed (old and new)."""
        merged = self._merged(key)
        if merged.published or key in self._slices_by_service:
            self._endpoints[key] = merged
        else:
            self._endpoints.pop(key, None)
        service = self.services.get(key)
        new_ips = service_ips(service, merged) if service is not None else frozenset()
        old_ips = self._owned_ips.get(key, frozenset())
        for ip in old_ips - new_ips:
            owners = self._ip_owners.get(ip)
            if owners is not None:
                owners.discard(key)
                if not owners:
                    del self._ip_owners[ip]
        for ip in new_ips - old_ips:
            self._ip_owners.setdefault(ip, set()).add(key)
        if new_ips:
            self._owned_ips[key] = new_ips
        else:
            self._owned_ips.pop(key, None)
        return Changes(ips=old_ips | new_ips)
