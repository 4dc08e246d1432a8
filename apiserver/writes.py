"""The write paths: create, update, patch, delete, subresource actions, run by the store.

Each public function here returns the closure the store's writer thread runs inside
a savepoint. Everything a write decides (does it exist, is the resourceVersion
current, which ClusterIP, does it finalise a namespace) happens inside that closure,
so concurrent writes see each other and a rejected one changes nothing.

Nothing here knows a kind: what differs between kinds is a hook of the kind's
strategy (``apiserver/registry/strategy.py`` lists them in the order they run).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from apimachinery import status
from apiserver import managedfields, objects, propagation
from apiserver.admission import CREATE, DELETE, SYSTEM_USER, UPDATE, Attributes, Chain
from apiserver.auth.authn import TokenIssuer
from apiserver.auth.user import UserInfo
from apiserver.errors import (
    AlreadyExists,
    BadRequest,
    Conflict,
    InternalError,
    Invalid,
    NotFound,
)
from apiserver.objects import meta, success
from apiserver.registry.strategy import Strategy
from apiserver.resources import SCOPE, by_key
from apiserver.services import ServiceAllocations
from apiserver.storage.store import Txn

# Kubernetes tries this many generated names before giving up (registry/store.go).
GENERATE_NAME_ATTEMPTS = 8
# Metadata the server owns: a client can't set or change these through a write.
_SYSTEM_META = ("uid", "creationTimestamp", "deletionTimestamp", "deletionGracePeriodSeconds",
                "generation", "resourceVersion", "selfLink")


@dataclass(frozen=True)
class Manager:
    """Who writes (``fieldManager``), how (Update or Apply) and which fields it sent."""

    name: str
    operation: str
    fields: dict
    subresource: str = ""

    def stamp(self, rt: Strategy, obj: dict) -> None:
        managedfields.record(obj, manager=self.name, operation=self.operation,
                             api_version=rt.kind.api_version,
                             time=objects.rfc3339(objects.now()), fields=self.fields,
                             subresource=self.subresource)


@dataclass(frozen=True)
class Caller:
    """Who asks for a write (admission judges it), and where admission's warnings go.

    One per request: the warnings list is filled while the write runs and read
    by the handler afterwards. The server's own writes run as ``SYSTEM_USER``.
    """

    user: UserInfo = SYSTEM_USER
    warnings: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Written:
    """An update's result: the stored object, and whether the write created it."""

    obj: dict
    created: bool = False


@dataclass
class Writes:
    """The write operations, bound to the allocators and token signer they share and
    the admission chain."""

    allocations: ServiceAllocations
    tokens: TokenIssuer | None = None
    admission: Chain = field(default_factory=Chain)

    # ---------------------------------------------------------------- create

    def create(self, rt: Strategy, namespace: str, body: dict,
               manager: Manager | None = None, caller: Caller | None = None
               ) -> Callable[[Txn], dict]:
        who = caller or Caller()
        given_meta = body.get("metadata")
        body_meta = given_meta if isinstance(given_meta, dict) else {}
        generate = body_meta.get("generateName") if not body_meta.get("name") else None
        if generate is not None:
            body = {**body, "metadata": {**body_meta,
                                         "name": objects.generated_name(str(generate))}}
        obj = self._prepared(rt, namespace, body, manager, who)

        def run(txn: Txn) -> dict:
            # runs once; a rolled-back attempt discards ``obj``, so no copy is needed
            return self._create_in(txn, rt, namespace, obj, generate, who)

        return run

    def _new_object(self, rt: Strategy, namespace: str, body: dict) -> dict:
        obj = _typed(rt, body)
        m = meta(obj)
        if rt.kind.namespaced:
            given = m.get("namespace")
            if given and given != namespace:
                raise BadRequest("the namespace of the provided object does not match the "
                                 "namespace sent on the request")
            m["namespace"] = namespace
        else:
            m.pop("namespace", None)
        for key in _SYSTEM_META:
            m.pop(key, None)
        m["uid"] = objects.new_uid()
        m["creationTimestamp"] = objects.rfc3339(objects.now())
        m["generation"] = 1
        rt.prepare_for_create(obj)
        return obj

    def _prepared(self, rt: Strategy, namespace: str, body: dict, manager: Manager | None,
                  caller: Caller) -> dict:
        """A new object: server metadata, defaults, mutating admission, validation."""
        obj = self._new_object(rt, namespace, body)
        self.admission.mutate(_attributes(rt, caller, CREATE, namespace, meta(obj)["name"],
                                          obj, None))
        self._check(rt, obj)
        if manager is not None:
            manager.stamp(rt, obj)
        return obj

    def _create_in(self, txn: Txn, rt: Strategy, namespace: str, obj: dict,
                   generate: str | None, caller: Caller) -> dict:
        ctx = _Context(self, txn, caller.user)
        if rt.kind.namespaced:
            SCOPE.admit_child(ctx, namespace)
        m = meta(obj)
        for _ in range(GENERATE_NAME_ATTEMPTS):
            if txn.get(rt.key, _ns(rt, namespace), m["name"]) is None:
                break
            if generate is None:
                raise AlreadyExists.of(rt.kind.plural, m["name"], rt.kind.group)
            m["name"] = objects.generated_name(generate)
        else:
            raise AlreadyExists(
                status.object_message("AlreadyExists", rt.kind.plural, m["name"],
                                      rt.kind.group)
                + ", the server was not able to generate a unique name for the object",
                details=status.object_details(rt.kind.plural, m["name"], rt.kind.group))
        self.admission.validate(_attributes(rt, caller, CREATE, namespace, m["name"], obj, None),
                                txn)
        rt.begin_create(ctx, obj)
        return _put(txn, rt.key, _ns(rt, namespace), m["name"], obj, None)

    # ---------------------------------------------------------------- update

    def update(self, rt: Strategy, namespace: str, name: str, body: dict,
               subresource: str = "", manager: Manager | None = None,
               caller: Caller | None = None) -> Callable[[Txn], Written]:
        who = caller or Caller()
        new = _typed(rt, body)
        m = meta(new)
        if m.get("name") and m["name"] != name:
            raise BadRequest(f"the name of the object ({m['name']}) does not match the name on "
                             f"the URL ({name})")
        m["name"] = name
        if rt.kind.namespaced:
            given = m.get("namespace")
            if given and given != namespace:
                raise BadRequest("the namespace of the provided object does not match the "
                                 "namespace sent on the request")

        def run(txn: Txn) -> Written:
            old = txn.get(rt.key, _ns(rt, namespace), name)
            if old is None:
                if rt.create_on_update and not subresource:
                    obj = self._prepared(rt, namespace, objects.deep_copy(new), manager, who)
                    return Written(self._create_in(txn, rt, namespace, obj, None, who),
                                   created=True)
                raise NotFound.of(rt.kind.plural, name, rt.kind.group)
            return Written(self._update_in(txn, rt, namespace, old, objects.deep_copy(new),
                                           subresource, manager, who))

        return run

    def patch(self, rt: Strategy, namespace: str, name: str,
              apply_patch: Callable[[dict], dict], subresource: str = "",
              create_body: dict | None = None, manager: Manager | None = None,
              caller: Caller | None = None) -> Callable[[Txn], Written]:
        """``apply_patch`` maps the stored object to the patched one (pure, may raise).

        ``create_body`` (server-side apply) is created when the object is absent.
        """
        who = caller or Caller()

        def run(txn: Txn) -> Written:
            old = txn.get(rt.key, _ns(rt, namespace), name)
            if old is None:
                if create_body is None or subresource:
                    raise NotFound.of(rt.kind.plural, name, rt.kind.group)
                body = objects.deep_copy(create_body)
                meta(body).setdefault("name", name)
                obj = self._prepared(rt, namespace, body, manager, who)
                return Written(self._create_in(txn, rt, namespace, obj, None, who),
                               created=True)
            patched = apply_patch(objects.deep_copy(old))
            if not isinstance(patched, dict):
                raise BadRequest("the patch produced something that is not an object")
            pm = meta(patched)
            if pm.get("name", name) != name:
                raise BadRequest("the name of the object can't be changed by a patch")
            pm["name"] = name
            return Written(self._update_in(txn, rt, namespace, old, patched, subresource,
                                           manager, who))

        return run

    def _update_in(self, txn: Txn, rt: Strategy, namespace: str, old: dict, new: dict,
                   subresource: str, manager: Manager | None, caller: Caller) -> dict:
        om, nm = meta(old), meta(new)
        wanted_rv = nm.get("resourceVersion")
        if wanted_rv and wanted_rv != om.get("resourceVersion"):
            raise Conflict.modified(rt.kind.plural, om["name"], rt.kind.group)
        if subresource == "status":
            merged = objects.deep_copy(old)
            if "status" in new:
                merged["status"] = new["status"]
            new = merged
        else:
            for key in _SYSTEM_META:
                if key in om:
                    nm[key] = om[key]
                else:
                    nm.pop(key, None)
            if "managedFields" not in nm and "managedFields" in om:
                nm["managedFields"] = om["managedFields"]
            new["apiVersion"], new["kind"] = rt.kind.api_version, rt.kind.kind
            if rt.kind.namespaced:
                nm["namespace"] = namespace
            rt.prepare_for_update(new, old)
        nm = meta(new)
        nm["resourceVersion"] = om.get("resourceVersion")
        ctx = _Context(self, txn, caller.user)
        attrs = _attributes(rt, caller, UPDATE, namespace, om["name"], new, old, subresource)
        self.admission.mutate(attrs)
        if subresource == "status":
            _raise_invalid(rt, new, rt.validate_status_update(new, old))
            self.admission.validate(attrs, txn)
        else:
            _raise_invalid(rt, new, rt.validate_update(new, old))
            self.admission.validate(attrs, txn)
            if objects.spec_part(new) != objects.spec_part(old):
                nm["generation"] = int(om.get("generation") or 0) + 1
            rt.begin_update(ctx, new, old)
        if _finalised(new):
            return self._remove(ctx, rt, namespace, new)
        if new != old and manager is not None:
            manager.stamp(rt, new)
        if new == old:
            return old  # nothing changed: no write, no event, same resourceVersion
        return _put(txn, rt.key, _ns(rt, namespace), nm["name"], new, old)

    # ---------------------------------------------------------------- actions

    def action(self, rt: Strategy, subresource: str, namespace: str, name: str,
               body: dict, caller: Caller | None = None) -> Callable[[Txn], dict]:
        """A POST-only subresource of ``rt`` (``pods/binding``), run in the transaction.

        Admission sees it as a CREATE of the subresource, the request body its object.
        """
        action = rt.actions[subresource].run
        who = caller or Caller()
        attrs = _attributes(rt, who, CREATE, namespace, name, body, None,
                            subresource)

        def run(txn: Txn) -> dict:
            self.admission.validate(attrs, txn)
            return action(_Context(self, txn, who.user), namespace, name, body)

        return run

    # ---------------------------------------------------------------- delete

    def delete(self, rt: Strategy, namespace: str, name: str,
               options: dict[str, Any], caller: Caller | None = None) -> Callable[[Txn], dict]:
        rt.check_delete(name)
        who = caller or Caller()

        def run(txn: Txn) -> dict:
            obj = txn.get(rt.key, _ns(rt, namespace), name)
            if obj is None:
                raise NotFound.of(rt.kind.plural, name, rt.kind.group)
            _check_preconditions(rt, obj, options.get("preconditions"))
            self.admission.validate(_attributes(rt, who, DELETE, namespace, name, None, obj), txn)
            obj = _propagate(txn, rt, namespace, obj, options)
            result = rt.delete(_Context(self, txn, who.user), namespace, obj,
                               options.get("gracePeriodSeconds"))
            if result is None:
                return success(rt.kind.plural, name, rt.kind.group, meta(obj).get("uid"))
            if rt.return_deleted or meta(result).get("deletionTimestamp"):
                return result
            return success(rt.kind.plural, name, rt.kind.group, meta(obj).get("uid"))

        return run

    def graceful_delete(self, ctx: _Context, rt: Strategy, namespace: str, obj: dict,
                        grace: int | None) -> dict | None:
        """Delete now, or mark for deletion; returns the object (None if already gone)."""
        txn = ctx.txn
        m = meta(obj)
        grace = rt.grace_period(obj, grace)
        if grace > 0 or m.get("finalizers"):
            old = objects.deep_copy(obj)
            moment = objects.now()
            if m.get("deletionTimestamp") is None:
                m["deletionTimestamp"] = objects.later(moment, grace)
                m["deletionGracePeriodSeconds"] = grace
                m["generation"] = int(m.get("generation") or 0) + 1
            elif grace < int(m.get("deletionGracePeriodSeconds") or 0):
                m["deletionTimestamp"] = objects.later(moment, grace)  # only ever shortened
                m["deletionGracePeriodSeconds"] = grace
            if _finalised(obj):
                return self._remove(ctx, rt, namespace, obj)
            if obj == old:
                return obj
            return _put(txn, rt.key, _ns(rt, namespace), m["name"], obj, old)
        return self._remove(ctx, rt, namespace, obj)

    def _remove(self, ctx: _Context, rt: Strategy, namespace: str, obj: dict) -> dict:
        name = meta(obj)["name"]
        rt.on_remove(ctx, obj)
        final = ctx.txn.remove(rt.key, _ns(rt, namespace), name, obj)
        if rt.kind.namespaced:
            SCOPE.child_removed(ctx, namespace)
        return final

    # ---------------------------------------------------------------- helpers

    def _check(self, rt: Strategy, obj: dict) -> None:
        """Validate a new object before its transaction (nothing is taken if it fails)."""
        _raise_invalid(rt, obj, rt.validate(obj))


@dataclass(frozen=True)
class _Context:
    """What a strategy's hooks get (``registry.strategy.WriteContext``): one transaction."""

    writes: Writes
    txn: Txn
    user: UserInfo | None = None

    @property
    def allocations(self) -> ServiceAllocations:
        return self.writes.allocations

    def put(self, strategy: Strategy, namespace: str, obj: dict, old: dict | None) -> dict:
        return _put(self.txn, strategy.key, _ns(strategy, namespace), meta(obj)["name"], obj, old)

    def graceful_delete(self, strategy: Strategy, namespace: str, obj: dict,
                        grace: int | None) -> dict | None:
        return self.writes.graceful_delete(self, strategy, namespace, obj, grace)

    def strategy_for_key(self, resource: str) -> Strategy | None:
        return by_key(resource)

    @property
    def tokens(self) -> TokenIssuer:
        if self.writes.tokens is None:
            raise InternalError("this server has no service account token signer")
        return self.writes.tokens


def _attributes(rt: Strategy, caller: Caller, operation: str, namespace: str, name: str,
                obj: dict | None, old: dict | None, subresource: str = "") -> Attributes:
    return Attributes(user=caller.user, operation=operation, resource=rt.kind.plural,
                      group=rt.kind.group, namespace=_ns(rt, namespace), name=name, obj=obj,
                      old=old, subresource=subresource, warnings=caller.warnings)


def _typed(rt: Strategy, body: dict) -> dict:
    obj = objects.deep_copy(body)
    api_version, kind = obj.get("apiVersion"), obj.get("kind")
    if api_version not in (None, "", rt.kind.api_version) or kind not in (None, "", rt.kind.kind):
        raise BadRequest(f"the API version in the data ({api_version}) and kind ({kind}) do not "
                         f"match the expected {rt.kind.api_version} {rt.kind.kind}")
    obj["apiVersion"], obj["kind"] = rt.kind.api_version, rt.kind.kind
    meta(obj)
    return obj


def _ns(rt: Strategy, namespace: str) -> str:
    return namespace if rt.kind.namespaced else ""


def _raise_invalid(rt: Strategy, obj: dict, errors: list) -> None:
    if errors:
        raise Invalid(rt.kind.kind, str(meta(obj).get("name") or ""), errors, rt.kind.group)


def _finalised(obj: dict) -> bool:
    """Marked for deletion, no finalizers left and no grace period still running."""
    m = meta(obj)
    if m.get("deletionTimestamp") is None or m.get("finalizers"):
        return False
    return not m.get("deletionGracePeriodSeconds")


def _check_preconditions(rt: Strategy, obj: dict, pre: Any) -> None:
    if not isinstance(pre, dict):
        return
    m = meta(obj)
    details = status.object_details(rt.kind.plural, m["name"], rt.kind.group)
    prefix = f'Operation cannot be fulfilled on {rt.kind.plural} "{m["name"]}": '
    uid, rv = pre.get("uid"), pre.get("resourceVersion")
    if uid and uid != m.get("uid"):
        raise Conflict(f"{prefix}Precondition failed: UID in precondition: {uid}, UID in "
                       f"object meta: {m.get('uid')}", details=details)
    if rv and rv != m.get("resourceVersion"):
        raise Conflict(f"{prefix}Precondition failed: ResourceVersion in precondition: {rv}, "
                       f"ResourceVersion in object meta: {m.get('resourceVersion')}",
                       details=details)


def _propagate(txn: Txn, rt: Strategy, namespace: str, obj: dict,
               options: dict[str, Any]) -> dict:
    """``obj`` with the garbage collector's finalizers this DELETE asks for
    (``apiserver.propagation``). On an object already marked for deletion the change
    is written here: the kind's delete writes nothing when only finalizers moved."""
    finalizers = propagation.finalizers_after_delete(meta(obj).get("finalizers"), options)
    if finalizers is None:
        return obj
    new = objects.deep_copy(obj)
    if finalizers:
        meta(new)["finalizers"] = finalizers
    else:
        meta(new).pop("finalizers", None)
    if meta(new).get("deletionTimestamp") is None:
        return new
    return _put(txn, rt.key, _ns(rt, namespace), meta(new)["name"], new, obj)


def _put(txn: Txn, resource: str, namespace: str, name: str, obj: dict, prev: dict | None) -> dict:
    return txn.put(resource, namespace, name, objects.ordered(obj), prev)
