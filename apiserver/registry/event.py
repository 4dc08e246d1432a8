"""Events (core/v1): no defaults, no status; selectable by the object they are about."""

from __future__ import annotations

from apimachinery import kinds, names, tables
from apiserver.registry.strategy import Strategy
from apiserver.validation import Rules, event


class EventStrategy(Strategy):
    kind = kinds.EVENT
    rules = Rules(names.is_dns1123_subdomain, event.validate_spec)
    extra_fields = (
        "involvedObject.kind", "involvedObject.namespace", "involvedObject.name",
        "involvedObject.uid", "involvedObject.apiVersion", "involvedObject.resourceVersion",
        "involvedObject.fieldPath", "reason", "reportingComponent", "source", "type")
    # Kubernetes' EventToSelectableFields: ``source`` is the reporting component.
    field_aliases = {"source": "source.component"}
    table = tables.EVENT_TABLE
    openapi_root = "CoreV1Event"


STRATEGY = EventStrategy()
