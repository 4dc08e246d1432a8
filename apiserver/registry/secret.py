"""Secrets: base64 data under keys, read by pods that RBAC lets read them.

What a write does before validation, as Kubernetes' v1 conversion and defaulting do:
``stringData`` (write-only plain text) is merged into ``data`` as base64, winning over
a key of the same name, and is never stored; ``type`` defaults to ``Opaque``; ``data``
is written back as canonical base64. The rules are ``apiserver/validation/secret.py``.
Who may read one is RBAC's (``view`` may not, ``edit`` and ``admin`` may) and, for a
node, the Node authorizer's (``apiserver/auth/node.py``: only its pods' Secrets).
"""

from __future__ import annotations

import base64

from apimachinery import kinds, tables
from apiserver.registry.strategy import Strategy
from apiserver.validation import Rules, configmap, secret


def merge_string_data(obj: dict) -> None:
    """Pure, in place: ``stringData`` into ``data`` (base64 of its UTF-8), then dropped.
    Left as is when either is malformed, for validation to report."""
    plain = obj.get("stringData")
    data = obj.get("data")
    if plain is None:
        obj.pop("stringData", None)
        return
    if not isinstance(plain, dict) or not all(isinstance(v, str) for v in plain.values()) \
            or not (data is None or isinstance(data, dict)):
        return
    obj["data"] = {**(data or {}), **{k: base64.b64encode(v.encode()).decode("ascii")
                                      for k, v in plain.items()}}
    del obj["stringData"]


class SecretStrategy(Strategy):
    kind = kinds.SECRET
    rules = Rules(spec=secret.validate_spec)
    extra_fields = ("type",)
    table = tables.SECRET_TABLE
    openapi_root = "V1Secret"

    def default(self, obj: dict) -> None:
        if "stringData" in obj:
            obj["stringData"] = configmap.decoded_map(obj["stringData"], binary=False)
        merge_string_data(obj)
        if "data" in obj:
            obj["data"] = configmap.decoded_map(obj["data"], binary=True)
        if not obj.get("type"):
            obj["type"] = secret.OPAQUE


STRATEGY = SecretStrategy()
