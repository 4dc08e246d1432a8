"""OwnerReferencesPermissionEnforcement: owner references are a power, checked as one.

The garbage collector acts as itself (it may delete anything), so without this an
owner reference would lend its power to whoever writes it, as Kubernetes' plugin
of that name guards against:

- changing an object's ``metadata.ownerReferences`` (creating it with some, or
  updating them) requires ``delete`` on that object: a reference to an owner that is
  gone, or later deleted, makes the collector delete it;
- setting ``blockOwnerDeletion`` on a reference requires ``update`` on the owner's
  ``finalizers`` subresource: it holds back the owner's foreground deletion.

Asked of the server's authorizer for the writing user; ``system:masters`` (and so
the server's own writes) pass there. Status and other subresources can't change
owner references, so only writes of the object itself are looked at.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from apimachinery.kinds import KINDS
from apiserver.admission import CREATE, UPDATE, Attributes
from apiserver.auth.authorizer import Verdict
from apiserver.auth.requestinfo import RequestInfo
from apiserver.auth.user import UserInfo

if TYPE_CHECKING:
    from apiserver.storage.store import Txn

Authorize = Callable[[UserInfo, RequestInfo], Verdict]


def _refs(obj: dict | None) -> list[dict[str, Any]]:
    meta = obj.get("metadata") if isinstance(obj, dict) else None
    refs = meta.get("ownerReferences") if isinstance(meta, dict) else None
    return [r for r in refs if isinstance(r, dict)] if isinstance(refs, list) else []


def newly_blocking(new: list[dict[str, Any]], old: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """References of ``new`` with blockOwnerDeletion that ``old`` did not block with."""
    blocked = {r.get("uid") for r in old if r.get("blockOwnerDeletion") is True}
    return [r for r in new if r.get("blockOwnerDeletion") is True and r.get("uid") not in blocked]


class OwnerReferencesPermissionEnforcement:
    def __init__(self, authorize: Authorize) -> None:
        self._authorize = authorize
        self._kinds = {(k.group, k.kind): k for k in KINDS}

    def validate(self, attrs: Attributes, txn: Txn) -> None:
        if attrs.operation not in (CREATE, UPDATE) or attrs.subresource:
            return
        new, old = _refs(attrs.obj), _refs(attrs.old)
        if new == old:
            return
        verdict = self._authorize(attrs.user, RequestInfo(
            verb="delete", is_resource_request=True, api_group=attrs.group,
            namespace=attrs.namespace, resource=attrs.resource, name=attrs.name))
        if not verdict.allowed:
            raise attrs.forbidden("cannot set an ownerRef on a resource you can't delete: "
                                  + (verdict.reason or "not allowed"))
        for ref in newly_blocking(new, old):
            self._check_block(attrs, ref)

    def _check_block(self, attrs: Attributes, ref: dict[str, Any]) -> None:
        api_version, kind_name = str(ref.get("apiVersion") or ""), str(ref.get("kind") or "")
        kind = self._kinds.get((api_version.rpartition("/")[0], kind_name))
        if kind is None:
            raise attrs.forbidden("cannot set blockOwnerDeletion in this case because cannot "
                                  f"find RESTMapping for APIVersion {api_version} Kind "
                                  f"{kind_name}")
        verdict = self._authorize(attrs.user, RequestInfo(
            verb="update", is_resource_request=True, api_group=kind.group,
            namespace=attrs.namespace if kind.namespaced else "", resource=kind.plural,
            subresource="finalizers", name=str(ref.get("name") or "")))
        if not verdict.allowed:
            raise attrs.forbidden("cannot set blockOwnerDeletion if an ownerReference refers "
                                  "to a resource you can't set finalizers on: "
                                  f"{verdict.reason or 'not allowed'}, {ref}")
