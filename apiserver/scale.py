"""The ``/scale`` subresource: a workload's replica count as an ``autoscaling/v1`` Scale.

Kubernetes serves it per kind (``ScaleREST`` in each of ``pkg/registry/apps/…``);
here one piece serves every kind that lists ``scale`` among its subresources
(ReplicaSet, Deployment), because they all keep the wanted count in
``spec.replicas``, the current one in ``status.replicas`` and their pods by
``spec.selector``. A Scale is a view: reading one reads the owner, writing one
writes the owner's ``spec.replicas`` through the owner's own update path (its
defaults, validation, admission, generation and resourceVersion rules).

Pure functions; ``apiserver.handlers`` does the I/O.
"""

from __future__ import annotations

from typing import Any

from apimachinery import tables
from apiserver.errors import BadRequest, FieldError, Invalid, invalid
from apiserver.validation.fields import is_int

GROUP, VERSION, KIND = "autoscaling", "v1", "Scale"
API_VERSION = f"{GROUP}/{VERSION}"
SUBRESOURCE = "scale"
OPENAPI_ROOT = "V1Scale"  # the body's model in apiserver/openapi/schemas.json
VERBS = ("get", "patch", "update")
# The owner's metadata a Scale carries (Kubernetes' scaleFromDeployment and kin).
_META = ("name", "namespace", "uid", "resourceVersion", "creationTimestamp")


def scale_of(owner: dict) -> dict:
    """The Scale of a stored owner object."""
    meta = owner.get("metadata") or {}
    spec = owner.get("spec") or {}
    status = owner.get("status") or {}
    replicas = status.get("replicas")
    return {
        "kind": KIND, "apiVersion": API_VERSION,
        "metadata": {k: meta[k] for k in _META if k in meta},
        "spec": {"replicas": spec.get("replicas", 0)},
        "status": {"replicas": replicas if is_int(replicas) else 0,
                   "selector": tables.selector_text(spec.get("selector"))},
    }


def scaled(owner: dict, scale: Any, name: str) -> dict:
    """``owner`` with the replica count of ``scale`` (a client's PUT body or patched
    Scale), carrying the Scale's resourceVersion so a stale one is a Conflict.

    Raises Invalid (``spec.replicas``) or BadRequest (not a Scale of this object)
    before anything is written. ``owner`` is not changed.
    """
    if not isinstance(scale, dict):
        raise BadRequest("the request body must be a Scale object")
    api_version, kind = scale.get("apiVersion"), scale.get("kind")
    if api_version not in (None, "", API_VERSION) or kind not in (None, "", KIND):
        raise BadRequest(f"the API version in the data ({api_version}) and kind ({kind}) do "
                         f"not match the expected {API_VERSION} {KIND}")
    meta = scale.get("metadata")
    meta = meta if isinstance(meta, dict) else {}
    if meta.get("name") not in (None, "", name):
        raise BadRequest(f"the name of the object ({meta['name']}) does not match the name on "
                         f"the URL ({name})")
    spec = scale.get("spec")
    spec = spec if isinstance(spec, dict) else {}
    replicas = spec.get("replicas", 0)  # int32 without omitempty's pointer: absent is 0
    errors: list[FieldError] = []
    if not is_int(replicas):
        errors.append(invalid("spec.replicas", replicas, "must be an integer"))
    elif replicas < 0:
        errors.append(invalid("spec.replicas", replicas,
                              "must be greater than or equal to 0"))
    if errors:
        raise Invalid(KIND, name, errors, GROUP)
    out = {**owner, "metadata": dict(owner.get("metadata") or {}),
           "spec": {**(owner.get("spec") or {}), "replicas": replicas}}
    wanted_rv = meta.get("resourceVersion")
    if wanted_rv:
        out["metadata"]["resourceVersion"] = str(wanted_rv)
    else:
        out["metadata"].pop("resourceVersion", None)  # no precondition: last write wins
    return out
