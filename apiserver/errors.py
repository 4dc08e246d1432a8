"""API errors, rendered as Kubernetes ``Status`` objects in one place.

    APIError (code, reason, message)
    ├── BadRequest          400  malformed body, bad selector, strict decoding
    ├── Unauthorized        401  no valid credentials (authentication failed)
    ├── Forbidden           403  e.g. creating into a terminating namespace
    ├── NotFound            404
    ├── MethodNotAllowed    405
    ├── AlreadyExists       409
    ├── Conflict            409  stale resourceVersion, failed precondition
    ├── Gone                410  reason Expired: resourceVersion or continue token compacted
    ├── RequestTooLarge     413
    ├── UnsupportedMediaType 415
    ├── Invalid             422  carries FieldErrors → details.causes
    ├── Unprocessable       422  a patch that does not apply
    ├── TooManyRequests     429  over the in-flight limit (Retry-After)
    ├── InternalError       500
    └── Timeout             504  resourceVersion from the future, request timeout

Handlers raise these; the app turns every one into a ``Status`` JSON body with the
same HTTP code, so no handler builds error bodies itself.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar, Self

from apimachinery import status as api_status


@dataclass(frozen=True)
class FieldError:
    """One validation failure, as Kubernetes' field.Error.

    ``type`` is the cause type: FieldValueInvalid, FieldValueRequired,
    FieldValueNotSupported, FieldValueDuplicate, FieldValueForbidden, FieldValueTooLong.
    """

    field: str
    type: str
    message: str
    value: Any = None

    def describe(self) -> str:
        """The text Kubernetes puts in a cause and in the Status message."""
        label = {
            "FieldValueInvalid": "Invalid value",
            "FieldValueRequired": "Required value",
            "FieldValueNotSupported": "Unsupported value",
            "FieldValueDuplicate": "Duplicate value",
            "FieldValueForbidden": "Forbidden",
            "FieldValueTooLong": "Too long",
            "FieldValueTooMany": "Too many",
        }.get(self.type, "Invalid value")
        if self.type in ("FieldValueRequired", "FieldValueForbidden", "FieldValueTooLong",
                         "FieldValueTooMany"):
            return f"{label}: {self.message}" if self.message else label
        return f"{label}: {_show(self.value)}: {self.message}" if self.message else \
            f"{label}: {_show(self.value)}"


def invalid(field: str, value: Any, message: str) -> FieldError:
    return FieldError(field, "FieldValueInvalid", message, value)


def required(field: str, message: str = "") -> FieldError:
    return FieldError(field, "FieldValueRequired", message)


def not_supported(field: str, value: Any, supported: list[str]) -> FieldError:
    return FieldError(field, "FieldValueNotSupported",
                      "supported values: " + ", ".join(f'"{s}"' for s in supported), value)


def duplicate(field: str, value: Any) -> FieldError:
    return FieldError(field, "FieldValueDuplicate", "", value)


def forbidden(field: str, message: str) -> FieldError:
    return FieldError(field, "FieldValueForbidden", message)


def _show(value: Any) -> str:
    if isinstance(value, str):
        return f'"{value}"'
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list) and value and all(isinstance(v, str) for v in value):
        # Go's %#v of a []string, as Kubernetes prints e.g. spec.clusterIPs
        return "[]string{" + ", ".join(f'"{v}"' for v in value) + "}"
    return str(value)


class APIError(Exception):
    """A refusal a handler raises; the app renders ``status()`` with the HTTP ``code``.

    A subclass names only its ``reason``: the code comes from the shared table
    (``apimachinery.status.CODES``), so server and clients cannot disagree on it.
    """

    code: ClassVar[int] = 500
    reason: ClassVar[str] = "InternalError"

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        cls.code = api_status.CODES[cls.reason]

    def __init__(self, message: str, *, details: dict[str, Any] | None = None,
                 headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.details = details or {}
        self.headers = headers or {}

    def status(self) -> dict[str, Any]:
        return api_status.failure(self.code, self.reason, self.message, self.details)


class BadRequest(APIError):
    reason = "BadRequest"


class Unauthorized(APIError):
    reason = "Unauthorized"


class Forbidden(APIError):
    reason = "Forbidden"


class _ObjectError(APIError):
    """A refusal about one named object, worded as Kubernetes words its reason."""

    @classmethod
    def of(cls, plural: str, name: str, group: str = "") -> Self:
        return cls(api_status.object_message(cls.reason, plural, name, group),
                   details=api_status.object_details(plural, name, group))


class NotFound(_ObjectError):
    reason = "NotFound"


class MethodNotAllowed(APIError):
    reason = "MethodNotAllowed"


class AlreadyExists(_ObjectError):
    reason = "AlreadyExists"


class Conflict(_ObjectError):
    reason = "Conflict"

    @classmethod
    def modified(cls, plural: str, name: str, group: str = "") -> Self:
        """The object changed since the resourceVersion the write carried."""
        return cls.of(plural, name, group)


class Gone(APIError):
    reason = "Expired"


class RequestTooLarge(APIError):
    reason = "RequestEntityTooLarge"


class UnsupportedMediaType(APIError):
    reason = "UnsupportedMediaType"


class Invalid(APIError):
    reason = "Invalid"

    def __init__(self, kind: str, name: str, errors: list[FieldError], group: str = "") -> None:
        self.errors = errors
        text = ", ".join(f"{e.field}: {e.describe()}" for e in errors)
        if len(errors) > 1:
            text = f"[{text}]"
        details: dict[str, Any] = {
            "name": name,
            "kind": kind,
            "causes": [
                {"reason": e.type, "message": e.describe(), "field": e.field} for e in errors
            ],
        }
        if group:
            details["group"] = group
        super().__init__(f'{kind} "{name}" is invalid: {text}', details=details)


class Unprocessable(APIError):
    """A well-formed patch that does not apply to the stored object."""

    reason = "Invalid"


class InternalError(APIError):
    reason = "InternalError"


class Timeout(APIError):
    reason = "Timeout"


class TooManyRequests(APIError):
    """Shed load: ``details.retryAfterSeconds`` and a ``Retry-After`` header say when to
    come back (client-go and the kubernetes client retry by them)."""

    reason = "TooManyRequests"

    def __init__(self, message: str, retry_after: int) -> None:
        super().__init__(message, details={"retryAfterSeconds": retry_after},
                         headers={"Retry-After": str(retry_after)})
