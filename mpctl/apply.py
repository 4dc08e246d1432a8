"""Client-side ``apply``: create the object, or patch the live one toward the manifest.

Like ``kubectl apply`` (client-side), the applied manifest is recorded in the
annotation ``kubectl.kubernetes.io/last-applied-configuration``; on the next
apply a three-way comparison decides the patch:

* fields of the new manifest that differ from the live object are set (a field the
  manifest does not mention is left alone, so server-filled fields such as
  ``spec.clusterIP``, defaults and ``status`` are never sent);
* fields that were in the last applied manifest but are gone from the new one are
  deleted (``null`` in a JSON merge patch);
* lists are compared element by element against the live list, looking only at the
  keys the manifest sets (so server defaults inside list items don't count as a
  difference) and against the last applied list (so removing a key inside an item
  does); a changed list is sent whole (merge-patch semantics), with the node ports
  the server allocated carried over so they survive.

The pure part (``prepare``, ``compute_patch``) is tested without a server;
``apply_manifest`` does the I/O.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Mapping
from typing import Any

from apimachinery import services
from apimachinery.kinds import Kind, by_kind
from apimachinery.tables import resource_name
from client.errors import ApiError, ConnectionFailed, NotFound

from .manifests import Manifest

LAST_APPLIED = "kubectl.kubernetes.io/last-applied-configuration"
FIELD_MANAGER = "kubectl-client-side-apply"

# metadata the server owns: never taken from a manifest, never sent.
SERVER_METADATA = ("resourceVersion", "uid", "creationTimestamp", "generation",
                   "managedFields", "deletionTimestamp", "deletionGracePeriodSeconds",
                   "selfLink")
# allocated by the server; dropping them from a manifest must not send a delete.
PROTECTED_PATHS = {("spec", "clusterIP"), ("spec", "clusterIPs"),
                   ("spec", "healthCheckNodePort")}


class ApplyError(ValueError):
    """A manifest that cannot be applied as given; message fit for a user."""


class ApplyFailed(Exception):
    """The server refused one object; ``action`` says which step, for kubectl's line
    ``Error from server (Invalid): error when creating "svc.yaml": ...``."""

    def __init__(self, action: str, error: ApiError) -> None:
        super().__init__(f"error when {action}: {error.message}")
        self.action = action
        self.error = error


def resolve_namespace(obj: Mapping[str, Any], kind: Kind, flag_namespace: str | None,
                      default_namespace: str) -> str | None:
    """Manifest namespace, else ``-n``, else the config default; None for cluster-scoped kinds.

    An explicit ``-n`` that contradicts the manifest is an error, as in kubectl.
    """
    if not kind.namespaced:
        return None
    ns = (obj.get("metadata") or {}).get("namespace")
    if ns and flag_namespace and ns != flag_namespace:
        raise ApplyError(
            f'the namespace from the provided object "{ns}" does not match the namespace '
            f'"{flag_namespace}". You must pass \'--namespace={ns}\' to perform this operation.')
    return ns or flag_namespace or default_namespace


def prepare(obj: Mapping[str, Any], kind: Kind, namespace: str | None) -> dict[str, Any]:
    """The desired object: the manifest without server-owned fields, namespace set (or
    removed for cluster-scoped kinds), without the last-applied annotation."""
    out = copy.deepcopy(dict(obj))
    out.pop("status", None)
    meta = out.setdefault("metadata", {})
    for key in SERVER_METADATA:
        meta.pop(key, None)
    if namespace:
        meta["namespace"] = namespace
    else:
        meta.pop("namespace", None)
    annotations = meta.get("annotations")
    if isinstance(annotations, dict):
        annotations.pop(LAST_APPLIED, None)
    return out


def last_applied_text(desired: Mapping[str, Any]) -> str:
    """The annotation value kubectl writes: compact JSON with sorted keys, ``annotations``
    present (possibly empty), and a trailing newline."""
    obj = copy.deepcopy(dict(desired))
    meta = obj.setdefault("metadata", {})
    annotations = dict(meta.get("annotations") or {})
    annotations.pop(LAST_APPLIED, None)
    meta["annotations"] = annotations
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False) + "\n"


def with_last_applied(desired: Mapping[str, Any]) -> dict[str, Any]:
    """The object to send: ``desired`` plus its last-applied annotation."""
    out = copy.deepcopy(dict(desired))
    meta = out.setdefault("metadata", {})
    annotations = dict(meta.get("annotations") or {})
    annotations[LAST_APPLIED] = last_applied_text(desired)
    meta["annotations"] = annotations
    return out


def last_applied_of(live: Mapping[str, Any]) -> dict[str, Any] | None:
    """The manifest recorded on a live object, or None (absent or unreadable)."""
    text = ((live.get("metadata") or {}).get("annotations") or {}).get(LAST_APPLIED)
    if not text:
        return None
    try:
        value = json.loads(text)
    except (TypeError, ValueError):
        return None
    return value if isinstance(value, dict) else None


def _scalar_equal(a: Any, b: Any) -> bool:
    if isinstance(a, bool) or isinstance(b, bool):
        return a is b
    return a == b


def covers(want: Any, have: Any) -> bool:
    """True when ``have`` already has everything ``want`` says (extra keys in ``have``
    are allowed; a ``None`` in ``want`` means the key must be absent)."""
    if isinstance(want, dict):
        if not isinstance(have, dict):
            return False
        for key, value in want.items():
            if value is None:
                if have.get(key) is not None:
                    return False
            elif key not in have or not covers(value, have[key]):
                return False
        return True
    if isinstance(want, list):
        return (isinstance(have, list) and len(want) == len(have)
                and all(covers(a, b) for a, b in zip(want, have, strict=True)))
    return _scalar_equal(want, have)


def _diff(last: Any, desired: Mapping[str, Any], live: Any, path: tuple[str, ...]) -> dict:
    last = last if isinstance(last, dict) else {}
    live = live if isinstance(live, dict) else {}
    patch: dict[str, Any] = {}
    for key, want in desired.items():
        have = live.get(key)
        prev = last.get(key)
        if want is None:
            if have is not None:
                patch[key] = None
        elif isinstance(want, dict) and isinstance(have, dict):
            sub = _diff(prev, want, have, (*path, key))
            if sub:
                patch[key] = sub
        elif isinstance(want, list):
            if not covers(want, have) or (prev is not None and prev != want):
                patch[key] = copy.deepcopy(want)
        elif isinstance(want, dict):
            patch[key] = copy.deepcopy(want)
        elif not _scalar_equal(want, have):
            patch[key] = want
    for key in last:
        if key in desired or (*path, key) in PROTECTED_PATHS:
            continue
        if live.get(key) is not None:
            patch[key] = None
    return patch


def _keep_node_ports(patch: dict[str, Any], desired: Mapping[str, Any],
                     live: Mapping[str, Any]) -> None:
    """A ports list sent whole keeps the node ports the server allocated for it."""
    ports = (patch.get("spec") or {}).get("ports") if isinstance(patch.get("spec"), dict) \
        else None
    if not isinstance(ports, list):
        return
    spec = desired.get("spec") or {}
    live_spec = live.get("spec") or {}
    if not services.has_node_ports(spec if spec.get("type") else live_spec):
        return  # the manifest's type, else the live one's, has no node ports to keep
    allocated = {}
    for p in live_spec.get("ports") or []:
        if isinstance(p, dict) and p.get("nodePort"):
            allocated[(p.get("port"), p.get("protocol") or "TCP")] = p["nodePort"]
    for p in ports:
        if isinstance(p, dict) and not p.get("nodePort"):
            node_port = allocated.get((p.get("port"), p.get("protocol") or "TCP"))
            if node_port:
                p["nodePort"] = node_port


def compute_patch(last_applied: Mapping[str, Any] | None, desired: Mapping[str, Any],
                  live: Mapping[str, Any]) -> dict[str, Any] | None:
    """The JSON merge patch taking ``live`` to ``desired``, or None when nothing differs.

    ``desired`` is what will be recorded (it should carry the new last-applied
    annotation, so a changed record alone makes a patch); ``last_applied`` is the
    previously recorded manifest, used only to find fields removed since.
    """
    patch = _diff(last_applied, desired, live, ())
    if kind_is_service(desired):
        _keep_node_ports(patch, desired, live)
    return patch or None


def kind_is_service(obj: Mapping[str, Any]) -> bool:
    return obj.get("kind") == "Service" and obj.get("apiVersion") == "v1"


# --------------------------------------------------------------------------- I/O

def apply_manifest(client: Any, manifest: Manifest, *, flag_namespace: str | None,
                   default_namespace: str) -> str:
    """Apply one object; return kubectl's line (``service/web created|configured|unchanged``).

    Raises ``UnknownKind`` or ``ApplyError`` for the manifest itself, ``ApplyFailed``
    wrapping the server's refusal, and ``ConnectionFailed`` unwrapped (nothing more
    can succeed then).
    """
    obj = manifest.obj
    kind = by_kind(str(obj.get("apiVersion")), str(obj.get("kind")))
    name = (obj.get("metadata") or {}).get("name")
    if not name:
        raise ApplyError("cannot use generate name with apply")
    namespace = resolve_namespace(obj, kind, flag_namespace, default_namespace)
    desired = with_last_applied(prepare(obj, kind, namespace))
    what = f"{resource_name(kind)}/{name}"
    action = "retrieving current configuration of"
    try:
        try:
            live = client.get(kind, name, namespace)
        except NotFound:
            action = "creating"
            client.create(kind, desired, namespace)
            return f"{what} created"
        patch = compute_patch(last_applied_of(live), desired, live)
        if patch is None:
            return f"{what} unchanged"
        action = "applying patch to"
        client.patch(kind, name, patch, namespace=namespace, patch_type="merge",
                     field_manager=FIELD_MANAGER)
        return f"{what} configured"
    except ConnectionFailed:
        raise
    except ApiError as exc:
        raise ApplyFailed(action, exc) from exc
