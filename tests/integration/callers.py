"""Who calls a test API server: users of a ``--token-auth-file``, node agents with
client certificates signed by the test run's CA, ServiceAccounts with real tokens.

Every caller is a real HTTPS client (httpx) that trusts the server's CA and
authenticates the way the real one does; nothing is put in the request by a
test-only layer. ``Callers`` closes what it opened.
"""

from __future__ import annotations

import functools
import ssl
from pathlib import Path

import httpx

from componentbase import pki
from tests.conftest import ApiServer, session_pki


def token_file(path: Path, users: dict[str, str]) -> Path:
    """Write ``--token-auth-file`` for ``{user: token}`` (uid ``uid-<user>``, no groups)."""
    path.write_text("".join(f"{token},{user},uid-{user}\n" for user, token in users.items()))
    return path


@functools.cache
def client_cert(user: str, groups: tuple[str, ...] = ()) -> tuple[str, str]:
    """(cert, key) files of a client certificate for ``user`` in ``groups`` from the
    test run's CA, as a node agent's kubeconfig carries."""
    directory = session_pki().directory
    name = "client-" + user.replace(":", "_")
    pki.ensure_cert(directory, name, pki.ensure_ca(directory), pki.client_identity(user, groups))
    return str(directory / f"{name}.crt"), str(directory / f"{name}.key")


class Callers:
    def __init__(self, server: ApiServer) -> None:
        self.server = server
        self._open: list[httpx.Client] = []

    def _client(self, verify: ssl.SSLContext, headers: dict[str, str] | None = None
                ) -> httpx.Client:
        client = httpx.Client(base_url=self.server.url, verify=verify, headers=headers,
                              timeout=10)
        self._open.append(client)
        return client

    def admin(self) -> httpx.Client:
        """cluster-admin (system:masters), by client certificate."""
        return self._client(self.server.tls())

    def token(self, token: str, **headers: str) -> httpx.Client:
        """A bearer token: a static user's or a ServiceAccount's."""
        return self._client(ssl.create_default_context(cafile=self.server.ca_file),
                            {"Authorization": f"Bearer {token}", **headers})

    def anonymous(self) -> httpx.Client:
        return self._client(ssl.create_default_context(cafile=self.server.ca_file))

    def node(self, name: str) -> httpx.Client:
        """The node agent of ``name``: ``system:node:<name>`` in ``system:nodes``."""
        return self.certificate(f"system:node:{name}", ("system:nodes",))

    def certificate(self, user: str, groups: tuple[str, ...] = ()) -> httpx.Client:
        """``user`` in ``groups`` by a client certificate of the test run's CA, as a
        component's kubeconfig carries (``system:kube-controller-manager`` …)."""
        cert, key = client_cert(user, groups)
        ctx = ssl.create_default_context(cafile=self.server.ca_file)
        ctx.load_cert_chain(cert, key)
        return self._client(ctx)

    def service_account(self, ns: str, name: str) -> httpx.Client:
        """The ServiceAccount ``ns/name`` (created if missing) with a token from the
        server's TokenRequest API, as a pod would hold it."""
        admin = self.admin()
        made = admin.post(f"/api/v1/namespaces/{ns}/serviceaccounts",
                          json={"metadata": {"name": name}})
        assert made.status_code in (201, 409), made.text
        answer = admin.post(f"/api/v1/namespaces/{ns}/serviceaccounts/{name}/token",
                            json={"apiVersion": "authentication.k8s.io/v1",
                                  "kind": "TokenRequest", "spec": {}})
        assert answer.status_code == 201, answer.text
        return self.token(answer.json()["status"]["token"])

    def close(self) -> None:
        for client in self._open:
            client.close()
        self._open.clear()
