"""The three PATCH flavours of the Kubernetes API, as pure functions on decoded JSON.

======================================  ==========================================
Content-Type                            function
======================================  ==========================================
application/json-patch+json             ``json_patch(doc, ops)`` (RFC 6902)
application/merge-patch+json            ``merge_patch(doc, patch)`` (RFC 7386)
application/strategic-merge-patch+json  ``strategic_merge_patch(schema, doc, patch)``
======================================  ==========================================

Each returns a new document and never mutates its arguments; every failure is a
``PatchError`` whose ``malformed`` flag picks 400 (True) or 422 (False).
"""

from .errors import PatchError
from .jsonpatch import json_patch
from .mergepatch import merge_patch, merge_patch_value
from .strategic import strategic_merge_patch

__all__ = [
    "PatchError",
    "json_patch",
    "merge_patch",
    "merge_patch_value",
    "strategic_merge_patch",
]
