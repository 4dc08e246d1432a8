"""The server's admission chain, in Kubernetes' order for the plugins miniplane has."""

from __future__ import annotations

from apiserver.admission import Chain
from apiserver.admission.apiserveridentity import APIServerIdentity
from apiserver.admission.noderestriction import NodeRestriction
from apiserver.admission.ownerreferences import Authorize, OwnerReferencesPermissionEnforcement
from apiserver.admission.podsecurity import PodSecurity, Policy
from apiserver.admission.serviceaccount import ServiceAccountDefault


def default_chain(*, pod_security_default: str = "privileged",
                  authorize: Authorize | None = None) -> Chain:
    """ServiceAccount (mutating), then NodeRestriction, APIServerIdentity, PodSecurity
    and, given the server's ``authorize``, OwnerReferencesPermissionEnforcement
    (validating).

    ``pod_security_default`` is the enforce level of namespaces without the
    ``pod-security.kubernetes.io/enforce`` label (``--pod-security-default``).
    """
    owner_refs = (OwnerReferencesPermissionEnforcement(authorize),) if authorize else ()
    return Chain(mutating=(ServiceAccountDefault(),),
                 validating=(NodeRestriction(), APIServerIdentity(),
                             PodSecurity(Policy.default(pod_security_default)), *owner_refs))
