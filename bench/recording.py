"""A real ``Proxier`` that also keeps every payload it applies, for the benchmarks' floors.

``bench/proxy.py`` and ``bench/e2e.py`` both measure the proxy against a bare
``iptables-restore`` of the very payloads it sent: the payloads are recorded here
and replayed on a twin namespace.
"""

from __future__ import annotations

import subprocess

from nodeagent.proxy.apply import Backend
from nodeagent.proxy.metrics import Metrics
from nodeagent.proxy.plan import Payload
from nodeagent.proxy.sync import Proxier, ProxyConfig


def scratch_namespace(name: str, made: list[str]) -> str:
    """Create namespace ``name`` (an ``mp-…`` of the caller's run) and note it for removal."""
    if not name.startswith("mp-"):
        raise ValueError(f"refusing to create {name!r}: benchmarks only use mp-… namespaces")
    subprocess.run(["ip", "netns", "add", name], check=True)
    made.append(name)
    return name


def recording_proxier(backend: Backend, node_name: str) -> tuple[Proxier, list[Payload]]:
    """A proxier on ``backend`` and the list every applied payload is appended to."""
    sent: list[Payload] = []
    proxier = Proxier(backend, ProxyConfig(node_name=node_name), metrics=Metrics(),
                      on_payload=sent.append)
    return proxier, sent
