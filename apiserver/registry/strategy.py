"""What a kind is to the API server: one ``Strategy`` object per kind.

Kubernetes keeps this in ``pkg/registry/<group>/<kind>/strategy.go``; here each
kind's module (``apiserver/registry/<kind>.py``) subclasses ``Strategy`` and
overrides only what the kind does differently. The generic write path
(``apiserver/writes.py``) calls these hooks in this order and never asks which
kind it holds:

    create   prepare_for_create → validate → [txn] begin_create → store
    update   prepare_for_update → validate_update → [txn] begin_update → store
    status   validate_status_update → store
    delete   check_delete → [txn] delete (default: graceful_delete with grace_period)
             → on_remove when the object really goes

A kind that is asked rather than stored (``stored = False``: SelfSubjectReview,
TokenReview; Kubernetes' create-only REST storage) has one hook instead,
``review(ctx, body)``, which answers a POST to its collection with the request's
user at hand (``RequestContext``) and writes nothing.

The defaults are Kubernetes' for a plain kind: defaulting does nothing, the
status of a kind with a /status subresource is kept on a main-resource update,
only the metadata rules validate, deletion is immediate unless finalizers hold
it, DELETE answers with a Status.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar, Protocol

from apimachinery import tables
from apimachinery.kinds import Kind
from apiserver import validation
from apiserver.errors import FieldError
from apiserver.patch.schemas import DEFAULT, FieldSchema

if TYPE_CHECKING:
    from apiserver.auth.authn import TokenIssuer
    from apiserver.auth.filters import Authorization
    from apiserver.auth.user import UserInfo
    from apiserver.services import ServiceAllocations
    from apiserver.storage.store import Txn

# Field selectors every kind answers (Kubernetes' DefaultClusterScopedAttr/NamespaceScopedAttr).
BASE_FIELDS = ("metadata.name", "metadata.namespace")


class WriteContext(Protocol):
    """One write as a strategy's hooks see it: its transaction and the server's state."""

    @property
    def txn(self) -> Txn: ...

    @property
    def allocations(self) -> ServiceAllocations:
        """The server's ClusterIP and NodePort allocators."""

    @property
    def user(self) -> UserInfo | None:
        """Who asked for the write; None for the server's own writes (bootstrap)."""

    def put(self, strategy: Strategy, namespace: str, obj: dict, old: dict | None) -> dict:
        """Store ``obj`` (replacing ``old``) and return the stored object."""

    def graceful_delete(self, strategy: Strategy, namespace: str, obj: dict,
                        grace: int | None) -> dict | None:
        """The generic deletion: mark it while a grace period or finalizers hold it, else
        remove it; returns the object, or None if it was already gone."""

    def strategy_for_key(self, resource: str) -> Strategy | None:
        """The strategy of a storage key (``pods``), from the registry."""

    @property
    def tokens(self) -> TokenIssuer:
        """Signs ServiceAccount tokens (``serviceaccounts/token``)."""


class RequestContext(Protocol):
    """What a review (a kind that is asked, not stored) sees of its request."""

    @property
    def user(self) -> UserInfo:
        """Who asks: the authenticated (and impersonated) user of the request."""

    @property
    def namespace(self) -> str:
        """The request path's namespace ("" for a cluster-scoped review)."""

    @property
    def authorization(self) -> Authorization | None:
        """The server's authorizer chain and RBAC index, for the access reviews."""

    async def authenticate_token(self, token: str,
                                 audiences: Sequence[str] | None) -> UserInfo | None:
        """The user a bearer token stands for, for ``audiences`` (None: the server's)."""


@dataclass(frozen=True)
class Action:
    """A POST-only subresource such as ``pods/binding``: what it is called, what it does.

    ``run`` executes inside the write's transaction with the parent's namespace and
    name and the request body, and returns the response body (answered with 201).
    """

    kind: str  # the subresource's own kind, shown in discovery ("Binding")
    run: Callable[[WriteContext, str, str, dict], dict]
    openapi_root: str | None = None  # the body's model, for tools/gen_schemas.py


class Strategy:
    """A kind's behaviour; subclass per kind, override what differs, list it in the registry."""

    kind: ClassVar[Kind]
    # What validation adds to the metadata rules: the name rule, spec and status checks.
    rules: ClassVar[validation.Rules] = validation.Rules()
    # Field selectors beyond metadata.name / metadata.namespace.
    extra_fields: ClassVar[tuple[str, ...]] = ()
    # Selectable fields named apart from their path, e.g. an Event's ``source``.
    field_aliases: ClassVar[Mapping[str, str]] = {}
    # PUT of a missing object creates it (Services do; most kinds answer 404).
    create_on_update: ClassVar[bool] = False
    # DELETE answers with the deleted object instead of a Status.
    return_deleted: ClassVar[bool] = False
    # POST-only subresources, by name.
    actions: ClassVar[Mapping[str, Action]] = {}
    # Columns and cells of ``kubectl get`` (a Table from ``apimachinery.tables``).
    table: ClassVar[tables.TableSpec] = tables.GENERIC
    # List merge strategies for strategic merge patch and managedFields.
    patch_schema: ClassVar[FieldSchema] = DEFAULT
    # The root model in ``apiserver/openapi/schemas.json`` (the official client's class
    # name, e.g. "V1Service"); None: no field layout, so no pruning and no OpenAPI paths.
    openapi_root: ClassVar[str | None] = None
    # False: a review, answered by ``review`` on POST to the collection; nothing stored.
    stored: ClassVar[bool] = True
    # A review whose request carries nothing it reads (SelfSubjectReview): its body is
    # not decoded, so kubectl's protobuf-encoded request is answered too.
    reads_no_body: ClassVar[bool] = False

    # ------------------------------------------------------------------ facts

    @property
    def key(self) -> str:
        """Storage key of the resource: ``plural`` or ``plural.group``."""
        k = self.kind
        return f"{k.plural}.{k.group}" if k.group else k.plural

    @property
    def has_status(self) -> bool:
        return "status" in self.kind.subresources

    @property
    def field_selectors(self) -> tuple[str, ...]:
        return BASE_FIELDS + self.extra_fields

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.key}>"

    # ------------------------------------------------------------------ prepare

    def default(self, obj: dict) -> None:
        """Fill the kind's defaults into ``obj`` in place; never raises on odd input."""

    def prepare_for_create(self, obj: dict) -> None:
        """A new object, after the server set its metadata: defaults, then the initial status."""
        self.default(obj)

    def prepare_for_update(self, new: dict, old: dict) -> None:
        """A main-resource update: the status is the stored one (it has its own
        subresource), then defaults. The generic path has already copied the
        server-owned metadata from ``old``."""
        if self.has_status:
            if "status" in old:
                new["status"] = old["status"]
            else:
                new.pop("status", None)
        self.default(new)

    # ------------------------------------------------------------------ validate

    def validate(self, obj: dict) -> list[FieldError]:
        return validation.validate(self.rules, obj, None, namespaced=self.kind.namespaced)

    def validate_update(self, new: dict, old: dict) -> list[FieldError]:
        return validation.validate(self.rules, new, old, namespaced=self.kind.namespaced)

    def validate_status_update(self, new: dict, old: dict) -> list[FieldError]:
        return validation.validate_status(self.rules, new, old)

    # ------------------------------------------------------------------ write hooks

    def begin_create(self, ctx: WriteContext, obj: dict) -> None:
        """Inside the transaction, just before a new object is stored (allocations)."""

    def begin_update(self, ctx: WriteContext, new: dict, old: dict) -> None:
        """Inside the transaction, after validation, before an update is stored."""

    def on_remove(self, ctx: WriteContext, obj: dict) -> None:
        """Inside the transaction, as the object is removed for good (releases)."""

    # ------------------------------------------------------------------ delete

    def check_delete(self, name: str) -> None:
        """Raise (Forbidden) when an object of this name may never be deleted."""

    def grace_period(self, obj: dict, asked: int | None) -> int:
        """Seconds the object lingers marked for deletion; 0 removes it at once."""
        return 0

    def delete(self, ctx: WriteContext, namespace: str, obj: dict,
               grace: int | None) -> dict | None:
        """Delete now or mark for deletion; returns the object, or None if already gone."""
        return ctx.graceful_delete(self, namespace, obj, grace)

    # ------------------------------------------------------------------ reviews

    async def review(self, ctx: RequestContext, body: dict) -> dict:
        """A kind with ``stored = False``: the answer to a create of ``body``."""
        raise NotImplementedError

    # ------------------------------------------------------------------ children

    def admit_child(self, ctx: WriteContext, name: str) -> None:
        """The scope strategy (Namespace): may an object be created inside ``name``?"""

    def child_removed(self, ctx: WriteContext, name: str) -> None:
        """The scope strategy (Namespace): an object inside ``name`` was removed."""

