"""ReplicaSet controller wiring: ReplicaSet/Pod events → ReplicaSet keys → pod writes.

The decisions are in ``controllers.replicas`` (which pods count, which go first,
the status) and ``controllers.owners`` (adoption and release); this module finds
their inputs in the caches and sends the writes, as Kubernetes' controller does:

- a Pod event queues its controlling ReplicaSet, or, for an orphan, every
  ReplicaSet whose selector matches it (one of them may adopt it);
- ``sync`` claims the active pods of the namespace (adopting orphans that match,
  releasing owned ones that no longer do), then, when the expectations of the
  previous sync have been observed (``controllers.expectations``), creates the
  missing pods in slow-start batches or deletes the surplus in Kubernetes'
  order, and writes the status. A ReplicaSet being deleted is left alone apart
  from its status (the garbage collector takes its pods);
- a sync that saw ready pods not yet available for ``minReadySeconds`` looks
  again when the first of them becomes available.

Events on the ReplicaSet: ``SuccessfulCreate``/``FailedCreate`` and
``SuccessfulDelete``/``FailedDelete`` with Kubernetes' messages.
"""

from __future__ import annotations

import asyncio
import copy
import logging
import time
from collections.abc import Callable, Mapping, Sequence

from apimachinery.keys import object_key
from apimachinery.kinds import POD, REPLICASET
from client.errors import ApiError, NotFound, namespace_terminating
from client.http import AsyncClient
from controllers.events import Recorder
from controllers.expectations import Expectations
from controllers.informers import SharedInformers
from controllers.metrics import Metrics
from controllers.objects import Object, is_deleting, labels_of, name_of, namespace_of, uid_of
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
    controller_uid,
    owner_reference,
    release_patch,
)
from controllers.replicas import (
    BURST_REPLICAS,
    desired_replicas,
    is_active,
    min_ready_seconds,
    pod_from_template,
    pods_to_delete,
    replica_set_status,
    seconds_until_available,
    selector_of,
    slow_start_batches,
    status_changed,
    template_labels,
)
from controllers.runtime import Controller

log = logging.getLogger(__name__)

# kube-controller-manager's --concurrent-replicaset-syncs default.
DEFAULT_WORKERS = 5

RS_KIND = "ReplicaSet"
RS_API_VERSION = "apps/v1"


class ReplicaSetController(Controller):
    """Keeps every ReplicaSet's ``spec.replicas`` active pods of its template."""

    name = "replicaset"

    def __init__(self, client: AsyncClient, informers: SharedInformers, metrics: Metrics, *,
                 recorder: Recorder, workers: int = DEFAULT_WORKERS,
                 wall: Callable[[], float] = time.time,
                 monotonic: Callable[[], float] = time.monotonic) -> None:
        super().__init__(metrics, workers=workers)
        self.client = client
        self.recorder = recorder
        self._wall = wall
        self.expectations = Expectations(monotonic)
        self.replicasets = informers.get(REPLICASET)
        self.pods = informers.get(POD)
        self.owners = CachedOwners(RS_KIND, self.replicasets.store)
        for kind in (POD, REPLICASET):
            informers.index(kind, NAMESPACE_INDEX, by_namespace)
            informers.index(kind, CONTROLLER_INDEX, by_controller)
        self.replicasets.add_handler(self._rs_added, self._rs_updated, self._rs_deleted)
        self.pods.add_handler(self._pod_added, self._pod_updated, self._pod_deleted)

    # -- handlers: objects → ReplicaSet keys ----------------------------------------------

    def _rs_added(self, rs: Object) -> None:
        self.queue.add(object_key(rs))

    def _rs_updated(self, old: Object, new: Object) -> None:
        self.queue.add(object_key(new))

    def _rs_deleted(self, rs: Object) -> None:
        key = object_key(rs)
        self.expectations.forget(key)
        self.queue.add(key)

    def _pod_added(self, pod: Object) -> None:
        if is_deleting(pod):  # seen first already terminating (after a restart)
            self._pod_deleted(pod)
            return
        owner, adopters = self.owners.for_added(pod)
        if owner is not None:
            self.expectations.creation_observed(owner)
            self.queue.add(owner)
        for key in adopters:
            self.queue.add(key)

    def _pod_updated(self, old: Object, new: Object) -> None:
        if old is new:
            return  # a resync: the ReplicaSets' own resync covers it
        relabelled = labels_of(old) != labels_of(new)
        if is_deleting(new):
            self._pod_deleted(new)
            if relabelled:
                self._pod_deleted(old)
            return
        for key in self.owners.for_updated(old, new):
            self.queue.add(key)

    def _pod_deleted(self, pod: Object) -> None:
        key = self.owners.key(pod, controller_ref(pod))
        if key is not None:
            self.expectations.deletion_observed(key, object_key(pod))
            self.queue.add(key)

    # -- sync ----------------------------------------------------------------------------

    async def sync(self, key: str) -> float | None:
        rs = self.replicasets.store.get(key)
        if rs is None:
            self.expectations.forget(key)
            return None
        selector = selector_of(rs)
        if selector is None:
            log.info("replicaset %s: no usable selector; nothing to do", key)
            return None
        if not selector.matches(template_labels(rs)):
            # its own pods would never count: creating more would never end (the API
            # server's validation refuses such a ReplicaSet; this is the last line)
            log.warning("replicaset %s: selector does not match template labels; "
                        "not creating pods", key)
            return None
        needs_sync = self.expectations.satisfied(key)
        candidates = [p for p in self.pods.store.by_index(NAMESPACE_INDEX, namespace_of(rs))
                      if is_active(p)]
        pods = await self._claim(rs, selector.matches, candidates)
        error: ApiError | None = None
        if needs_sync and not is_deleting(rs):
            error = await self._manage(key, rs, pods)
        now = self._wall()
        new_status = replica_set_status(rs, pods, error=error.message if error else None,
                                        now=now)
        if status_changed(rs, new_status):
            body = copy.deepcopy(dict(rs))
            body["status"] = new_status
            try:
                await self.client.replace(REPLICASET, body, namespace_of(rs),
                                          subresource="status")
            except NotFound:
                return None
            self.metrics.wrote(self.name, "update", "replicasets/status")
        if error is not None:
            raise error
        return seconds_until_available(pods, min_ready_seconds(rs), now)

    async def _claim(self, rs: Object, matches: Callable[[Mapping[str, str]], bool],
                     candidates: Sequence[Object]) -> list[Object]:
        """The pods ``rs`` owns after adopting and releasing (``ClaimPods``)."""
        owned: list[Object] = []
        adoptable: bool | None = None  # asked the API server once, at the first orphan
        for pod in candidates:
            decision = claim(rs, matches, pod)
            if decision is Claim.OWNED:
                owned.append(pod)
            elif decision is Claim.ADOPT:
                if adoptable is None:
                    adoptable = await self._still_adoptable(rs)
                if not adoptable:
                    continue
                ref = owner_reference(rs, kind=RS_KIND, api_version=RS_API_VERSION)
                try:
                    adopted = await self.client.patch(POD, name_of(pod), adopt_patch(pod, ref),
                                                      namespace=namespace_of(pod))
                except NotFound:
                    continue
                self.metrics.wrote(self.name, "patch", "pods")
                log.info("replicaset %s: adopted pod %s", object_key(rs), name_of(pod))
                owned.append(adopted)
            elif decision is Claim.RELEASE:
                try:
                    await self.client.patch(POD, name_of(pod), release_patch(pod, uid_of(rs)),
                                            namespace=namespace_of(pod))
                except NotFound:
                    continue
                self.metrics.wrote(self.name, "patch", "pods")
                log.info("replicaset %s: released pod %s", object_key(rs), name_of(pod))
        return owned

    async def _still_adoptable(self, rs: Object) -> bool:
        """A fresh read: the cached ReplicaSet may already be gone or terminating."""
        try:
            fresh = await self.client.get(REPLICASET, name_of(rs), namespace_of(rs))
        except NotFound:
            return False
        return uid_of(fresh) == uid_of(rs) and not is_deleting(fresh)

    async def _manage(self, key: str, rs: Object, pods: list[Object]) -> ApiError | None:
        """Create or delete pods towards ``spec.replicas``; the first error, if any."""
        diff = len(pods) - desired_replicas(rs)
        if diff < 0:
            return await self._create(key, rs, min(-diff, BURST_REPLICAS))
        if diff > 0:
            return await self._delete(key, rs, pods, min(diff, BURST_REPLICAS))
        return None

    def _event(self, rs: Object, type_: str, reason: str, message: str) -> None:
        self.recorder.record(rs, kind=RS_KIND, api_version=RS_API_VERSION, type_=type_,
                             reason=reason, message=message)

    async def _create(self, key: str, rs: Object, count: int) -> ApiError | None:
        self.expectations.expect(key, creations=count)
        body = pod_from_template(rs, owner_reference(rs, kind=RS_KIND,
                                                     api_version=RS_API_VERSION))
        namespace = namespace_of(rs)
        created = 0
        for batch in slow_start_batches(count):
            results = await asyncio.gather(
                *(self.client.create(POD, body, namespace) for _ in range(batch)),
                return_exceptions=True)
            errors: list[ApiError] = []
            for result in results:
                if namespace_terminating(result):
                    self.expectations.creation_observed(key)
                elif isinstance(result, ApiError):
                    errors.append(result)
                    self._event(rs, "Warning", "FailedCreate", f"Error creating: {result.message}")
                elif isinstance(result, BaseException):
                    raise result
                else:
                    created += 1
                    self.metrics.wrote(self.name, "create", "pods")
                    self._event(rs, "Normal", "SuccessfulCreate",
                                f"Created pod: {name_of(result)}")
            if errors:
                for _ in range(count - created):  # never to be observed
                    self.expectations.creation_observed(key)
                log.warning("replicaset %s: created %d of %d pods: %s", key, created, count,
                            errors[0].message)
                return errors[0]
        log.info("replicaset %s: created %d pods", key, created)
        return None

    async def _delete(self, key: str, rs: Object, pods: list[Object],
                      count: int) -> ApiError | None:
        owner = controller_uid(rs)
        family: list[Object] = list(pods)
        if owner:
            for sibling in self.replicasets.store.by_index(CONTROLLER_INDEX, owner):
                if uid_of(sibling) != uid_of(rs):
                    family += [p for p in self.pods.store.by_index(CONTROLLER_INDEX,
                                                                   uid_of(sibling))
                               if is_active(p)]
        victims = pods_to_delete(pods, count, related=family)
        self.expectations.expect(key, deletions=[object_key(p) for p in victims])
        results = await asyncio.gather(
            *(self.client.delete(POD, name_of(p), namespace_of(p)) for p in victims),
            return_exceptions=True)
        first: ApiError | None = None
        for pod, result in zip(victims, results, strict=True):
            if isinstance(result, ApiError):
                self.expectations.deletion_observed(key, object_key(pod))
                if not isinstance(result, NotFound):
                    first = first or result
                    self._event(rs, "Warning", "FailedDelete", f"Error deleting: {result.message}")
            elif isinstance(result, BaseException):
                raise result
            else:
                self.metrics.wrote(self.name, "delete", "pods")
                self._event(rs, "Normal", "SuccessfulDelete", f"Deleted pod: {name_of(pod)}")
        log.info("replicaset %s: deleted %d surplus pods", key, len(victims))
        return first
