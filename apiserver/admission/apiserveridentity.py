"""APIServerIdentity: who may write the API servers' identity Leases.

Such a Lease (``kube-system``, label ``apiserver.kubernetes.io/identity=kube-apiserver``)
puts its recorded address into the ``kubernetes`` Service's endpoints
(``apiserver/peers.py``): whoever writes one decides where pods' API traffic goes.
RBAC alone is not enough: the bootstrap policy lets the controller-manager create
any Lease (its leader-election Lease, as Kubernetes grants), and a namespace role in
``kube-system`` could grant Leases to anyone. So only ``system:masters`` (the API
servers themselves, and cluster admins) may create, change or delete a Lease that
carries the label, or give it to one.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from apiserver.admission import Attributes
from apiserver.auth.user import MASTERS
from apiserver.peers import IDENTITY_LABEL, IDENTITY_VALUE, LEASE_NAMESPACE, is_identity_lease

if TYPE_CHECKING:
    from apiserver.storage.store import Txn


class APIServerIdentity:
    """The validating plugin; looks at Leases in ``kube-system`` only."""

    def validate(self, attrs: Attributes, txn: Txn) -> None:
        if (attrs.group, attrs.resource, attrs.namespace, attrs.subresource) != \
                ("coordination.k8s.io", "leases", LEASE_NAMESPACE, ""):
            return
        if MASTERS in attrs.user.groups:
            return
        if any(o is not None and is_identity_lease(o) for o in (attrs.obj, attrs.old)):
            raise attrs.forbidden(f"only system:masters may write a Lease labelled "
                                  f"{IDENTITY_LABEL}={IDENTITY_VALUE}: it names an API "
                                  f"server's address in the kubernetes Service's endpoints")
