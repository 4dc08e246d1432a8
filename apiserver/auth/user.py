"""The authenticated user of a request, as Kubernetes' ``user.Info`` carries it."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

# Where the request path keeps things in the ASGI scope.
USER_KEY = "miniplane.user"  # the UserInfo that passed authentication (and impersonation)
CLIENT_CERT_KEY = "miniplane.client_cert"  # DER bytes of a client certificate the TLS layer verified

ANONYMOUS = "system:anonymous"
UNAUTHENTICATED = "system:unauthenticated"
AUTHENTICATED = "system:authenticated"
MASTERS = "system:masters"  # members bypass authorization, as in Kubernetes
NODES = "system:nodes"
NODE_PREFIX = "system:node:"
SERVICE_ACCOUNTS = "system:serviceaccounts"
SERVICE_ACCOUNT_PREFIX = "system:serviceaccount:"


@dataclass(frozen=True)
class UserInfo:
    name: str
    groups: tuple[str, ...] = ()
    uid: str = ""
    extra: Mapping[str, tuple[str, ...]] = field(default_factory=dict)

    @property
    def is_anonymous(self) -> bool:
        return self.name == ANONYMOUS

    def to_status(self) -> dict:
        """The ``UserInfo`` of authentication.k8s.io (SelfSubjectReview, TokenReview)."""
        out: dict = {"username": self.name, "groups": list(self.groups)}
        if self.uid:
            out["uid"] = self.uid
        if self.extra:
            out["extra"] = {k: list(v) for k, v in self.extra.items()}
        return out


ANONYMOUS_USER = UserInfo(ANONYMOUS, (UNAUTHENTICATED,))


def service_account_user(namespace: str, name: str, uid: str = "",
                         extra: Mapping[str, tuple[str, ...]] | None = None) -> UserInfo:
    """``system:serviceaccount:<ns>:<name>`` in its two groups and ``system:authenticated``."""
    return UserInfo(f"{SERVICE_ACCOUNT_PREFIX}{namespace}:{name}",
                    (SERVICE_ACCOUNTS, f"{SERVICE_ACCOUNTS}:{namespace}", AUTHENTICATED),
                    uid, dict(extra or {}))


def node_name(user: UserInfo) -> str | None:
    """The node a ``system:node:<name>`` user in ``system:nodes`` is, else None."""
    if NODES in user.groups and user.name.startswith(NODE_PREFIX):
        return user.name.removeprefix(NODE_PREFIX) or None
    return None
