"""The ``channel.k8s.io`` WebSocket framing of exec and attach (Kubernetes' remotecommand),
as pure functions: the node agent serves it, mpctl speaks it.

Every binary message is one byte of channel, then data: 0 stdin (client → agent),
1 stdout, 2 stderr, 3 the error channel (one ``metav1.Status`` JSON at the end: a
``Success``, or a ``Failure`` with reason ``NonZeroExitCode`` and the exit code as
the ``ExitCode`` cause, which kubectl turns into its own exit code), 4 resize
(``{"Width": w, "Height": h}``). ``v5`` adds 255, the close signal: ``[255, 0]``
from the client means its stdin has ended (``v4`` clients end stdin by closing).

    >>> parse(frame(STDOUT, b"hi"))
    (1, b'hi')
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

V5 = "v5.channel.k8s.io"
V4 = "v4.channel.k8s.io"
PROTOCOLS = (V5, V4)  # ours, preferred first

STDIN, STDOUT, STDERR, ERROR, RESIZE, CLOSE = 0, 1, 2, 3, 4, 255


def choose(offered: Sequence[str]) -> str | None:
    """The protocol to speak: the newest both sides know."""
    return next((p for p in PROTOCOLS if p in offered), None)


def frame(channel: int, data: bytes) -> bytes:
    return bytes((channel,)) + data


def parse(message: bytes) -> tuple[int, bytes]:
    if not message:
        raise ValueError("empty message")
    return message[0], message[1:]


def success() -> dict[str, Any]:
    return {"metadata": {}, "status": "Success"}


def exit_status(code: int, command: Sequence[str]) -> dict[str, Any]:
    """What kubelet reports when the command ended with ``code``."""
    if code == 0:
        return success()
    return {"metadata": {}, "status": "Failure",
            "message": f"command terminated with non-zero exit code: error executing "
                       f"command {list(command)}, exit code {code}",
            "reason": "NonZeroExitCode",
            "details": {"causes": [{"reason": "ExitCode", "message": str(code)}]}}


def failure(message: str) -> dict[str, Any]:
    return {"metadata": {}, "status": "Failure", "message": message,
            "reason": "InternalError"}


def status_frame(status: dict[str, Any]) -> bytes:
    return frame(ERROR, json.dumps(status).encode())


def terminal_size(data: bytes) -> tuple[int, int] | None:
    """(width, height) of a resize message, None if it is not one."""
    try:
        doc = json.loads(data)
        width, height = int(doc["Width"]), int(doc["Height"])
    except (ValueError, KeyError, TypeError):
        return None
    return (width, height) if 0 <= width < 65536 and 0 <= height < 65536 else None


def exit_code(status: dict[str, Any]) -> tuple[int, str | None]:
    """What a client makes of the error channel's ``Status``: (exit code, error).

    ``Success`` is (0, None); a ``NonZeroExitCode`` failure is its code and no error
    (the command ran and failed, which is no error of the connection); any other
    failure is (1, its message)."""
    if status.get("status") == "Success":
        return 0, None
    if status.get("reason") == "NonZeroExitCode":
        for cause in (status.get("details") or {}).get("causes") or []:
            if cause.get("reason") == "ExitCode":
                try:
                    return int(cause.get("message")), None
                except (TypeError, ValueError):
                    break
    return 1, str(status.get("message") or "the command failed")
