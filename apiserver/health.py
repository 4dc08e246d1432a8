"""``/livez``, ``/readyz`` and ``/healthz``: named checks, answered as Kubernetes does.

``GET /readyz`` is ``ok`` (200) when every check passes; otherwise 503 with one line
per check (``[+]ping ok``, ``[-]storage failed: reason withheld``) and ``readyz check
failed`` (Kubernetes answers 500 there; a readiness probe only reads the code, and
503 says "not now"). ``?verbose`` lists the checks on success too; ``?exclude=NAME``
skips one. The reasons stay out of these public paths (anonymous may read them);
``GET /readyz/<check>`` gives one check's reason, to whoever may read ``/readyz/*``
(system:monitoring), as ``ok`` or ``internal server error: <reason>``.

Readiness asks whether this server can serve now: storage that cannot commit fails
it. Liveness asks whether restarting would help: a read-only or full database stays
so after a restart (a restart loop helps nobody), so storage is not a liveness
check; a dead writer thread or log follower is.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response

# None when the check passes, else why not (shown only on /<endpoint>/<check>).
Check = Callable[[], Awaitable[str | None]]


@dataclass(frozen=True)
class Checks:
    """The ordered, named checks behind one endpoint (``livez``, ``readyz``, ``healthz``)."""

    endpoint: str
    checks: Sequence[tuple[str, Check]]

    async def root(self, request: Request) -> Response:
        params = request.query_params
        excluded = set(params.getlist("exclude"))
        lines: list[str] = []
        failed = False
        for name, check in self.checks:
            if name in excluded:
                excluded.discard(name)
                lines.append(f"[+]{name} excluded: ok")
                continue
            if await check() is None:
                lines.append(f"[+]{name} ok")
            else:
                failed = True
                lines.append(f"[-]{name} failed: reason withheld")
        if excluded:
            names = ", ".join(f"{n!r}" for n in sorted(excluded))
            lines.append(f"warn: some health checks cannot be excluded: no matches for {names}")
        if failed:
            return _text("\n".join([*lines, f"{self.endpoint} check failed"]) + "\n", 503)
        if "verbose" not in params:
            return _text("ok", 200)
        return _text("\n".join([*lines, f"{self.endpoint} check passed"]) + "\n", 200)

    async def one(self, request: Request) -> Response:
        wanted = request.path_params["check"]
        for name, check in self.checks:
            if name == wanted:
                why = await check()
                if why is None:
                    return _text("ok", 200)
                return _text(f"internal server error: {why}\n", 503)
        return _text("404 page not found\n", 404)


def _text(body: str, status: int) -> Response:
    return PlainTextResponse(body, status_code=status,
                             headers={"X-Content-Type-Options": "nosniff"})


async def ping() -> str | None:
    """The event loop answered (the request got this far)."""
    return None
