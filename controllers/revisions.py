"""A Deployment's revisions, pure: template hashes, which ReplicaSet is the new one,
revision annotations, the new ReplicaSet's body, and which old ones history drops.

A Deployment's pod template is rolled out through one ReplicaSet per template,
named ``<deployment>-<hash>``, whose selector, labels and template carry
``pod-template-hash: <hash>`` so the ReplicaSets' pods never overlap. The hash is
FNV-1a (32 bit) of the template's canonical JSON, with ``status.collisionCount``
mixed in so a name taken by a ReplicaSet of another template can be stepped
past; its decimal digits are spelled in Kubernetes' "safe" alphabet (no vowels,
no confusable digits), as ``rand.SafeEncodeString``. It is stable across
processes, not Kubernetes' exact value (which hashes Go's struct dump).

Revisions are ``deployment.kubernetes.io/revision`` annotations: the new
ReplicaSet gets one more than the highest old one, so rolling back to an old
template (``kubectl rollout undo`` copies it back into the Deployment) gives its
ReplicaSet a new revision; the ones it had are kept in
``deployment.kubernetes.io/revision-history``.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from controllers.objects import (
    Object,
    is_deleting,
    meta,
    name_of,
    namespace_of,
    parse_time,
    spec,
    status,
)

HASH_LABEL = "pod-template-hash"
REVISION = "deployment.kubernetes.io/revision"
REVISION_HISTORY = "deployment.kubernetes.io/revision-history"
DESIRED_REPLICAS = "deployment.kubernetes.io/desired-replicas"
MAX_REPLICAS = "deployment.kubernetes.io/max-replicas"
CHANGE_CAUSE = "kubernetes.io/change-cause"
LAST_APPLIED = "kubectl.kubernetes.io/last-applied-configuration"
ROLLBACK_TO = "deprecated.deployment.rollback.to"

# The Deployment's annotations that are not copied to its ReplicaSets (Kubernetes'
# skipCopyAnnotation): each ReplicaSet keeps its own.
NOT_COPIED = frozenset({LAST_APPLIED, REVISION, REVISION_HISTORY, DESIRED_REPLICAS,
                        MAX_REPLICAS, ROLLBACK_TO})

_SAFE_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"
_FNV_OFFSET = 0x811C9DC5
_FNV_PRIME = 0x01000193


def _fnv1a(data: bytes) -> int:
    h = _FNV_OFFSET
    for byte in data:
        h = ((h ^ byte) * _FNV_PRIME) & 0xFFFFFFFF
    return h


def semantic(value: Any) -> Any:
    """``value`` with every empty field dropped (null, {}, [], ""), as Go's typed
    objects make them indistinguishable from absent: kubectl decodes a ReplicaSet's
    template and sends it back with ``resources: {}`` and ``creationTimestamp:
    null`` added, and that must still be the same template. ``0`` and ``false``
    stay: for pointer fields (``runAsUser: 0``) they differ from absent."""
    if isinstance(value, Mapping):
        out = {k: semantic(v) for k, v in value.items()}
        return {k: v for k, v in out.items()
                if v is not None and not (isinstance(v, (dict, list, str)) and not v)}
    if isinstance(value, list):
        return [semantic(v) for v in value]
    return value


def template_hash(template: Mapping[str, Any], collision_count: int | None) -> str:
    """The ``pod-template-hash`` of ``template`` (stable; changes with the count; the
    same for templates that differ only in empty fields)."""
    data = json.dumps(semantic(template), sort_keys=True, separators=(",", ":")).encode()
    if collision_count is not None:
        data += int(collision_count).to_bytes(4, "little", signed=False)
    return "".join(_SAFE_ALPHABET[ord(c) % len(_SAFE_ALPHABET)] for c in str(_fnv1a(data)))


def template_of(obj: Object) -> Mapping[str, Any]:
    t = spec(obj).get("template")
    return t if isinstance(t, Mapping) else {}


def without_hash(template: Mapping[str, Any]) -> dict[str, Any]:
    """``template`` without its ``pod-template-hash`` label (labels dropped if empty)."""
    out = copy.deepcopy(dict(template))
    tmeta = out.get("metadata")
    if isinstance(tmeta, dict) and isinstance(tmeta.get("labels"), dict):
        tmeta["labels"].pop(HASH_LABEL, None)
        if not tmeta["labels"]:
            del tmeta["labels"]
        if not tmeta:
            del out["metadata"]
    return out


def equal_ignore_hash(a: Mapping[str, Any], b: Mapping[str, Any]) -> bool:
    """Kubernetes' ``EqualIgnoreHash``: the templates differ at most in the hash label
    (and in empty fields, see ``semantic``)."""
    return bool(semantic(without_hash(a)) == semantic(without_hash(b)))


def revision_of(rs: Object) -> int:
    annotations = meta(rs).get("annotations")
    raw = annotations.get(REVISION) if isinstance(annotations, Mapping) else None
    try:
        return int(raw) if raw is not None else 0
    except (TypeError, ValueError):
        return 0


def max_revision(replica_sets: Iterable[Object]) -> int:
    return max((revision_of(rs) for rs in replica_sets), default=0)


def by_creation(replica_sets: Iterable[Object]) -> list[Object]:
    """Oldest first; the name breaks ties (``ReplicaSetsByCreationTimestamp``)."""
    return sorted(replica_sets, key=lambda rs: (parse_time(meta(rs).get("creationTimestamp"))
                                                or 0.0, name_of(rs)))


def find_new(deployment: Object, replica_sets: Sequence[Object]) -> Object | None:
    """The ReplicaSet of the Deployment's current template (the oldest, should there
    be several)."""
    want = template_of(deployment)
    for rs in by_creation(replica_sets):
        if equal_ignore_hash(template_of(rs), want):
            return rs
    return None


def annotations_of(obj: Object) -> dict[str, str]:
    annotations = meta(obj).get("annotations")
    return dict(annotations) if isinstance(annotations, Mapping) else {}


def replica_annotations(annotations: Mapping[str, str], *, desired: int,
                        max_replicas: int) -> dict[str, str]:
    """``annotations`` with the desired/max replicas annotations set."""
    return {**annotations, DESIRED_REPLICAS: str(desired), MAX_REPLICAS: str(max_replicas)}


def new_rs_annotations(deployment: Object, rs_annotations: Mapping[str, str], *,
                       revision: int, exists: bool, desired: int,
                       max_replicas: int) -> dict[str, str]:
    """The new ReplicaSet's annotations (``SetNewReplicaSetAnnotations``): the
    Deployment's (but not ``NOT_COPIED``), its revision raised to ``revision`` (the
    old one added to the history), and, for one being created, desired/max replicas."""
    out = dict(rs_annotations)
    for key, value in annotations_of(deployment).items():
        if key not in NOT_COPIED:
            out[key] = value
    old_raw = out.get(REVISION)
    try:
        old = int(old_raw) if old_raw is not None else 0
    except ValueError:
        return out
    if old < revision:
        out[REVISION] = str(revision)
        if old_raw is not None:
            history = out.get(REVISION_HISTORY)
            out[REVISION_HISTORY] = f"{history},{old_raw}" if history else old_raw
    if not exists:
        out = replica_annotations(out, desired=desired, max_replicas=max_replicas)
    return out


def new_replica_set(deployment: Object, *, pod_hash: str, replicas: int,
                    annotations: Mapping[str, str],
                    owner_ref: Mapping[str, Any]) -> dict[str, Any]:
    """The body of the Deployment's new ReplicaSet ``<deployment>-<hash>``."""
    template = copy.deepcopy(dict(template_of(deployment)))
    tmeta = template.setdefault("metadata", {})
    tmeta["labels"] = {**(tmeta.get("labels") or {}), HASH_LABEL: pod_hash}
    selector = copy.deepcopy(dict(spec(deployment).get("selector") or {}))
    selector["matchLabels"] = {**(selector.get("matchLabels") or {}), HASH_LABEL: pod_hash}
    rs_spec: dict[str, Any] = {"replicas": replicas, "selector": selector, "template": template}
    min_ready = spec(deployment).get("minReadySeconds")
    if isinstance(min_ready, int) and min_ready > 0:
        rs_spec["minReadySeconds"] = min_ready
    return {
        "apiVersion": "apps/v1", "kind": "ReplicaSet",
        "metadata": {"name": f"{name_of(deployment)}-{pod_hash}",
                     "namespace": namespace_of(deployment),
                     "labels": dict(tmeta["labels"]),
                     "annotations": dict(annotations),
                     "ownerReferences": [dict(owner_ref)]},
        "spec": rs_spec,
    }


def history_to_delete(old: Sequence[Object], limit: int) -> list[Object]:
    """Old ReplicaSets beyond ``revisionHistoryLimit`` that may go: lowest revisions
    first, only those with no pods left and no spec change unobserved
    (``cleanupDeployment``)."""
    alive = [rs for rs in old if not is_deleting(rs)]
    surplus = len(alive) - limit
    if surplus <= 0:
        return []
    ranked = sorted(alive, key=lambda rs: (revision_of(rs), parse_time(
        meta(rs).get("creationTimestamp")) or 0.0, name_of(rs)))
    out = []
    for rs in ranked[:surplus]:
        replicas = spec(rs).get("replicas")
        if int(status(rs).get("replicas") or 0) != 0 or (replicas is None or replicas != 0):
            continue
        if int(meta(rs).get("generation") or 0) > int(status(rs).get("observedGeneration") or 0):
            continue
        out.append(rs)
    return out
