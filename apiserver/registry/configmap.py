"""ConfigMaps: configuration as string and binary data under keys, read by pods.

Plain storage with Kubernetes' rules (``apiserver/validation/configmap.py``): config
keys, base64 ``binaryData``, 1 MiB, and ``immutable: true`` freezing the data for good.
"""

from __future__ import annotations

from apimachinery import kinds, tables
from apiserver.registry.strategy import Strategy
from apiserver.validation import Rules, configmap


class ConfigMapStrategy(Strategy):
    kind = kinds.CONFIGMAP
    rules = Rules(spec=configmap.validate_spec)
    table = tables.CONFIGMAP_TABLE
    openapi_root = "V1ConfigMap"

    def default(self, obj: dict) -> None:
        """Null values are empty; ``binaryData`` as Kubernetes writes the bytes back."""
        for field, binary in (("data", False), ("binaryData", True)):
            if field in obj:
                obj[field] = configmap.decoded_map(obj[field], binary=binary)


STRATEGY = ConfigMapStrategy()
