"""How a Deployment moves its ReplicaSets, pure: the size of each ReplicaSet after
one step of a rolling update, a Recreate, or a change of ``replicas``.

Every function takes the Deployment's resolved ``Plan`` and ReplicaSets (dicts as
cached) and returns ``{name: new spec.replicas}`` for those to change, as
Kubernetes' deployment controller decides them (``rolling.go``, ``recreate.go``,
``sync.go``):

- **rolling** (``rolling_step``): first grow the new ReplicaSet while all pods
  stay within ``replicas + maxSurge``; otherwise shrink old ones while at least
  ``replicas - maxUnavailable`` pods stay available: old ReplicaSets' unavailable
  pods first, then available ones, oldest ReplicaSet first. Availability is the
  ReplicaSets' ``status.availableReplicas`` (Ready for ``minReadySeconds``).
- **recreate** (``recreate_step``): every old ReplicaSet to 0; the new one to
  ``replicas`` only once no old pod runs.
- **scaling** (``proportional_scale``): when ``replicas`` changes mid-rollout
  (or while paused), the new and old ReplicaSets grow or shrink in proportion
  to their size, so the rollout's balance is kept; the rounding leftover goes to
  the largest one.

``maxSurge`` rounds up and ``maxUnavailable`` down from percentages, and both
being 0 makes ``maxUnavailable`` 1 (Kubernetes' ``ResolveFenceposts``). Missing
fields take their apps/v1 defaults.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from controllers.objects import Object, name_of, spec, status
from controllers.revisions import DESIRED_REPLICAS, MAX_REPLICAS, annotations_of, by_creation

DEFAULT_REPLICAS = 1
DEFAULT_SURGE = "25%"
DEFAULT_UNAVAILABLE = "25%"
DEFAULT_HISTORY_LIMIT = 10
DEFAULT_PROGRESS_DEADLINE = 600
NO_DEADLINE = 2**31 - 1  # math.MaxInt32: progress is not tracked

Sizes = dict[str, int]


@dataclass(frozen=True)
class Plan:
    """A Deployment's spec as the controller uses it, defaults applied."""

    replicas: int
    recreate: bool
    max_surge: int
    max_unavailable: int
    paused: bool
    min_ready_seconds: int
    history_limit: int
    progress_deadline: int | None  # seconds; None: not tracked


def _int(value: object, default: int) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 \
        else default


def scaled_value(raw: object, total: int, *, round_up: bool) -> int:
    """An IntOrString (``3`` or ``"25%"``) against ``total``; bad values count as 0."""
    if isinstance(raw, int) and not isinstance(raw, bool):
        return max(raw, 0)
    if isinstance(raw, str):
        text = raw.strip()
        try:
            if text.endswith("%"):
                share = int(text[:-1]) * total / 100
                return max(math.ceil(share) if round_up else math.floor(share), 0)
            return max(int(text), 0)
        except ValueError:
            return 0
    return 0


def resolve_fenceposts(surge: object, unavailable: object, desired: int) -> tuple[int, int]:
    """(maxSurge, maxUnavailable) in pods: surge rounds up, unavailable down; never both 0."""
    s = scaled_value(surge, desired, round_up=True)
    u = scaled_value(unavailable, desired, round_up=False)
    if s == 0 and u == 0:
        u = 1
    return s, u


def plan_of(deployment: Object) -> Plan:
    s = spec(deployment)
    replicas = _int(s.get("replicas"), DEFAULT_REPLICAS)
    raw_strategy = s.get("strategy")
    strategy: Mapping[str, object] = raw_strategy if isinstance(raw_strategy, Mapping) else {}
    recreate = strategy.get("type") == "Recreate"
    surge, unavailable = 0, 0
    if not recreate:
        raw_rolling = strategy.get("rollingUpdate")
        rolling: Mapping[str, object] = raw_rolling if isinstance(raw_rolling, Mapping) else {}
        surge, unavailable = resolve_fenceposts(rolling.get("maxSurge", DEFAULT_SURGE),
                                                rolling.get("maxUnavailable",
                                                            DEFAULT_UNAVAILABLE), replicas)
        unavailable = min(unavailable, replicas)
    deadline = _int(s.get("progressDeadlineSeconds"), DEFAULT_PROGRESS_DEADLINE)
    return Plan(replicas=replicas, recreate=recreate, max_surge=surge,
                max_unavailable=unavailable, paused=s.get("paused") is True,
                min_ready_seconds=_int(s.get("minReadySeconds"), 0),
                history_limit=_int(s.get("revisionHistoryLimit"), DEFAULT_HISTORY_LIMIT),
                progress_deadline=None if deadline == NO_DEADLINE else deadline)


# -- ReplicaSet counts ---------------------------------------------------------------


def rs_replicas(rs: Object) -> int:
    return _int(spec(rs).get("replicas"), 1)


def rs_available(rs: Object) -> int:
    return _int(status(rs).get("availableReplicas"), 0)


def total_replicas(replica_sets: Iterable[Object], sizes: Mapping[str, int] | None = None
                   ) -> int:
    """Sum of ``spec.replicas`` (as changed in ``sizes``)."""
    return sum(size(rs, sizes) for rs in replica_sets)


def size(rs: Object, sizes: Mapping[str, int] | None = None) -> int:
    return (sizes or {}).get(name_of(rs), rs_replicas(rs))


def active(replica_sets: Iterable[Object]) -> list[Object]:
    """ReplicaSets with replicas to keep (``FilterActiveReplicaSets``)."""
    return [rs for rs in replica_sets if rs_replicas(rs) > 0]


def replicas_annotations_current(rs: Object, plan: Plan) -> bool:
    annotations = annotations_of(rs)
    return (annotations.get(DESIRED_REPLICAS) == str(plan.replicas)
            and annotations.get(MAX_REPLICAS) == str(plan.replicas + plan.max_surge))


# -- rolling update --------------------------------------------------------------------


def new_rs_replicas(plan: Plan, all_rs: Sequence[Object], new: Object | None) -> int:
    """What the new ReplicaSet may grow to now (``NewRSNewReplicas``)."""
    current = size(new) if new is not None else 0
    if plan.recreate:
        return plan.replicas
    total = total_replicas(all_rs)
    ceiling = plan.replicas + plan.max_surge
    if total >= ceiling:
        return current
    return current + min(ceiling - total, plan.replicas - current)


def _scale_down_unhealthy(plan: Plan, old: list[Object], sizes: Sizes, budget: int) -> int:
    """Shrink old ReplicaSets by their unavailable pods, up to ``budget``."""
    done = 0
    for rs in by_creation(old):
        if done >= budget:
            break
        current = size(rs, sizes)
        unhealthy = current - rs_available(rs)
        if current == 0 or unhealthy <= 0:
            continue
        step = min(budget - done, unhealthy)
        sizes[name_of(rs)] = current - step
        done += step
    return done


def _scale_down_available(plan: Plan, all_rs: list[Object], old: list[Object],
                          sizes: Sizes) -> None:
    """Shrink old ReplicaSets while enough pods stay available, oldest first."""
    min_available = plan.replicas - plan.max_unavailable
    available = sum(rs_available(rs) for rs in all_rs)
    if available <= min_available:
        return
    budget = available - min_available
    done = 0
    for rs in by_creation(old):
        if done >= budget:
            break
        current = size(rs, sizes)
        if current == 0:
            continue
        step = min(current, budget - done)
        sizes[name_of(rs)] = current - step
        done += step


def rolling_step(plan: Plan, new: Object, old: Sequence[Object]) -> Sizes:
    """One step of a rolling update: the new ReplicaSet's growth, or else the old
    ones' shrinking; {} when there is nothing to do (the rollout may be complete)."""
    all_rs = [*old, new]
    current = size(new)
    if current > plan.replicas:
        return {name_of(new): plan.replicas}
    if current < plan.replicas:
        target = new_rs_replicas(plan, all_rs, new)
        if target != current:
            return {name_of(new): target}
    old_active = active(old)
    if total_replicas(old_active) == 0:
        return {}
    min_available = plan.replicas - plan.max_unavailable
    new_unavailable = size(new) - rs_available(new)
    budget = total_replicas(all_rs) - min_available - new_unavailable
    if budget <= 0:
        return {}
    sizes: Sizes = {}
    _scale_down_unhealthy(plan, old_active, sizes, budget)
    _scale_down_available(plan, [*old_active, new], old_active, sizes)
    return _changes(sizes, old_active)


def _changes(sizes: Mapping[str, int], replica_sets: Iterable[Object]) -> Sizes:
    """``sizes`` without the entries that leave a ReplicaSet as it is."""
    current = {name_of(rs): rs_replicas(rs) for rs in replica_sets}
    return {n: v for n, v in sizes.items() if current.get(n) != v}


# -- recreate --------------------------------------------------------------------------


def recreate_scale_down(old: Sequence[Object]) -> Sizes:
    """Every old ReplicaSet with replicas to 0."""
    return {name_of(rs): 0 for rs in active(old)}


def old_pods_running(old: Sequence[Object], old_pods: Iterable[Object]) -> bool:
    """Whether any pod of the old ReplicaSets may still run (``oldPodsRunning``):
    their status still counts one, or a pod of theirs has not finished."""
    if any(_int(status(rs).get("replicas"), 0) > 0 for rs in old):
        return True
    return any(status(p).get("phase") not in ("Succeeded", "Failed") for p in old_pods)


# -- scaling ---------------------------------------------------------------------------


def is_scaling_event(plan: Plan, replica_sets: Iterable[Object]) -> bool:
    """Whether ``replicas`` changed since the active ReplicaSets were last sized
    (their desired-replicas annotation says otherwise)."""
    for rs in active(replica_sets):
        desired = annotations_of(rs).get(DESIRED_REPLICAS)
        if desired is not None and desired != str(plan.replicas):
            return True
    return False


def is_saturated(plan: Plan, new: Object | None) -> bool:
    """The new ReplicaSet alone has all the replicas, sized and available."""
    return (new is not None and rs_replicas(new) == plan.replicas
            and annotations_of(new).get(DESIRED_REPLICAS) == str(plan.replicas)
            and rs_available(new) == plan.replicas)


def _fraction(rs: Object, plan: Plan, status_replicas: int) -> int:
    """How much ``rs`` grows (+) or shrinks (−) for the Deployment's new size
    (``getReplicaSetFraction``): its share of the max-replicas it was sized for."""
    if plan.replicas == 0:
        return -rs_replicas(rs)
    target = plan.replicas + plan.max_surge
    try:
        annotated = int(annotations_of(rs)[MAX_REPLICAS])
    except (KeyError, ValueError):
        annotated = status_replicas
    if annotated <= 0:
        return 0
    exact = rs_replicas(rs) * target / annotated
    rounded = int(math.floor(exact + 0.5)) if exact >= 0 else -int(math.floor(-exact + 0.5))
    return rounded - rs_replicas(rs)


def proportional_scale(plan: Plan, new: Object | None, old: Sequence[Object], *,
                       status_replicas: int) -> Sizes:
    """New sizes when ``replicas`` changed (``DeploymentController.scale``);
    ``status_replicas`` is the Deployment's ``status.replicas``."""
    candidates = [*old, *([new] if new is not None else [])]
    actives = active(candidates)
    if len(actives) == 1 or (not actives and candidates):
        target = actives[0] if actives else (new if new is not None else
                                             by_creation(old)[-1])
        return {} if rs_replicas(target) == plan.replicas else {name_of(target): plan.replicas}
    if not actives:
        return {}
    if is_saturated(plan, new):
        return {name_of(rs): 0 for rs in active(old)}
    if plan.recreate:
        return {}
    allowed = plan.replicas + plan.max_surge if plan.replicas > 0 else 0
    to_add = allowed - total_replicas(actives)
    if to_add > 0:  # larger first, newer first among equals
        ordered = sorted(reversed(by_creation(actives)), key=rs_replicas, reverse=True)
    else:  # larger first, older first among equals
        ordered = sorted(by_creation(actives), key=rs_replicas, reverse=True)
    sizes: Sizes = {}
    added = 0
    for rs in ordered:
        share = 0
        if to_add != 0 and rs_replicas(rs) > 0 and added != to_add:
            fraction = _fraction(rs, plan, status_replicas)
            allowed_left = to_add - added
            share = min(fraction, allowed_left) if to_add > 0 else max(fraction, allowed_left)
        sizes[name_of(rs)] = rs_replicas(rs) + share
        added += share
    if to_add != 0 and ordered:
        first = name_of(ordered[0])
        sizes[first] = max(sizes[first] + to_add - added, 0)
    return _changes(sizes, actives)


def rs_size_changes(replica_sets: Iterable[Object], sizes: Mapping[str, int]
                    ) -> list[tuple[Object, int, int]]:
    """(ReplicaSet, from, to) for each planned change, in the ReplicaSets' order."""
    return [(rs, rs_replicas(rs), sizes[name_of(rs)]) for rs in replica_sets
            if name_of(rs) in sizes]


def describe_sizes(changes: Iterable[tuple[Object, int, int]]) -> str:
    return ", ".join(f"{name_of(rs)} {a}→{b}" for rs, a, b in changes) or "no change"
