"""Informer handlers → ``ZoneData`` → precomputed wire answers.

The handlers trim each object (``model``), apply it to the ``ZoneData`` and get
back what changed (``zone.Changes``), or nothing for writes DNS can't see. For a
change they re-render, for each affected *owner*, the answers it owns:

- a Service: its name, its ``_port._proto`` names and (headless) its endpoints'
  names, each for A, AAAA and SRV (and CNAME for an ExternalName);
- an IP: the PTR answer of its reverse name;
- a namespace: ``<ns>.svc.<zone>`` (NODATA while it exists);
- the apex: SOA, NS (which names the ``kube-dns`` Service), ``dns-version``.

Answers are computed by the same pure ``records.answer`` the slow path uses, so
the fast path can't disagree with it; only answers that differ from the stored
ones are re-rendered. Every change bumps the SOA serial and drops the slow
path's cached answers that read what changed (``zone.Changes.tags``).

Before the first full sync of every informer the table is left empty (queries
take the slow path, which answers SERVFAIL instead of a premature NXDOMAIN):
``go_live`` then renders everything in one pass.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

from dnsd import records
from dnsd.metrics import Metrics
from dnsd.model import (
    TRIGGER_TIME_ANNOTATION,
    Key,
    ServiceInfo,
    ServiceKind,
    creation_time,
    parse_timestamp,
    service_from_object,
    slice_from_object,
)
from dnsd.names import NS_HOST_LABELS, SVC, Labels, reverse_labels
from dnsd.records import Answer
from dnsd.wire import AnswerTable, question_key
from dnsd.zone import Changes, ZoneData

log = logging.getLogger(__name__)

Owner = tuple[str, ...]
Object = dict[str, Any]

NAME_TYPES = (records.A, records.AAAA, records.SRV)


class Index:
    """Keeps ``zone`` and ``table`` in step with the watched objects."""

    def __init__(self, zone: ZoneData, table: AnswerTable, metrics: Metrics, *,
                 dynamic_chase: bool = False, clock: Callable[[], float] = time.time) -> None:
        self.zone = zone
        self.table = table
        self.metrics = metrics
        # With upstreams, an ExternalName answer to an out-of-zone target is completed
        # per query (CNAME + the target's records), so it can't be stored.
        self.dynamic_chase = dynamic_chase
        self.clock = clock
        self.live = False
        self._owned: dict[Owner, set[bytes]] = {}

    # -- informer handlers (they run on the informer's task and must not raise) ----------

    def service_added(self, obj: Object) -> None:
        self._service(obj, created=True)

    def service_updated(self, old: Object, new: Object) -> None:
        self._service(new, created=False)

    def service_deleted(self, obj: Object) -> None:
        info = service_from_object(obj)
        changes = self.zone.delete_service(info.key)
        if changes is not None and self.live:
            log.info("service %s/%s removed at resourceVersion %s", *info.key, _version(obj))
        self._apply(changes)

    def slice_added(self, obj: Object) -> None:
        self._slice(obj)

    def slice_updated(self, old: Object, new: Object) -> None:
        self._slice(new)

    def slice_deleted(self, obj: Object) -> None:
        info = slice_from_object(obj)
        self._apply(self.zone.delete_slice(info.key))

    def namespace_added(self, obj: Object) -> None:
        self._apply(self.zone.put_namespace(_name(obj)))

    def namespace_updated(self, old: Object, new: Object) -> None:
        return  # existence is all DNS needs of a namespace

    def namespace_deleted(self, obj: Object) -> None:
        self._apply(self.zone.delete_namespace(_name(obj)))

    # -- lifecycle -------------------------------------------------------------------

    def go_live(self) -> None:
        """Render every owner's answers; from now on changes re-render incrementally."""
        started = self.clock()
        self.zone.serial = max(self.zone.serial, int(started))
        self.table.serial = self.zone.serial
        self.live = True
        namespaces = set(self.zone.namespaces) | {k[0] for k in self.zone.services}
        self._refresh(Changes(services=frozenset(self.zone.services),
                              ips=frozenset(self.zone.known_ips()),
                              namespaces=frozenset(namespaces)), apex=True)
        self.table.flush_cache()
        log.info("serving %s: %d services, %d endpoint slices, %d namespaces; "
                 "%d answers precomputed in %.0f ms", self.zone.zone, len(self.zone.services),
                 len(self.zone.slices), len(namespaces), len(self.table.entries),
                 (self.clock() - started) * 1000)

    # -- internals -------------------------------------------------------------------

    def _service(self, obj: Object, *, created: bool) -> None:
        info = service_from_object(obj)
        existed = info.key in self.zone.services
        changes = self.zone.put_service(info)
        if changes is None:
            return
        if self.live:
            if existed:
                log.debug("service %s/%s changed at resourceVersion %s", *info.key,
                          _version(obj))
            else:
                log.info("service %s/%s added (%s%s) at resourceVersion %s", *info.key,
                         info.kind.value, _describe(info), _version(obj))
        self._apply(changes)
        if self.live:
            written = _trigger_time(obj) or (creation_time(obj) if created else None)
            self._observe(info.kind, written)

    def _slice(self, obj: Object) -> None:
        info = slice_from_object(obj)
        changes = self.zone.put_slice(info)
        self._apply(changes)
        if changes is not None and self.live:
            service = self.zone.services.get(info.service_key)
            kind = service.kind if service is not None else ServiceKind.HEADLESS
            self._observe(kind, info.trigger_time)

    def _observe(self, kind: ServiceKind, written: float | None) -> None:
        if written is not None:
            self.metrics.programming.observe(max(0.0, self.clock() - written), (kind.value,))

    def _apply(self, changes: Changes | None) -> None:
        if changes is None:
            return
        self.zone.serial = max(self.zone.serial, int(self.clock()))
        self.table.serial = self.zone.serial
        if self.live:
            self._refresh(changes, apex=changes.apex)
            self.table.invalidate(changes.tags())

    def _refresh(self, changes: Changes, *, apex: bool) -> None:
        services = set(changes.services)
        if services:
            # An ExternalName aliasing a name in the zone answers with that name's
            # records too, so it changes whenever anything else does.
            services |= self.zone.in_zone_aliases()
        for key in services:
            self._set_owned(("svc", *key), self._service_answers(key))
        for ip in changes.ips:
            self._set_owned(("ip", ip), self._answers([reverse_labels(ip)], (records.PTR,)))
        for ns in changes.namespaces:
            names = [(ns, SVC, *self.zone.origin)] if self.zone.namespace_exists(ns) else []
            self._set_owned(("ns", ns), self._answers(names, NAME_TYPES))
        if apex:
            origin = self.zone.origin
            answers = self._answers([origin], (records.SOA, records.NS, records.A, records.AAAA))
            answers |= self._answers([("dns-version", *origin)], (records.TXT, records.A))
            answers |= self._answers([(*NS_HOST_LABELS, *origin)], (records.A, records.AAAA))
            self._set_owned(("apex",), answers)

    def _service_answers(self, key: Key) -> dict[bytes, Answer]:
        service = self.zone.services.get(key)
        if service is None:
            return {}
        base: Labels = (service.name, service.namespace, SVC, *self.zone.origin)
        names = [base]
        if service.kind is ServiceKind.EXTERNAL_NAME:
            return self._answers(names, (*NAME_TYPES, records.CNAME))
        names += [(f"_{p.name}", f"_{p.protocol}", *base) for p in service.ports if p.name]
        if service.kind is ServiceKind.HEADLESS:
            names += [(label, *base) for label in self.zone.endpoints(key).by_label]
        return self._answers(names, NAME_TYPES)

    def _answers(self, names: list[Labels], qtypes: tuple[int, ...]) -> dict[bytes, Answer]:
        """The answers to store for these names: not NXDOMAIN (no use storing those for
        names that come and go), not 'not ours', and not the per-query chased ones."""
        out: dict[bytes, Answer] = {}
        for labels in names:
            for qtype in qtypes:
                ans = records.answer(self.zone, labels, qtype, serial=0)
                if ans.forward or ans.rcode == records.NXDOMAIN:
                    continue
                if ans.chase and self.dynamic_chase:
                    continue
                out[question_key(labels, qtype)] = ans
        return out

    def _set_owned(self, owner: Owner, answers: dict[bytes, Answer]) -> None:
        self.table.store(answers, drop=self._owned.get(owner, set()) - answers.keys())
        if answers:
            self._owned[owner] = set(answers)
        else:
            self._owned.pop(owner, None)


def _describe(info: ServiceInfo) -> str:
    if info.kind is ServiceKind.CLUSTER_IP:
        return " " + ",".join(info.cluster_ips) if info.cluster_ips else ""
    if info.kind is ServiceKind.EXTERNAL_NAME:
        return " → " + info.external_name
    return ""


def _trigger_time(obj: Object) -> float | None:
    annotations = (obj.get("metadata") or {}).get("annotations") or {}
    return parse_timestamp(annotations.get(TRIGGER_TIME_ANNOTATION))


def _name(obj: Object) -> str:
    return str((obj.get("metadata") or {}).get("name") or "")


def _version(obj: Object) -> str:
    return str((obj.get("metadata") or {}).get("resourceVersion") or "")
