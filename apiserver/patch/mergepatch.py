"""JSON Merge Patch (RFC 7386), content type ``application/merge-patch+json``.

Objects merge recursively, ``null`` deletes a member, anything else (lists included)
replaces the target value whole.
"""

from typing import Any

from ._json import deep_copy
from .errors import PatchError


def merge_patch(doc: dict, patch: dict) -> dict:
    """Apply ``patch`` to ``doc`` per RFC 7386; returns a new document."""
    if not isinstance(doc, dict):
        raise PatchError("the object to patch is not a JSON object")
    if not isinstance(patch, dict):
        raise PatchError("a merge patch must be a JSON object", malformed=True)
    try:
        return merge_patch_value(doc, patch)
    except RecursionError:
        raise PatchError("patch is nested too deeply", malformed=True) from None


def merge_patch_value(target: Any, patch: Any) -> Any:
    """RFC 7386 ``MergePatch`` on arbitrary JSON values; the result shares nothing with inputs."""
    return deep_copy(_merge(target, patch))


def _merge(target: Any, patch: Any) -> Any:
    if not isinstance(patch, dict):
        return patch
    result = dict(target) if isinstance(target, dict) else {}
    for name, value in patch.items():
        if value is None:
            result.pop(name, None)
        else:
            result[name] = _merge(result.get(name), value)
    return result
