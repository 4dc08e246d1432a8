"""Deployment controller wiring: Deployment/ReplicaSet/Pod events → Deployment keys →
ReplicaSet writes and the Deployment's status.

The decisions are pure: ``controllers.rollout`` (sizes per step),
``controllers.revisions`` (hash, revisions, the new ReplicaSet, history) and
``controllers.deploystatus`` (status and conditions). ``sync`` follows Kubernetes'
``syncDeployment``:

1. claim the namespace's ReplicaSets the selector matches (adopt orphans, release
   owned ones that no longer match; ``controllers.owners``);
2. a Deployment being deleted only gets its status;
3. pause/resume sets the Progressing condition; a paused Deployment, or one whose
   ``replicas`` changed, is scaled proportionally (no rollout progress) — a
   paused one also drops history beyond ``revisionHistoryLimit``;
4. otherwise one step of ``RollingUpdate`` or ``Recreate``: find or create the
   ReplicaSet of the current template (``<name>-<hash>``, revision max+1), resize
   ReplicaSets, and once the rollout is complete drop old history; then the
   status, and a look again at the progress deadline.

Each write is optimistic (the cached object's resourceVersion): a 409 means the
cache is behind, and the key is retried. Each write returns the newer object that
the next write of the same sync builds on. Events on the Deployment:
``ScalingReplicaSet`` ("Scaled up replica set X from a to b"), and
``ReplicaSetCreateError``/``SelectingAll`` warnings.
"""

from __future__ import annotations

import copy
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from apimachinery.keys import make_key, object_key
from apimachinery.kinds import DEPLOYMENT, POD, REPLICASET
from client.errors import AlreadyExists, ApiError, NotFound
from client.http import AsyncClient
from controllers.deploystatus import (
    FAILED_RS_CREATE,
    FOUND_NEW_RS,
    NEW_RS_CREATED,
    PROGRESSING,
    calculate_status,
    conditions_of,
    get_condition,
    is_complete,
    new_condition,
    paused_conditions,
    rollout_status,
    same_status,
    set_condition,
)
from controllers.events import Recorder
from controllers.informers import SharedInformers
from controllers.metrics import Metrics
from controllers.objects import (
    Object,
    is_deleting,
    meta,
    name_of,
    namespace_of,
    spec,
    status,
    uid_of,
)
from controllers.ownerlookup import (
    CONTROLLER_INDEX,
    NAMESPACE_INDEX,
    CachedOwners,
    by_controller,
    by_namespace,
)
from controllers.owners import (
    Claim,
    adopt_patch,
    claim,
    controller_ref,
    owner_reference,
    release_patch,
)
from controllers.replicas import selector_of
from controllers.revisions import (
    REVISION,
    annotations_of,
    equal_ignore_hash,
    find_new,
    history_to_delete,
    max_revision,
    new_replica_set,
    new_rs_annotations,
    replica_annotations,
    template_hash,
    template_of,
)
from controllers.rollout import (
    Plan,
    active,
    is_scaling_event,
    new_rs_replicas,
    old_pods_running,
    plan_of,
    proportional_scale,
    recreate_scale_down,
    replicas_annotations_current,
    rolling_step,
    rs_replicas,
)
from controllers.runtime import Controller

log = logging.getLogger(__name__)

# kube-controller-manager's --concurrent-deployment-syncs default.
DEFAULT_WORKERS = 5

KIND = "Deployment"
API_VERSION = "apps/v1"


class DeploymentController(Controller):
    """Rolls every Deployment's template out through its ReplicaSets."""

    name = "deployment"

    def __init__(self, client: AsyncClient, informers: SharedInformers, metrics: Metrics, *,
                 recorder: Recorder, workers: int = DEFAULT_WORKERS,
                 wall: Callable[[], float] = time.time) -> None:
        super().__init__(metrics, workers=workers)
        self.client = client
        self.recorder = recorder
        self._wall = wall
        self.deployments = informers.get(DEPLOYMENT)
        self.replicasets = informers.get(REPLICASET)
        self.pods = informers.get(POD)
        self.owners = CachedOwners(KIND, self.deployments.store)
        informers.index(DEPLOYMENT, NAMESPACE_INDEX, by_namespace)
        for kind in (POD, REPLICASET):
            informers.index(kind, NAMESPACE_INDEX, by_namespace)
            informers.index(kind, CONTROLLER_INDEX, by_controller)
        self.deployments.add_handler(self._queue_obj, self._deployment_updated, self._queue_obj)
        self.replicasets.add_handler(self._rs_added, self._rs_updated, self._rs_deleted)
        self.pods.add_handler(None, None, self._pod_deleted)

    # -- handlers: objects → Deployment keys -----------------------------------------------

    def _queue_obj(self, obj: Object) -> None:
        self.queue.add(object_key(obj))

    def _deployment_updated(self, old: Object, new: Object) -> None:
        self.queue.add(object_key(new))

    def _rs_added(self, rs: Object) -> None:
        if is_deleting(rs):
            self._rs_deleted(rs)
            return
        owner, adopters = self.owners.for_added(rs)
        for key in ([owner] if owner is not None else adopters):
            self.queue.add(key)

    def _rs_updated(self, old: Object, new: Object) -> None:
        if old is new:
            return  # a resync: the Deployments' own resync covers it
        for key in self.owners.for_updated(old, new):
            self.queue.add(key)

    def _rs_deleted(self, rs: Object) -> None:
        key = self.owners.key(rs, controller_ref(rs))
        if key is not None:
            self.queue.add(key)

    def _pod_deleted(self, pod: Object) -> None:
        """A Recreate waits for the old pods to be gone: the last one's deletion
        changes no ReplicaSet, so it must wake the Deployment itself."""
        ref = controller_ref(pod)
        if ref is None or ref.get("kind") != "ReplicaSet":
            return
        rs = self.replicasets.store.get(make_key(namespace_of(pod), str(ref.get("name") or "")))
        if rs is None:
            return
        key = self.owners.key(rs, controller_ref(rs))
        d = self.deployments.store.get(key) if key is not None else None
        if key is not None and d is not None and plan_of(d).recreate:
            self.queue.add(key)

    # -- writes ----------------------------------------------------------------------------

    def _event(self, d: Object, type_: str, reason: str, message: str) -> None:
        self.recorder.record(d, kind=KIND, api_version=API_VERSION, type_=type_, reason=reason,
                             message=message)

    async def _write_status(self, d: Object, new_status: Mapping[str, Any]) -> Object:
        body = copy.deepcopy(dict(d))
        body["status"] = dict(new_status)
        updated = await self.client.replace(DEPLOYMENT, body, namespace_of(d),
                                            subresource="status")
        self.metrics.wrote(self.name, "update", "deployments/status")
        return updated

    async def _set_revision(self, d: Object, revision: str | None) -> Object:
        """The Deployment's revision annotation follows its new ReplicaSet's."""
        if not revision or annotations_of(d).get(REVISION) == revision:
            return d
        patch = {"metadata": {"annotations": {REVISION: revision},
                              "resourceVersion": str(meta(d).get("resourceVersion") or "")}}
        updated = await self.client.patch(DEPLOYMENT, name_of(d), patch,
                                          namespace=namespace_of(d))
        self.metrics.wrote(self.name, "patch", "deployments")
        return updated

    async def _scale_rs(self, d: Object, plan: Plan, rs: Object, replicas: int) -> Object:
        """Size ``rs`` and stamp it with the Deployment's desired/max replicas
        (``scaleReplicaSet``); nothing is written when both are current."""
        before = rs_replicas(rs)
        if before == replicas and replicas_annotations_current(rs, plan):
            return rs
        body = copy.deepcopy(dict(rs))
        body.setdefault("spec", {})["replicas"] = replicas
        body["metadata"]["annotations"] = replica_annotations(
            annotations_of(rs), desired=plan.replicas,
            max_replicas=plan.replicas + plan.max_surge)
        updated = await self.client.replace(REPLICASET, body, namespace_of(rs))
        self.metrics.wrote(self.name, "update", "replicasets")
        if before != replicas:
            direction = "up" if replicas > before else "down"
            self._event(d, "Normal", "ScalingReplicaSet",
                        f"Scaled {direction} replica set {name_of(rs)} from {before} "
                        f"to {replicas}")
            log.info("deployment %s: scaled %s replica set %s from %d to %d", object_key(d),
                     direction, name_of(rs), before, replicas)
        return updated

    async def _resize(self, d: Object, plan: Plan, replica_sets: list[Object],
                      sizes: Mapping[str, int]) -> list[Object]:
        """Apply ``sizes``; the ReplicaSets as they are afterwards."""
        out = []
        for rs in replica_sets:
            if name_of(rs) in sizes:
                rs = await self._scale_rs(d, plan, rs, sizes[name_of(rs)])
            out.append(rs)
        return out

    # -- sync ------------------------------------------------------------------------------

    async def sync(self, key: str) -> float | None:
        d: Object | None = self.deployments.store.get(key)
        if d is None:
            return None
        plan = plan_of(d)
        selector = selector_of(d)
        if selector is None:
            await self._unselecting(d)
            return None
        candidates = self.replicasets.store.by_index(NAMESPACE_INDEX, namespace_of(d))
        replica_sets = await self._claim(d, selector.matches, candidates)
        now = self._wall()
        if is_deleting(d):
            await self._sync_status(d, plan, replica_sets, find_new(d, replica_sets), now)
            return None
        conditions = paused_conditions(d, plan, now=now)
        if conditions is not None:
            d = await self._write_status(d, {**status(d), "conditions": conditions})
        if plan.paused or is_scaling_event(plan, replica_sets):
            return await self._scale_only(d, plan, replica_sets, now)
        if plan.recreate:
            return await self._recreate(d, plan, replica_sets, now)
        return await self._rolling(d, plan, replica_sets, now)

    async def _unselecting(self, d: Object) -> None:
        """No usable selector: say so, and mark the spec observed."""
        raw = spec(d).get("selector")
        if isinstance(raw, Mapping) and not raw.get("matchLabels") and \
                not raw.get("matchExpressions"):
            self._event(d, "Warning", "SelectingAll", "This deployment is selecting all pods. "
                        "A non-empty selector is required.")
        generation = int(meta(d).get("generation") or 0)
        if int(status(d).get("observedGeneration") or 0) < generation:
            await self._write_status(d, {**status(d), "observedGeneration": generation})

    async def _claim(self, d: Object, matches: Callable[[Mapping[str, str]], bool],
                     candidates: Sequence[Object]) -> list[Object]:
        """The ReplicaSets ``d`` owns after adopting and releasing."""
        owned: list[Object] = []
        for rs in candidates:
            decision = claim(d, matches, rs)
            if decision is Claim.OWNED:
                owned.append(rs)
            elif decision is Claim.ADOPT:
                ref = owner_reference(d, kind=KIND, api_version=API_VERSION)
                try:
                    adopted = await self.client.patch(REPLICASET, name_of(rs),
                                                      adopt_patch(rs, ref),
                                                      namespace=namespace_of(rs))
                except NotFound:
                    continue
                self.metrics.wrote(self.name, "patch", "replicasets")
                log.info("deployment %s: adopted replica set %s", object_key(d), name_of(rs))
                owned.append(adopted)
            elif decision is Claim.RELEASE:
                try:
                    await self.client.patch(REPLICASET, name_of(rs),
                                            release_patch(rs, uid_of(d)),
                                            namespace=namespace_of(rs))
                except NotFound:
                    continue
                self.metrics.wrote(self.name, "patch", "replicasets")
                log.info("deployment %s: released replica set %s", object_key(d), name_of(rs))
        return owned

    async def _new_and_old(self, d: Object, plan: Plan, replica_sets: list[Object], *,
                           create: bool, now: float
                           ) -> tuple[Object, Object | None, list[Object]]:
        """The Deployment (revision synced), its new ReplicaSet (created if ``create``)
        and the old ones (``getAllReplicaSetsAndSyncRevision``)."""
        new = find_new(d, replica_sets)
        old = [rs for rs in replica_sets if rs is not new]
        revision = max_revision(old) + 1
        max_replicas = plan.replicas + plan.max_surge
        if new is not None:
            wanted = new_rs_annotations(d, annotations_of(new), revision=revision, exists=True,
                                        desired=plan.replicas, max_replicas=max_replicas)
            min_ready = int(spec(new).get("minReadySeconds") or 0)
            if wanted != annotations_of(new) or min_ready != plan.min_ready_seconds:
                body = copy.deepcopy(dict(new))
                body["metadata"]["annotations"] = wanted
                body["spec"]["minReadySeconds"] = plan.min_ready_seconds
                new = await self.client.replace(REPLICASET, body, namespace_of(new))
                self.metrics.wrote(self.name, "update", "replicasets")
            d = await self._set_revision(d, annotations_of(new).get(REVISION))
            if plan.progress_deadline is not None and \
                    get_condition(conditions_of(status(d)), PROGRESSING) is None:
                conditions = set_condition(conditions_of(status(d)), new_condition(
                    PROGRESSING, "True", FOUND_NEW_RS,
                    f'Found new replica set "{name_of(new)}"', now))
                d = await self._write_status(d, {**status(d), "conditions": conditions})
            return d, new, old
        if not create:
            return d, None, old
        new, created = await self._create_new(d, plan, old, revision, now)
        d = await self._set_revision(d, annotations_of(new).get(REVISION))
        if created and plan.progress_deadline is not None:
            conditions = set_condition(conditions_of(status(d)), new_condition(
                PROGRESSING, "True", NEW_RS_CREATED,
                f'Created new replica set "{name_of(new)}"', now))
            d = await self._write_status(d, {**status(d), "conditions": conditions})
        return d, new, old

    async def _create_new(self, d: Object, plan: Plan, old: list[Object], revision: int,
                          now: float) -> tuple[Object, bool]:
        """Create the ReplicaSet of the current template: (it, created by us now). A
        name taken by another template raises ``status.collisionCount`` and retries."""
        collisions = status(d).get("collisionCount")
        pod_hash = template_hash(template_of(d), collisions if isinstance(collisions, int)
                                 else None)
        annotations = new_rs_annotations(d, {}, revision=revision, exists=False,
                                         desired=plan.replicas,
                                         max_replicas=plan.replicas + plan.max_surge)
        ref = owner_reference(d, kind=KIND, api_version=API_VERSION)
        body = new_replica_set(d, pod_hash=pod_hash, replicas=0, annotations=annotations,
                               owner_ref=ref)
        replicas = new_rs_replicas(plan, [*old, body], body)
        body["spec"]["replicas"] = replicas
        namespace = namespace_of(d)
        try:
            created = await self.client.create(REPLICASET, body, namespace)
        except AlreadyExists:
            existing = await self.client.get(REPLICASET, body["metadata"]["name"], namespace)
            ours = controller_ref(existing)
            if ours is not None and ours.get("uid") == uid_of(d) and \
                    equal_ignore_hash(template_of(existing), template_of(d)):
                return existing, False
            count = (collisions if isinstance(collisions, int) else 0) + 1
            log.info("deployment %s: hash collision on replica set %s; collisionCount %d",
                     object_key(d), body["metadata"]["name"], count)
            await self._write_status(d, {**status(d), "collisionCount": count})
            raise
        except ApiError as exc:
            message = f'Failed to create new replica set "{body["metadata"]["name"]}": ' \
                      f"{exc.message}"
            self._event(d, "Warning", FAILED_RS_CREATE, message)
            if plan.progress_deadline is not None:
                conditions = set_condition(conditions_of(status(d)), new_condition(
                    PROGRESSING, "False", FAILED_RS_CREATE, message, now))
                await self._write_status(d, {**status(d), "conditions": conditions})
            raise
        self.metrics.wrote(self.name, "create", "replicasets")
        log.info("deployment %s: created replica set %s (revision %d, %d replicas)",
                 object_key(d), name_of(created), revision, replicas)
        if replicas > 0:
            self._event(d, "Normal", "ScalingReplicaSet",
                        f"Scaled up replica set {name_of(created)} from 0 to {replicas}")
        return created, True

    async def _cleanup(self, d: Object, plan: Plan, old: list[Object]) -> None:
        """Delete old ReplicaSets beyond ``revisionHistoryLimit``."""
        for rs in history_to_delete(old, plan.history_limit):
            try:
                await self.client.delete(REPLICASET, name_of(rs), namespace_of(rs))
            except NotFound:
                continue
            self.metrics.wrote(self.name, "delete", "replicasets")
            log.info("deployment %s: deleted old replica set %s (history limit %d)",
                     object_key(d), name_of(rs), plan.history_limit)

    async def _sync_status(self, d: Object, plan: Plan, replica_sets: list[Object],
                           new: Object | None, now: float) -> None:
        """Counts and Available only (``syncDeploymentStatus``)."""
        new_status = calculate_status(d, plan, replica_sets, new, now=now)
        if not same_status(status(d), new_status):
            await self._write_status(d, new_status)

    async def _rollout_status(self, d: Object, plan: Plan, replica_sets: list[Object],
                              new: Object | None, now: float) -> float | None:
        new_status, again = rollout_status(d, plan, replica_sets, new, now=now)
        if not same_status(status(d), new_status):
            await self._write_status(d, new_status)
        return again

    async def _scale_only(self, d: Object, plan: Plan, replica_sets: list[Object],
                          now: float) -> float | None:
        """Paused, or ``replicas`` changed: resize proportionally, no rollout step."""
        d, new, old = await self._new_and_old(d, plan, replica_sets, create=False, now=now)
        sizes = proportional_scale(plan, new, old,
                                   status_replicas=int(status(d).get("replicas") or 0))
        everyone = [*old, *([new] if new is not None else [])]
        targets = {name_of(rs): sizes.get(name_of(rs), rs_replicas(rs))
                   for rs in everyone if name_of(rs) in sizes or rs in active(everyone)}
        everyone = await self._resize(d, plan, everyone, targets)
        new = next((rs for rs in everyone if new is not None and name_of(rs) == name_of(new)),
                   None)
        old = [rs for rs in everyone if rs is not new]
        if plan.paused:
            await self._cleanup(d, plan, old)
        await self._sync_status(d, plan, everyone, new, now)
        return None

    async def _rolling(self, d: Object, plan: Plan, replica_sets: list[Object],
                       now: float) -> float | None:
        d, new, old = await self._new_and_old(d, plan, replica_sets, create=True, now=now)
        assert new is not None  # created when missing
        sizes = rolling_step(plan, new, old)
        everyone = await self._resize(d, plan, [*old, new], sizes)
        new = everyone[-1]
        if not sizes and is_complete(plan, int(meta(d).get("generation") or 0), status(d)):
            await self._cleanup(d, plan, everyone[:-1])
        return await self._rollout_status(d, plan, everyone, new, now)

    async def _recreate(self, d: Object, plan: Plan, replica_sets: list[Object],
                        now: float) -> float | None:
        d, new, old = await self._new_and_old(d, plan, replica_sets, create=False, now=now)
        everyone = [*old, *([new] if new is not None else [])]
        sizes = recreate_scale_down(old)
        if sizes:
            everyone = await self._resize(d, plan, everyone, sizes)
            return await self._rollout_status(d, plan, everyone, new, now)
        old_pods = [p for rs in old for p in self.pods.store.by_index(CONTROLLER_INDEX,
                                                                      uid_of(rs))]
        if old_pods_running(old, old_pods):
            return await self._rollout_status(d, plan, everyone, new, now)
        if new is None:
            d, new, old = await self._new_and_old(d, plan, replica_sets, create=True, now=now)
            assert new is not None
        if rs_replicas(new) != plan.replicas:
            new = await self._scale_rs(d, plan, new, plan.replicas)
        everyone = [*old, new]
        if is_complete(plan, int(meta(d).get("generation") or 0), status(d)):
            await self._cleanup(d, plan, old)
        return await self._rollout_status(d, plan, everyone, new, now)
