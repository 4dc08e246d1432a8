"""The Kubernetes ``Status`` vocabulary, once for both ends of the API.

The API server renders its errors as ``Status`` bodies and every client reads
them back, so the facts they must agree on live here: which HTTP code goes with
each ``reason`` (``metav1.StatusReason``), the shape of a ``Status`` body, the
``details`` naming the object, and the messages Kubernetes writes (``services
"web" not found``), which mpctl and kubectl print verbatim. The exception
classes stay on each side: the server raises to render, a client raises from a
response.
"""

from __future__ import annotations

from typing import Any, TypeGuard

# reason → the HTTP code an answer with that reason carries
CODES: dict[str, int] = {
    "BadRequest": 400,
    "Unauthorized": 401,
    "Forbidden": 403,
    "NotFound": 404,
    "MethodNotAllowed": 405,
    "NotAcceptable": 406,
    "AlreadyExists": 409,
    "Conflict": 409,  # after AlreadyExists: the reason a bare 409 gets (see REASONS)
    "Expired": 410,
    "RequestEntityTooLarge": 413,
    "UnsupportedMediaType": 415,
    "Invalid": 422,
    "TooManyRequests": 429,
    "InternalError": 500,
    "ServiceUnavailable": 503,
    "Timeout": 504,
}

# HTTP code → the reason an answer without a Status body (or without a reason) has;
# where two reasons share a code the later one in CODES is the general one.
REASONS: dict[int, str] = {code: reason for reason, code in CODES.items()}

UNKNOWN = "Unknown"


def reason_for(code: int) -> str:
    """The reason a bare HTTP ``code`` stands for; ``Unknown`` outside the table."""
    return REASONS.get(code, UNKNOWN)


def failure(code: int, reason: str, message: str,
            details: dict[str, Any] | None = None) -> dict[str, Any]:
    """A ``Status`` body for a refused request, keys in the order the server writes them."""
    body: dict[str, Any] = {"kind": "Status", "apiVersion": "v1", "metadata": {},
                            "status": "Failure", "message": message, "reason": reason,
                            "code": code}
    if details:
        body["details"] = details
    return body


def is_status(data: object) -> TypeGuard[dict[str, Any]]:
    """True for a decoded body that is a ``Status`` (not an object, not a foreign page)."""
    return isinstance(data, dict) and data.get("kind") == "Status"


# The cause a create in a deleting namespace is refused with: controllers ignore that
# refusal (the objects would go with the namespace) and report every other one.
NAMESPACE_TERMINATING = "NamespaceTerminating"


def object_details(plural: str, name: str, group: str = "") -> dict[str, Any]:
    """``details`` naming one object: its name, its resource as ``kind``, and any group."""
    details: dict[str, Any] = {"name": name, "kind": plural}
    if group:
        details["group"] = group
    return details


def qualified(plural: str, group: str = "") -> str:
    """``services`` or ``leases.coordination.k8s.io``: how messages name a resource."""
    return f"{plural}.{group}" if group else plural


# how Kubernetes words a refusal about one object, by reason ({what} is ``qualified``)
_OBJECT_MESSAGES = {
    "NotFound": '{what} "{name}" not found',
    "AlreadyExists": '{what} "{name}" already exists',
    # a write against a stale resourceVersion
    "Conflict": 'Operation cannot be fulfilled on {what} "{name}": the object has been '
                "modified; please apply your changes to the latest version and try again",
}


def object_message(reason: str, plural: str, name: str, group: str = "") -> str:
    """The message for a ``NotFound``, ``AlreadyExists`` or ``Conflict`` about one object."""
    return _OBJECT_MESSAGES[reason].format(what=qualified(plural, group), name=name)
