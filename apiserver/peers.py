"""The ``kubernetes`` Service's endpoints from the API servers' identity Leases (pure).

Several API servers share one database, and each one's address must be in the
``default/kubernetes`` Service's endpoints, and a dead one's must leave. As
kube-apiserver's lease endpoint reconciler (``--endpoint-reconciler-type=lease``,
its default), every server keeps a short-lived record of itself and every server
writes the endpoints as the set of live records, so all of them compute the same
object and stop writing once it is stored; a killed server's record expires, a
stopped one deletes its own.

kube-apiserver keeps those records as TTL keys in etcd (``/masterleases/<ip>``, 15 s,
renewed every 10 s) beside an identity Lease per server in ``kube-system``
(``apiserver-<hash>``, label ``apiserver.kubernetes.io/identity=kube-apiserver``,
one hour). Our database has no TTL keys, so the identity Lease is the record: it
carries the advertise address and port in ``miniplane.io/`` annotations and a short
``leaseDurationSeconds``; expiry is judged by the reader, from ``renewTime``.

``State`` (``apiserver/app.py``) does the I/O: renew its own Lease, list the
Leases and the managed slices, write what ``plan`` says, and the v1 Endpoints
object what ``plan_endpoints`` says.
"""

from __future__ import annotations

import hashlib
import ipaddress
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from apimachinery import names
from apimachinery.endpoints import repack_subsets
from apimachinery.timestamps import format_micro_time, parse_micro_time
from apiserver.services import KUBERNETES_SLICE_MANAGER, kubernetes_endpoint_slice

LEASE_NAMESPACE = "kube-system"
IDENTITY_LABEL = "apiserver.kubernetes.io/identity"
IDENTITY_VALUE = "kube-apiserver"
HOSTNAME_LABEL = "kubernetes.io/hostname"
ADDRESS_ANNOTATION = "miniplane.io/advertise-address"
PORT_ANNOTATION = "miniplane.io/advertise-port"

SLICE_NAMESPACE = "default"
SERVICE_NAME = "kubernetes"
SERVICE_NAME_LABEL = "kubernetes.io/service-name"
MANAGED_BY_LABEL = "endpointslice.kubernetes.io/managed-by"
# the fields of a slice this reconcile owns; anything else on it is left as found
SLICE_FIELDS = ("addressType", "endpoints", "ports")


@dataclass(frozen=True, order=True)
class Peer:
    """One API server as its Lease records it: where pods reach it."""

    address: str
    port: int

    @property
    def family(self) -> str:
        return "IPv6" if ipaddress.ip_address(self.address).version == 6 else "IPv4"


@dataclass(frozen=True)
class Identity:
    """Who this server is: stable across its restarts (so a restart takes its Lease
    back instead of leaving one behind), distinct between servers (no two serve one
    address and port on one host)."""

    hostname: str
    address: str
    port: int

    @property
    def lease_name(self) -> str:
        digest = hashlib.sha256(f"{self.hostname}\n{self.address}\n{self.port}".encode())
        return f"apiserver-{digest.hexdigest()[:26]}"


def lease_body(identity: Identity, holder: str, duration: float, now: datetime,
               current: Mapping[str, Any] | None) -> dict[str, Any]:
    """The Lease to write now: ``current`` (None: create one) renewed by ``holder``
    (``<lease name>_<uuid>``, new each process start, as kube-apiserver's)."""
    body: dict[str, Any] = dict(current) if current is not None else {
        "apiVersion": "coordination.k8s.io/v1", "kind": "Lease"}
    meta = dict(body.get("metadata") or {})
    meta.update(name=identity.lease_name, namespace=LEASE_NAMESPACE)
    labels = {**(meta.get("labels") or {}), IDENTITY_LABEL: IDENTITY_VALUE}
    if not names.is_valid_label_value(identity.hostname):  # a label value only if it is one
        labels[HOSTNAME_LABEL] = identity.hostname
    meta["labels"] = labels
    meta["annotations"] = {**(meta.get("annotations") or {}),
                           ADDRESS_ANNOTATION: identity.address,
                           PORT_ANNOTATION: str(identity.port)}
    body["metadata"] = meta
    spec = dict(body.get("spec") or {})
    stamp = format_micro_time(now)
    if spec.get("holderIdentity") != holder:
        spec["acquireTime"] = stamp
    spec.update(holderIdentity=holder, leaseDurationSeconds=max(1, math.ceil(duration)),
                renewTime=stamp)
    body["spec"] = spec
    return body


def is_identity_lease(lease: Mapping[str, Any]) -> bool:
    labels = (lease.get("metadata") or {}).get("labels") or {}
    return isinstance(labels, dict) and labels.get(IDENTITY_LABEL) == IDENTITY_VALUE


def expires_at(lease: Mapping[str, Any]) -> datetime | None:
    """``renewTime`` + ``leaseDurationSeconds``; None when either is missing or malformed
    (such a Lease counts as expired)."""
    spec = lease.get("spec") or {}
    renewed = parse_micro_time(spec.get("renewTime"))
    duration = spec.get("leaseDurationSeconds")
    if renewed is None or not isinstance(duration, int) or isinstance(duration, bool):
        return None
    return renewed + timedelta(seconds=duration)


def peer_of(lease: Mapping[str, Any]) -> Peer | None:
    """The address and port a Lease records; None when they are missing or malformed."""
    notes = (lease.get("metadata") or {}).get("annotations") or {}
    try:
        address = str(ipaddress.ip_address(notes.get(ADDRESS_ANNOTATION, "")))
        port = int(notes.get(PORT_ANNOTATION, ""))
    except (TypeError, ValueError):
        return None
    return Peer(address, port) if 0 < port < 65536 else None


def live_peers(leases: Iterable[Mapping[str, Any]], now: datetime) -> list[Peer]:
    """The servers pods can reach: identity Leases not expired at ``now``, recording a
    well-formed address that is not loopback (no pod could reach that, and Kubernetes
    refuses it in endpoints). Sorted, each once."""
    peers: set[Peer] = set()
    for lease in leases:
        until = expires_at(lease)
        peer = peer_of(lease)
        if (is_identity_lease(lease) and until is not None and until > now
                and peer is not None and not ipaddress.ip_address(peer.address).is_loopback):
            peers.add(peer)
    return sorted(peers, key=lambda p: (p.family, p.port, ipaddress.ip_address(p.address)))


def garbage(leases: Iterable[Mapping[str, Any]], now: datetime) -> list[Mapping[str, Any]]:
    """Identity Leases not renewed for twice their duration: their server is gone (a
    live one renews every interval, well inside one duration). Deleting them is only
    tidying; they stopped counting at expiry."""
    out = []
    for lease in leases:
        if not is_identity_lease(lease):
            continue
        until = expires_at(lease)
        duration = (lease.get("spec") or {}).get("leaseDurationSeconds")
        if until is None or (isinstance(duration, int)
                             and until + timedelta(seconds=duration) <= now):
            out.append(lease)
    return out


def desired_slices(peers: Iterable[Peer]) -> list[dict[str, Any]]:
    """One EndpointSlice per (address family, port), as a slice holds one of each.

    Servers normally share a port (kube-apiserver requires it); a local cluster's
    servers share an address and differ in port. The first group (IPv4 before IPv6,
    lowest port) is ``kubernetes``, the slice name clients expect; any other is
    ``kubernetes-<family>-<port>``.
    """
    groups: dict[tuple[str, int], list[str]] = {}
    for peer in peers:
        groups.setdefault((peer.family, peer.port), []).append(peer.address)
    out = []
    for i, ((family, port), addresses) in enumerate(sorted(groups.items())):
        name = SERVICE_NAME if i == 0 else f"{SERVICE_NAME}-{family.lower()}-{port}"
        out.append(kubernetes_endpoint_slice(addresses, port, name=name))
    return out


def is_managed_slice(obj: Mapping[str, Any]) -> bool:
    """A slice of the ``kubernetes`` Service this reconcile keeps."""
    labels = (obj.get("metadata") or {}).get("labels") or {}
    return (isinstance(labels, dict) and labels.get(SERVICE_NAME_LABEL) == SERVICE_NAME
            and labels.get(MANAGED_BY_LABEL) == KUBERNETES_SLICE_MANAGER)


@dataclass(frozen=True)
class Plan:
    """What to write so the stored slices are the desired ones; empty when they are."""

    create: list[dict[str, Any]]
    update: list[dict[str, Any]]  # whole objects, with the stored resourceVersion
    delete: list[str]  # names

    def __bool__(self) -> bool:
        return bool(self.create or self.update or self.delete)


def plan(desired: list[dict[str, Any]], stored: Iterable[Mapping[str, Any]]) -> Plan:
    """Stored ``kubernetes`` slices (managed ones, and one of the name ``kubernetes``
    whatever its labels) → the writes that make them ``desired``.

    With nothing desired, nothing is deleted: as kube-apiserver refuses to erase every
    endpoint, the last server to stop (or a server on a loopback address) leaves the
    slices for the next one to correct.
    """
    by_name = {str((s.get("metadata") or {}).get("name")): s for s in stored}
    create, update = [], []
    for want in desired:
        have = by_name.get(want["metadata"]["name"])
        if have is None:
            create.append(want)
            continue
        labels = (have.get("metadata") or {}).get("labels") or {}
        if all(have.get(k) == want[k] for k in SLICE_FIELDS) and \
                all(labels.get(k) == v for k, v in want["metadata"]["labels"].items()):
            continue
        body = {**have, **{k: want[k] for k in SLICE_FIELDS}}
        body["metadata"] = {**(have.get("metadata") or {}),
                            "labels": {**labels, **want["metadata"]["labels"]}}
        update.append(body)
    wanted = {w["metadata"]["name"] for w in desired}
    delete = sorted(name for name, s in by_name.items()
                    if desired and name not in wanted and is_managed_slice(s))
    return Plan(create, update, delete)


# -- the v1 Endpoints object (kube-apiserver writes both it and the slices) ---------------

SKIP_MIRROR_LABEL = "endpointslice.kubernetes.io/skip-mirror"


def desired_endpoints_subsets(peers: Iterable[Peer]) -> list[dict[str, Any]]:
    """The ``kubernetes`` Endpoints' subsets: every live server's address on its port
    (named ``https``), packed as every Endpoints writer packs them."""
    return repack_subsets(({"ip": p.address}, True,
                           [{"name": "https", "port": p.port, "protocol": "TCP"}])
                          for p in peers)


def plan_endpoints(peers: Iterable[Peer], stored: Mapping[str, Any] | None
                   ) -> dict[str, Any] | None:
    """The ``default/kubernetes`` Endpoints to write (a create when ``stored`` is None,
    else the stored object updated, resourceVersion kept), or None when it already
    names ``peers``, or when there are none (as with the slices, the last server
    never erases every endpoint). Its label ``endpointslice.kubernetes.io/skip-mirror``
    says no EndpointSlice is to be mirrored from it: the slices are written beside it."""
    subsets = desired_endpoints_subsets(peers)
    if not subsets:
        return None
    if stored is None:
        return {"apiVersion": "v1", "kind": "Endpoints",
                "metadata": {"name": SERVICE_NAME, "namespace": SLICE_NAMESPACE,
                             "labels": {SKIP_MIRROR_LABEL: "true"}},
                "subsets": subsets}
    labels = (stored.get("metadata") or {}).get("labels") or {}
    if stored.get("subsets") == subsets and labels.get(SKIP_MIRROR_LABEL) == "true":
        return None
    return {**stored, "subsets": subsets,
            "metadata": {**(stored.get("metadata") or {}),
                         "labels": {**labels, SKIP_MIRROR_LABEL: "true"}}}
