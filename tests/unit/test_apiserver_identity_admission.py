"""APIServerIdentity admission: only system:masters write API server identity Leases."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from apiserver.admission import CREATE, DELETE, UPDATE, Attributes
from apiserver.admission.apiserveridentity import APIServerIdentity
from apiserver.auth.user import UserInfo
from apiserver.errors import Forbidden
from apiserver.peers import Identity, lease_body

KCM = UserInfo("system:kube-controller-manager")
ADMIN = UserInfo("kubernetes-admin", ("system:masters",))
IDENTITY = lease_body(Identity("h", "192.0.2.1", 6443), "x", 15, datetime.now(UTC), None)
PLAIN = {"metadata": {"name": "kube-controller-manager", "namespace": "kube-system"},
         "spec": {"holderIdentity": "a"}}


def attrs(user: UserInfo, op: str, obj: dict | None, old: dict | None = None,
          namespace: str = "kube-system") -> Attributes:
    return Attributes(user=user, operation=op, resource="leases", group="coordination.k8s.io",
                      namespace=namespace, name="n", obj=obj, old=old)


@pytest.mark.parametrize(("op", "obj", "old"), [
    (CREATE, IDENTITY, None),  # a made-up server address
    (UPDATE, IDENTITY, IDENTITY),
    (UPDATE, PLAIN, IDENTITY),  # taking the label off
    (UPDATE, IDENTITY, PLAIN),  # putting it on
    (DELETE, None, IDENTITY),
])
def test_others_may_not_write_identity_leases(op: str, obj: dict | None,
                                              old: dict | None) -> None:
    with pytest.raises(Forbidden, match="only system:masters may write a Lease labelled "
                                        "apiserver.kubernetes.io/identity=kube-apiserver"):
        APIServerIdentity().validate(attrs(KCM, op, obj, old), None)  # type: ignore[arg-type]
    APIServerIdentity().validate(attrs(ADMIN, op, obj, old), None)  # type: ignore[arg-type]


def test_other_leases_are_left_to_rbac() -> None:
    plugin = APIServerIdentity()
    plugin.validate(attrs(KCM, UPDATE, PLAIN, PLAIN), None)  # type: ignore[arg-type]
    plugin.validate(attrs(KCM, CREATE, IDENTITY, namespace="default"), None)  # type: ignore[arg-type]
