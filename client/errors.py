"""Typed API errors for every client of the miniplane API server.

    ApiError (code, reason, message, status)
    ├── BadRequest            400  malformed body, bad selector, strict decoding
    ├── Unauthorized          401
    ├── Forbidden             403  e.g. creating into a terminating namespace
    ├── NotFound              404
    ├── MethodNotAllowed      405
    ├── AlreadyExists         409  reason AlreadyExists (create of an existing name)
    ├── Conflict              409  any other reason: stale resourceVersion, precondition
    ├── Expired               410  resourceVersion or continue token compacted: relist
    ├── UnsupportedMediaType  415
    ├── Invalid               422  .causes names the fields
    ├── TooManyRequests       429
    ├── ServerError           5xx  (InternalError 500, ServiceUnavailable 503, Timeout 504)
    └── ConnectionFailed      0    transport error; chains the httpx exception

Why our own tree instead of httpx's ``HTTPStatusError``: callers decide on the
*meaning* (not found → nothing to do, conflict → re-read and retry, expired →
relist), and that meaning lives in the Kubernetes ``Status`` body, not in the
HTTP library. The body is decoded once, here; a status code outside the tree
gives a plain ``ApiError``. A body that is not a ``Status`` (a proxy's HTML page,
a crash) gets a synthesized ``Status`` with its text truncated, so ``.status``
is always a dict of the same shape.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

import orjson

from apimachinery import status as api_status

# Enough of a foreign body to recognise it in a log line, not enough to flood it.
_MAX_FOREIGN_BODY = 256

class ApiError(Exception):
    """An error answer from the API server, or no answer at all (``code`` 0).

    ``str(error)`` is the server's message, which is what ``kubectl`` prints after
    ``Error from server (<reason>):``.
    """

    default_code: ClassVar[int] = 0
    default_reason: ClassVar[str] = api_status.UNKNOWN

    def __init_subclass__(cls, **kwargs: Any) -> None:
        # a subclass names its reason; the code comes from the table the server uses too
        super().__init_subclass__(**kwargs)
        if "default_code" not in vars(cls):
            cls.default_code = api_status.CODES[cls.default_reason]

    def __init__(self, message: str, *, code: int | None = None, reason: str | None = None,
                 status: dict[str, Any] | None = None, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.code = self.default_code if code is None else code
        self.reason = reason or self.default_reason
        self.status = status if status is not None else api_status.failure(
            self.code, self.reason, message)
        self.retry_after = retry_after

    @property
    def details(self) -> dict[str, Any]:
        """The Status ``details`` (name, kind, group, causes), or an empty dict."""
        details = self.status.get("details")
        return details if isinstance(details, dict) else {}

    def __repr__(self) -> str:
        return f"{type(self).__name__}(code={self.code}, reason={self.reason!r}, " \
               f"message={self.message!r})"


class BadRequest(ApiError):
    default_reason = "BadRequest"


class Unauthorized(ApiError):
    default_reason = "Unauthorized"


class Forbidden(ApiError):
    default_reason = "Forbidden"


class NotFound(ApiError):
    default_reason = "NotFound"


class MethodNotAllowed(ApiError):
    default_reason = "MethodNotAllowed"


class AlreadyExists(ApiError):
    default_reason = "AlreadyExists"


class Conflict(ApiError):
    default_reason = "Conflict"


class Expired(ApiError):
    default_reason = "Expired"


class UnsupportedMediaType(ApiError):
    default_reason = "UnsupportedMediaType"


class Invalid(ApiError):
    default_reason = "Invalid"

    @property
    def causes(self) -> list[dict[str, str]]:
        """One ``{"field", "message", "reason"}`` per rejected field, as the server sent them."""
        causes = self.details.get("causes")
        if not isinstance(causes, list):
            return []
        return [{"field": str(c.get("field", "")), "message": str(c.get("message", "")),
                 "reason": str(c.get("reason", ""))} for c in causes if isinstance(c, dict)]


class TooManyRequests(ApiError):
    default_reason = "TooManyRequests"


class ServerError(ApiError):
    default_reason = "InternalError"


class ConnectionFailed(ApiError):
    """No HTTP answer: refused, reset, timed out, or a stream cut mid-body.

    ``attempts`` lists ``(server, reason)`` for every API server this request
    tried, in order (several when the client has a list of servers).
    ``next_server`` names the server the client moved to that has not failed
    since its last success: a caller that loops may retry there at once
    instead of backing off.
    """

    default_code, default_reason = 0, "ConnectionFailed"

    def __init__(self, message: str, *, attempts: tuple[tuple[str, str], ...] = (),
                 next_server: str | None = None, **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        self.attempts = attempts
        self.next_server = next_server


# the class for a code; 409 with reason AlreadyExists and every 5xx are decided in error_class
_BY_CODE: dict[int, type[ApiError]] = {cls.default_code: cls for cls in (
    BadRequest, Unauthorized, Forbidden, NotFound, MethodNotAllowed, Conflict, Expired,
    UnsupportedMediaType, Invalid, TooManyRequests)}


def namespace_terminating(error: object) -> bool:
    """A create refused because its namespace is being deleted (Kubernetes' status
    cause), as opposed to any other 403 (RBAC, Pod Security, quota)."""
    if not isinstance(error, Forbidden):
        return False
    causes = (error.status.get("details") or {}).get("causes") or []
    return any(c.get("type") == api_status.NAMESPACE_TERMINATING for c in causes
               if isinstance(c, dict))


def error_class(code: int, reason: str) -> type[ApiError]:
    """The most specific class for an HTTP code and a Status reason."""
    if code == 409 and reason == "AlreadyExists":
        return AlreadyExists
    if code >= 500:
        return ServerError
    return _BY_CODE.get(code, ApiError)


def error_from_response(code: int, body: bytes | str | dict[str, Any] | None, *,
                        headers: Mapping[str, str] | None = None) -> ApiError:
    """Build the typed error for an HTTP error answer (or a watch ERROR event's Status).

    ``code`` is the HTTP status; when it is not an error code (a watch ERROR event
    arrives on a 200 stream) the Status body's own ``code`` is used. ``headers``
    (optional, any mapping) supplies ``Retry-After`` when the body has no
    ``details.retryAfterSeconds``.
    """
    status = _decode_status(body)
    body_code = status.get("code") if status else None
    if code < 400 and isinstance(body_code, int) and body_code >= 400:
        code = body_code
    if status is not None:
        reason = str(status.get("reason") or api_status.reason_for(code))
        message = str(status.get("message") or reason)
    else:
        reason = api_status.reason_for(code)
        message = _foreign_text(body) or reason
        status = api_status.failure(code, reason, message)
    cls = error_class(code, reason)
    return cls(message, code=code, reason=reason, status=status,
               retry_after=_retry_after(status, headers))


def is_retriable(error: BaseException) -> bool:
    """True when trying the same request again later may succeed unchanged."""
    return isinstance(error, (ConnectionFailed, TooManyRequests, ServerError))


def _decode_status(body: bytes | str | dict[str, Any] | None) -> dict[str, Any] | None:
    if isinstance(body, dict):
        data: Any = body
    elif not body:
        return None
    else:
        try:
            data = orjson.loads(body)
        except orjson.JSONDecodeError:
            return None
    return data if api_status.is_status(data) else None


def _foreign_text(body: bytes | str | dict[str, Any] | None) -> str:
    if body is None:
        return ""
    if isinstance(body, dict):
        # FastAPI's own {"detail": ...} before the server's handlers run, or anything else.
        text = str(body["detail"]) if "detail" in body else orjson.dumps(body).decode()
    elif isinstance(body, bytes):
        text = body.decode("utf-8", "replace")
        try:
            parsed = orjson.loads(body)
        except orjson.JSONDecodeError:
            parsed = None
        if isinstance(parsed, dict) and "detail" in parsed:
            text = str(parsed["detail"])
    else:
        text = body
    text = " ".join(text.split())
    return text if len(text) <= _MAX_FOREIGN_BODY else text[:_MAX_FOREIGN_BODY] + "…"


def _retry_after(status: dict[str, Any], headers: Mapping[str, str] | None) -> float | None:
    details = status.get("details")
    if isinstance(details, dict):
        seconds = details.get("retryAfterSeconds")
        if isinstance(seconds, (int, float)) and seconds > 0:
            return float(seconds)
    if headers is not None:
        value = headers.get("retry-after") or headers.get("Retry-After")
        if value:
            try:
                return max(0.0, float(value))
            except ValueError:
                return None  # an HTTP date: rare for an API server, not worth parsing
    return None
