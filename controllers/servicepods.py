"""Services ↔ Pods through the informer caches, for the controllers that follow both.

The EndpointSlice and Endpoints controllers both need, on a Pod event, the
Services whose selector matches it, and on a sync, a Service's Pods, without
scanning every object: Pods are indexed by each ``namespace/key=value`` label and
Services by each selector term (indexes registered once, shared by name).
"""

from __future__ import annotations

from apimachinery.kinds import POD, SERVICE
from controllers.backends import selector_of, selects
from controllers.informers import SharedInformers
from controllers.objects import Object, labels_of, namespace_of

POD_LABELS_INDEX = "labels"  # pods by "namespace/key=value" of each label
SERVICE_SELECTOR_INDEX = "selector"  # services by "namespace/key=value" of each selector term


def pod_label_terms(pod: Object) -> list[str]:
    ns = namespace_of(pod)
    return [f"{ns}/{k}={v}" for k, v in labels_of(pod).items()]


def selector_terms(service: Object) -> list[str]:
    ns = namespace_of(service)
    return [f"{ns}/{k}={v}" for k, v in selector_of(service).items()]


class ServicePods:
    """Index-backed lookups between the Service and Pod caches."""

    def __init__(self, informers: SharedInformers) -> None:
        self.services = informers.get(SERVICE)
        self.pods = informers.get(POD)
        informers.index(POD, POD_LABELS_INDEX, pod_label_terms)
        informers.index(SERVICE, SERVICE_SELECTOR_INDEX, selector_terms)

    def services_selecting(self, pod: Object) -> set[str]:
        """Keys of the Services whose selector matches ``pod``."""
        store = self.services.store
        keys: set[str] = set()
        for term in pod_label_terms(pod):
            keys.update(store.index_keys(SERVICE_SELECTOR_INDEX, term))
        return {k for k in keys if (s := store.get(k)) is not None and selects(s, pod)}

    def candidate_pods(self, service: Object) -> list[Object]:
        """Pods that may match: those carrying the selector's rarest term (a superset
        of the Service's Pods; ``controllers.backends`` filters)."""
        store = self.pods.store
        best: list[str] | None = None
        for term in selector_terms(service):
            keys = store.index_keys(POD_LABELS_INDEX, term)
            if best is None or len(keys) < len(best):
                best = keys
        return [p for k in best or [] if (p := store.get(k)) is not None]
