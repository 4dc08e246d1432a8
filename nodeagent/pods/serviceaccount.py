"""A pod's ServiceAccount token and in-cluster settings, where in-cluster clients look.

For a pod whose ``automountServiceAccountToken`` is not false (the pod's field, else
its ServiceAccount's, else true), the agent asks the API server for a token bound
to the pod (``POST …/serviceaccounts/<sa>/token``, a ``TokenRequest``), and keeps
``token``, ``ca.crt`` (the cluster CA the agent itself trusts) and ``namespace`` in
``<state>/pods/<uid>/serviceaccount``, which the container sees read-only at
``/var/run/secrets/kubernetes.io/serviceaccount``. The token is refreshed once 80%
of its lifetime has passed, by the kubelet's atomic swap (``atomicwriter``, which
the ConfigMap and Secret volumes use too), so a reader sees the old set or the new
one, never half of each.

Who can read it: ``<state>/pods/<uid>`` is root's alone (0700), so no host user
reaches the token by its host path; inside the container's own mount the directory
belongs to the pod's user (``token_dir_owner``). Processes of another pod with the
same uid are the same user to the kernel and could read it through
``/proc/PID/root``: distinct pods need distinct uids to be kept apart.

An API server without ServiceAccounts (none in its discovery) gets pods without a
token, and a log line; one with them and a failing TokenRequest keeps the pod's
containers waiting (``CreateContainerConfigError``) until a retry succeeds.

The environment of every container also gets the ``kubernetes`` Service's address
(``KUBERNETES_SERVICE_HOST`` and the rest, as the kubelet injects them: see
``envvars.services_env``), so ``load_incluster_config()`` finds the API server.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from client.errors import ApiError
from client.http import AsyncClient
from nodeagent.pods.security import Security

log = logging.getLogger(__name__)

# The kubelet asks for 3607 s: an hour, and 7 s by which the API server recognises
# a kubelet's default request (it may then extend it, warning when it is used late).
TOKEN_EXPIRATION = 3607
REFRESH_FRACTION = 0.8  # refresh once this much of a token's lifetime has passed
DISCOVERY_TTL = 60.0  # seconds to trust "this server has no ServiceAccounts"
FILES = ("ca.crt", "namespace", "token")


@dataclass(frozen=True)
class Token:
    token: str
    expires: float  # epoch seconds
    issued: float


def service_account_name(pod: Mapping[str, Any]) -> str:
    spec = pod.get("spec") or {}
    return spec.get("serviceAccountName") or spec.get("serviceAccount") or "default"


def wants_token(pod: Mapping[str, Any], service_account: Mapping[str, Any] | None) -> bool:
    """The pod's ``automountServiceAccountToken`` wins, then the ServiceAccount's."""
    own = (pod.get("spec") or {}).get("automountServiceAccountToken")
    if own is not None:
        return bool(own)
    sa = (service_account or {}).get("automountServiceAccountToken")
    return True if sa is None else bool(sa)


def token_request(pod: Mapping[str, Any], *, expiration_seconds: int = TOKEN_EXPIRATION,
                  audience: str = "") -> dict[str, Any]:
    """A TokenRequest bound to the pod (by name and uid): the token dies with it.
    Without an ``audience`` (a projected volume's), the API server's own."""
    meta = pod.get("metadata") or {}
    spec: dict[str, Any] = {"expirationSeconds": expiration_seconds,
                            "boundObjectRef": {"kind": "Pod", "apiVersion": "v1",
                                               "name": meta.get("name"),
                                               "uid": meta.get("uid")}}
    if audience:
        spec["audiences"] = [audience]
    return {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest", "spec": spec}


def token_path(namespace: str, name: str) -> str:
    return f"/api/v1/namespaces/{namespace}/serviceaccounts/{name}/token"


def parse_time(text: str) -> float:
    """RFC 3339 (``2026-01-01T00:00:00Z``) → epoch seconds."""
    return datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(UTC).timestamp()


def token_from_status(answer: Mapping[str, Any], *, now: float) -> Token:
    status = answer.get("status") or {}
    token, expires = status.get("token"), status.get("expirationTimestamp")
    if not isinstance(token, str) or not token or not isinstance(expires, str):
        raise ValueError("TokenRequest answer has no status.token / expirationTimestamp")
    return Token(token=token, expires=parse_time(expires), issued=now)


def refresh_delay(token: Token, *, now: float) -> float:
    """Seconds until the token should be replaced: at 80% of its lifetime."""
    return max(0.0, token.issued + REFRESH_FRACTION * (token.expires - token.issued) - now)


def token_dir_owner(securities: Sequence[Security], fs_group: int | None
                    ) -> tuple[int, int, int]:
    """(uid, gid, mode) of the token directory, so every container of the pod can read
    it: the containers' one user owns it; the group is ``fsGroup`` (which each
    container has as a supplementary group), else their one primary group. Containers
    that share neither get 0755: the 0700 pod directory above keeps others out."""
    uids = {s.uid for s in securities}
    gids = {s.gid for s in securities}
    uid = next(iter(uids)) if len(uids) == 1 else 0
    if fs_group is not None:
        return uid, fs_group, 0o750
    if len(gids) == 1:
        return uid, next(iter(gids)), 0o750
    return uid, 0, 0o755




# -- the API -----------------------------------------------------------------------------


class ClusterAccess:
    """What a pod's launch needs from the API server: its token, whether
    ServiceAccounts exist. Raises ``ApiError`` on failures."""

    def __init__(self, client: AsyncClient) -> None:
        self.client = client
        ca = client.config.ca_file
        self.ca_pem: bytes | None = Path(ca).read_bytes() if ca else None
        self._has_sa: bool | None = None
        self._checked = 0.0

    async def serves_service_accounts(self) -> bool:
        """From discovery; a "no" is asked again after ``DISCOVERY_TTL``."""
        if self._has_sa or (self._has_sa is False
                            and time.monotonic() - self._checked < DISCOVERY_TTL):
            return bool(self._has_sa)
        answer = (await self.client.request("GET", "/api/v1")).json()
        self._has_sa = any(r.get("name") == "serviceaccounts"
                           for r in answer.get("resources") or [])
        self._checked = time.monotonic()
        if not self._has_sa:
            log.warning("the API server has no ServiceAccounts: pods run without a token")
        return self._has_sa

    async def automount(self, pod: Mapping[str, Any]) -> bool:
        own = (pod.get("spec") or {}).get("automountServiceAccountToken")
        if own is False or not await self.serves_service_accounts():
            return False
        if own is True:
            return True
        ns = (pod.get("metadata") or {}).get("namespace", "default")
        try:
            sa = (await self.client.request(
                "GET", f"/api/v1/namespaces/{ns}/serviceaccounts/"
                f"{service_account_name(pod)}")).json()
        except ApiError:  # not readable (or gone): the TokenRequest will tell
            sa = None
        return wants_token(pod, sa)

    async def token(self, pod: Mapping[str, Any], *, audience: str = "",
                    expiration_seconds: int = TOKEN_EXPIRATION) -> Token:
        ns = (pod.get("metadata") or {}).get("namespace", "default")
        answer = (await self.client.request(
            "POST", token_path(ns, service_account_name(pod)),
            json=token_request(pod, audience=audience,
                               expiration_seconds=expiration_seconds))).json()
        try:
            return token_from_status(answer, now=time.time())
        except ValueError as exc:
            raise ApiError(str(exc)) from exc
