"""How the agent's API finds what it serves: a pod's worker and its container.

Errors are plain text with kubelet's status codes; the API server checks the pod
and the container name first, so these are what a race (a pod deleted meanwhile)
or a direct caller sees.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from starlette.responses import PlainTextResponse, Response

from nodeagent.pods.runtime import Container, PodWorker

Workers = Callable[[], Iterable[PodWorker]]


class NotServed(Exception):
    """Answered with ``code`` and the message as text."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code

    def response(self) -> Response:
        return PlainTextResponse(str(self) + "\n", status_code=self.code)


def find_worker(workers: Workers, namespace: str, pod: str) -> PodWorker:
    key = f"{namespace}/{pod}"
    live = [w for w in workers() if w.key == key]
    live.sort(key=lambda w: w.terminating.is_set())  # a replacement before one going away
    if not live:
        raise NotServed(404, f'pod "{pod}" in namespace "{namespace}" is not on this node')
    return live[0]


def find(workers: Workers, namespace: str, pod: str, container: str
         ) -> tuple[PodWorker, Container]:
    worker = find_worker(workers, namespace, pod)
    found = worker.find_container(container)
    if found is None:
        raise NotServed(404, f'container "{container}" not found in pod "{pod}"')
    return worker, found
