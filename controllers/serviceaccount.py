"""ServiceAccounts controller: every namespace has its ``default`` ServiceAccount.

As Kubernetes' ``serviceaccount-controller``: keys are namespaces; a namespace
that appears (or is resynced) and a ``default`` ServiceAccount that is deleted
queue the namespace, and a sync creates what is missing. A namespace being
deleted gets nothing (the API server would refuse, and the account would go
with it anyway). ``missing_accounts`` is the decision, pure.
"""

from __future__ import annotations

import logging
from collections.abc import Collection, Iterable

from apimachinery.kinds import NAMESPACE, SERVICEACCOUNT
from client.errors import AlreadyExists, Forbidden, NotFound
from client.http import AsyncClient
from controllers.informers import SharedInformers
from controllers.metrics import Metrics
from controllers.objects import Object, is_deleting, name_of, namespace_of, status
from controllers.runtime import Controller

log = logging.getLogger(__name__)

# The accounts every namespace gets (Kubernetes' --service-account-names default).
DEFAULT_ACCOUNTS = ("default",)


def missing_accounts(namespace: Object | None, existing: Collection[str],
                     wanted: Iterable[str] = DEFAULT_ACCOUNTS) -> list[str]:
    """The accounts to create in ``namespace``: none if it is gone or terminating."""
    if namespace is None or is_deleting(namespace) or status(namespace).get("phase") == \
            "Terminating":
        return []
    return [name for name in wanted if name not in existing]


class ServiceAccountsController(Controller):
    """Creates the ``default`` ServiceAccount of every namespace, again if deleted."""

    name = "serviceaccount"

    def __init__(self, client: AsyncClient, informers: SharedInformers,
                 metrics: Metrics) -> None:
        super().__init__(metrics, workers=1)
        self.client = client
        self.namespaces = informers.get(NAMESPACE)
        self.accounts = informers.get(SERVICEACCOUNT)
        self.namespaces.add_handler(self._namespace_seen,
                                    lambda _old, new: self._namespace_seen(new), None)
        self.accounts.add_handler(None, None, self._account_deleted)

    def _namespace_seen(self, namespace: Object) -> None:
        self.queue.add(name_of(namespace))

    def _account_deleted(self, account: Object) -> None:
        if name_of(account) in DEFAULT_ACCOUNTS:
            self.queue.add(namespace_of(account))

    async def sync(self, key: str) -> float | None:
        existing = {name for name in DEFAULT_ACCOUNTS
                    if self.accounts.store.get(f"{key}/{name}") is not None}
        for name in missing_accounts(self.namespaces.store.get(key), existing):
            try:
                await self.client.create(SERVICEACCOUNT, {"metadata": {"name": name}}, key)
            except AlreadyExists:
                continue  # the cache is behind our own (or someone's) write
            except (Forbidden, NotFound):
                return None  # the namespace is terminating or gone
            self.metrics.wrote(self.name, "create", "serviceaccounts")
            log.info("serviceaccount %s/%s: created", key, name)
        return None
