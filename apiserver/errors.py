"""API errors, rendered as Kubernetes ``Status`` objects in one place.

    APIError (code, reason, message)
    ├── BadRequest          400  malformed body, bad selector, strict decoding
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
    ├── InternalError       500
    └── Timeout             504  resourceVersion from the future

Handlers raise these; the app turns every one into a ``Status`` JSON body with the
same HTTP code, so no handler builds error bodies itself.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


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
    return str(value)


class APIError(Exception):
    code = 500
    reason = "InternalError"

    def __init__(self, message: str, *, details: dict[str, Any] | None = None,
                 headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.details = details or {}
        self.headers = headers or {}

    def status(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "code": self.code,
        }
        if self.details:
            body["details"] = self.details
        return body


class BadRequest(APIError):
    code, reason = 400, "BadRequest"


class Forbidden(APIError):
    code, reason = 403, "Forbidden"


class NotFound(APIError):
    code, reason = 404, "NotFound"

    @classmethod
    def of(cls, plural: str, name: str, group: str = "") -> NotFound:
        details = {"name": name, "kind": plural}
        if group:
            details["group"] = group
        what = f"{plural}.{group}" if group else plural
        return cls(f'{what} "{name}" not found', details=details)


class MethodNotAllowed(APIError):
    code, reason = 405, "MethodNotAllowed"


class AlreadyExists(APIError):
    code, reason = 409, "AlreadyExists"

    @classmethod
    def of(cls, plural: str, name: str, group: str = "") -> AlreadyExists:
        details = {"name": name, "kind": plural}
        if group:
            details["group"] = group
        what = f"{plural}.{group}" if group else plural
        return cls(f'{what} "{name}" already exists', details=details)


class Conflict(APIError):
    code, reason = 409, "Conflict"

    @classmethod
    def modified(cls, plural: str, name: str, group: str = "") -> Conflict:
        what = f"{plural}.{group}" if group else plural
        details = {"name": name, "kind": plural}
        if group:
            details["group"] = group
        return cls(f'Operation cannot be fulfilled on {what} "{name}": the object has been '
                   "modified; please apply your changes to the latest version and try again",
                   details=details)


class Gone(APIError):
    code, reason = 410, "Expired"


class RequestTooLarge(APIError):
    code, reason = 413, "RequestEntityTooLarge"


class UnsupportedMediaType(APIError):
    code, reason = 415, "UnsupportedMediaType"


class Invalid(APIError):
    code, reason = 422, "Invalid"

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

    code, reason = 422, "Invalid"


class InternalError(APIError):
    code, reason = 500, "InternalError"


class Timeout(APIError):
    code, reason = 504, "Timeout"
