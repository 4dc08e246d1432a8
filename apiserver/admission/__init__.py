"""Admission: what may be written, decided after authorization and before storage.

Kubernetes runs a chain of admission plugins on every write (create, update,
delete, and POST subresources such as ``pods/binding``): mutating plugins first,
which may change the object (``ServiceAccount`` fills ``serviceAccountName``),
then validating plugins, which may only refuse or warn. Here the write path
(``apiserver/writes.py``) calls the chain in two places:

    mutate     on the new object, after the kind's defaults, before validation
               (outside the transaction for a create; inside it for an update,
               which needs the stored object)
    validate   inside the write's transaction, after the kind's validation, so a
               plugin reads what it needs (the Namespace, the stored Pod, the Node)
               from the same snapshot the write commits against

A refusal raises an ``APIError`` (``forbidden`` builds Kubernetes' wording), and
since it happens inside the write's savepoint nothing is changed. Warnings go
back through ``Attributes.warnings`` and out as ``Warning:`` headers.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

from apimachinery import status
from apiserver.auth.user import MASTERS, UserInfo
from apiserver.errors import Forbidden

if TYPE_CHECKING:
    from apiserver.storage.store import Txn

CREATE, UPDATE, DELETE = "CREATE", "UPDATE", "DELETE"

# The user the API server's own writes run as (Kubernetes' loopback client).
SYSTEM_USER = UserInfo("system:apiserver", (MASTERS,))


@dataclass
class Attributes:
    """One write as admission sees it (Kubernetes' ``admission.Attributes``).

    ``obj`` is the object to be stored (None on DELETE; the request body for a
    POST subresource such as ``serviceaccounts/token``); ``old`` the stored one
    (None on CREATE). Mutating plugins change ``obj`` in place; any plugin may
    append to ``warnings``.
    """

    user: UserInfo
    operation: str
    resource: str  # plural, e.g. "pods", "leases"
    group: str
    namespace: str
    name: str
    obj: dict | None
    old: dict | None = None
    subresource: str = ""
    warnings: list[str] = field(default_factory=list)

    def forbidden(self, reason: str) -> Forbidden:
        """``pods "x" is forbidden: <reason>``, as ``admission.NewForbidden`` words it."""
        what = status.qualified(self.resource, self.group)
        name = self.name or _object_name(self.obj)
        message = (f'{what} "{name}" is forbidden: {reason}' if name
                   else f"{what} is forbidden: {reason}")
        return Forbidden(message, details=status.object_details(self.resource, name, self.group))


def _object_name(obj: dict | None) -> str:
    meta = obj.get("metadata") if isinstance(obj, dict) else None
    name = meta.get("name") if isinstance(meta, dict) else None
    return name if isinstance(name, str) else ""


class MutatingPlugin(Protocol):
    def admit(self, attrs: Attributes) -> None:
        """Change ``attrs.obj`` in place, or raise to refuse."""


class ValidatingPlugin(Protocol):
    def validate(self, attrs: Attributes, txn: Txn) -> None:
        """Raise to refuse; append to ``attrs.warnings`` to warn. Reads through ``txn``."""


@dataclass(frozen=True)
class Chain:
    """The admission plugins, in the order they run."""

    mutating: Sequence[MutatingPlugin] = ()
    validating: Sequence[ValidatingPlugin] = ()

    def mutate(self, attrs: Attributes) -> None:
        for plugin in self.mutating:
            plugin.admit(attrs)

    def validate(self, attrs: Attributes, txn: Txn) -> None:
        for plugin in self.validating:
            plugin.validate(attrs, txn)

