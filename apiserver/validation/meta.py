"""ObjectMeta rules shared by every kind (apimachinery ``ValidateObjectMeta[Update]``).

Also home of the label-map rule, which selectors and node selectors reuse.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from apimachinery import names
from apiserver.errors import duplicate, forbidden, invalid, required
from apiserver.validation.fields import FieldErrors, too_long

# Kubernetes' TotalAnnotationSizeLimitB: keys plus values, in bytes.
ANNOTATIONS_MAX_BYTES = 256 * 1024
ORPHAN, FOREGROUND = "orphan", "foregroundDeletion"

NameRule = Callable[[str], list[str]]


def validate_meta(errs: FieldErrors, obj: dict, *, name_rule: NameRule, namespaced: bool) -> dict:
    """Check ``obj.metadata``; returns it (``{}`` when absent or not an object)."""
    meta = errs.obj(obj.get("metadata"), "metadata") or {}
    name = errs.required_text(meta.get("name"), "metadata.name", "name or generateName is required")
    if name:
        errs.check(name, "metadata.name", name_rule)
    prefix = errs.text(meta.get("generateName"), "metadata.generateName")
    if prefix:
        for message in name_rule(_mask_trailing_dash(prefix)):
            errs.append(invalid("metadata.generateName", prefix, message))
    _check_namespace(errs, meta.get("namespace"), namespaced=namespaced)
    for key in ("uid", "resourceVersion", "creationTimestamp", "deletionTimestamp", "selfLink"):
        errs.text(meta.get(key), f"metadata.{key}")
    errs.at_least(meta.get("generation"), "metadata.generation", 0)
    errs.at_least(meta.get("deletionGracePeriodSeconds"), "metadata.deletionGracePeriodSeconds", 0)
    check_labels(errs, meta.get("labels"), "metadata.labels")
    check_annotations(errs, meta.get("annotations"), "metadata.annotations")
    _check_finalizers(errs, meta.get("finalizers"), "metadata.finalizers")
    _check_owner_references(errs, meta.get("ownerReferences"), "metadata.ownerReferences")
    for _ in errs.items(meta.get("managedFields"), "metadata.managedFields"):
        pass  # shape only: the server owns their content
    return meta


def validate_meta_update(errs: FieldErrors, meta: dict, old_meta: dict) -> None:
    """Identity fields never change; a deleting object may only lose finalizers."""
    for key in ("name", "namespace", "uid", "creationTimestamp"):
        errs.immutable(meta.get(key), old_meta.get(key), f"metadata.{key}")
    if old_meta.get("deletionTimestamp"):
        old = old_meta.get("finalizers")
        old = set(f for f in old if isinstance(f, str)) if isinstance(old, list) else set()
        new = meta.get("finalizers")
        new = [f for f in new if isinstance(f, str)] if isinstance(new, list) else []
        if added := sorted(set(new) - old):
            shown = ", ".join(f'"{f}"' for f in added)
            errs.append(forbidden("metadata.finalizers",
                                  "no new finalizers can be added if the object is being "
                                  f"deleted, found new finalizers []string{{{shown}}}"))


def check_labels(errs: FieldErrors, value: Any, path: str) -> None:
    """A label map: qualified-name keys, label values (also selectors, nodeSelector)."""
    for key, item in errs.string_map(value, path).items():
        errs.check(key, path, names.is_qualified_name)
        errs.check(item, path, names.is_valid_label_value)


def check_annotations(errs: FieldErrors, value: Any, path: str) -> None:
    annotations = errs.string_map(value, path)
    for key in annotations:
        # Kubernetes checks the lower-cased key: annotation keys may hold upper case.
        for message in names.is_qualified_name(key.lower()):
            errs.append(invalid(path, key, message))
    size = sum(_utf8_len(k) + _utf8_len(v) for k, v in annotations.items())
    if size > ANNOTATIONS_MAX_BYTES:
        errs.append(too_long(path, ANNOTATIONS_MAX_BYTES))


def _check_namespace(errs: FieldErrors, value: Any, *, namespaced: bool) -> None:
    namespace = errs.text(value, "metadata.namespace")
    if not namespaced:
        if namespace:
            errs.append(forbidden("metadata.namespace", "not allowed on this type"))
    elif not namespace:
        if value in (None, ""):
            errs.append(required("metadata.namespace", ""))
    else:
        errs.check(namespace, "metadata.namespace", names.is_dns1123_label)


def _check_finalizers(errs: FieldErrors, value: Any, path: str) -> None:
    seen: set[str] = set()
    for p, finalizer in errs.strings(value, path):
        errs.check(finalizer, p, names.is_qualified_name)
        if finalizer in seen:
            errs.append(duplicate(p, finalizer))
        seen.add(finalizer)
    if ORPHAN in seen and FOREGROUND in seen:
        errs.append(invalid(path, value, f"finalizer {ORPHAN} and {FOREGROUND} cannot be both set"))


def _check_owner_references(errs: FieldErrors, value: Any, path: str) -> None:
    controller = ""
    for p, ref in errs.items(value, path):
        api_version = errs.text(ref.get("apiVersion"), f"{p}.apiVersion")
        kind = errs.text(ref.get("kind"), f"{p}.kind")
        name = errs.text(ref.get("name"), f"{p}.name")
        uid = errs.text(ref.get("uid"), f"{p}.uid")
        if not _version_of(api_version or ""):
            errs.append(invalid(f"{p}.apiVersion", api_version, "version must not be empty"))
        for key, got in (("kind", kind), ("name", name), ("uid", uid)):
            if not got:
                errs.append(invalid(f"{p}.{key}", got, f"{key} must not be empty"))
        errs.boolean(ref.get("blockOwnerDeletion"), f"{p}.blockOwnerDeletion")
        if errs.boolean(ref.get("controller"), f"{p}.controller"):
            this = f"{kind}/{name}"
            if controller:
                errs.append(invalid(path, value, "Only one reference can have Controller set to "
                                    f'true. Found "true" in references for {controller} and {this}'))
            else:
                controller = this


def _version_of(api_version: str) -> str:
    """The version part of ``group/version`` (or of a bare ``v1``); "" if malformed."""
    parts = api_version.split("/")
    return parts[-1] if len(parts) <= 2 else ""


def _mask_trailing_dash(prefix: str) -> str:
    """Kubernetes' maskTrailingDash: a generateName may end in '-', the name it makes won't."""
    if len(prefix) > 1 and prefix.endswith("-"):
        return prefix[:-2] + "a"
    return prefix


def _utf8_len(text: str) -> int:
    return len(text.encode("utf-8", "surrogatepass"))
