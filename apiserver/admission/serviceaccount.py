"""ServiceAccount admission (mutating): every new pod runs as a ServiceAccount.

A pod created without ``spec.serviceAccountName`` gets ``default``, as
Kubernetes' ServiceAccount plugin does; mirror pods (made by a node) are left
alone. An update may not change the name: pod validation already keeps the spec
fixed. Unlike Kubernetes this does not refuse a pod whose ServiceAccount does not
exist yet: a server running without the controllers has none.
"""

from __future__ import annotations

from dataclasses import dataclass

from apiserver.admission import CREATE, Attributes

DEFAULT_SERVICE_ACCOUNT = "default"
MIRROR_ANNOTATION = "kubernetes.io/config.mirror"


@dataclass(frozen=True)
class ServiceAccountDefault:
    def admit(self, attrs: Attributes) -> None:
        if (attrs.resource != "pods" or attrs.group or attrs.subresource
                or attrs.operation != CREATE or not isinstance(attrs.obj, dict)):
            return
        meta = attrs.obj.get("metadata")
        annotations = meta.get("annotations") if isinstance(meta, dict) else None
        if isinstance(annotations, dict) and MIRROR_ANNOTATION in annotations:
            return
        spec = attrs.obj.get("spec")
        if isinstance(spec, dict) and not spec.get("serviceAccountName"):
            spec["serviceAccountName"] = DEFAULT_SERVICE_ACCOUNT
