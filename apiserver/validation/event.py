"""Event rules, kept light (Kubernetes' legacy ``ValidateEvent``).

Events are written by the system about other objects; the one rule that matters
is that an event lives in its object's namespace ("default" for cluster objects),
so ``kubectl describe`` finds it.
"""

from __future__ import annotations

from apiserver.errors import invalid, required
from apiserver.validation.fields import FieldErrors

_TEXT_FIELDS = ("reason", "message", "type", "reportingComponent", "reportingInstance", "action",
                "firstTimestamp", "lastTimestamp", "eventTime")
_REF_FIELDS = ("kind", "namespace", "name", "uid", "apiVersion", "resourceVersion", "fieldPath")


def validate_spec(errs: FieldErrors, obj: dict, old: dict | None) -> None:
    raw = obj.get("involvedObject")
    involved = errs.obj(raw, "involvedObject")
    if raw is None:
        errs.append(required("involvedObject", ""))
    for key in _REF_FIELDS:
        errs.text((involved or {}).get(key), f"involvedObject.{key}")
    for key in _TEXT_FIELDS:
        errs.text(obj.get(key), key)
    errs.at_least(obj.get("count"), "count", 0)
    source = errs.obj(obj.get("source"), "source") or {}
    for key in ("component", "host"):
        errs.text(source.get(key), f"source.{key}")
    meta = obj.get("metadata")
    namespace = meta.get("namespace") if isinstance(meta, dict) else None
    if involved is not None and not obj.get("eventTime"):
        _check_namespace(errs, involved.get("namespace"), namespace)


def _check_namespace(errs: FieldErrors, involved_ns: object, namespace: object) -> None:
    if involved_ns:
        if involved_ns != namespace:
            errs.append(invalid("involvedObject.namespace", involved_ns,
                                "does not match event.namespace"))
    elif namespace not in (None, "", "default"):
        errs.append(invalid("involvedObject.namespace", involved_ns or "",
                            "does not match event.namespace"))
