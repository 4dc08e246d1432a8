"""ConfigMap rules (Kubernetes' ``ValidateConfigMap``/``ValidateConfigMapUpdate``), and the
key, base64, size and ``immutable`` rules a Secret's data shares with them.

- every key of ``data`` and ``binaryData`` is a config key (``names.is_config_map_key``:
  it becomes a file name in a volume), and no key is in both;
- ``binaryData`` (a Secret's ``data``) values are base64, as JSON carries ``[]byte``;
  a value that is not is Invalid at ``binaryData[key]``, never echoed back;
- the data of one object is at most 1 MiB (``core.MaxSecretSize``, both kinds);
- once ``immutable: true`` is stored it cannot be unset and the data cannot change.
"""

from __future__ import annotations

import base64
import binascii
import re
from typing import Any

from apimachinery import names
from apiserver.errors import forbidden, invalid
from apiserver.validation.fields import FieldErrors, too_long

MAX_DATA_BYTES = 1024 * 1024
IMMUTABLE_SET = "field is immutable when `immutable` is set"
REDACTED = "<secret contents redacted>"
DUPLICATE_KEY = "duplicate of key present in binaryData"
_BASE64_CHARS = re.compile(r"[A-Za-z0-9+/]*={0,2}")


def decode_base64(text: str) -> bytes:
    """Go's ``base64.StdEncoding`` as ``encoding/json`` reads ``[]byte``: padded, line breaks
    ignored. Raises ValueError("illegal base64 data at input byte N"), Go's words; N counts
    without the line breaks."""
    compact = text.replace("\r", "").replace("\n", "")
    bad = _BASE64_CHARS.match(compact)
    end = bad.end() if bad else 0
    if end < len(compact) or len(compact) % 4:
        # the offending byte, or the start of the incomplete last quantum
        raise ValueError(f"illegal base64 data at input byte "
                         f"{end if end < len(compact) else len(compact) - len(compact) % 4}")
    try:
        return base64.b64decode(compact, validate=True)
    except binascii.Error:
        raise ValueError(f"illegal base64 data at input byte {len(compact) - 4}") from None


def canonical_base64(text: str) -> str:
    """``text`` as Kubernetes writes the bytes back (no line breaks); unchanged if invalid."""
    try:
        return base64.b64encode(decode_base64(text)).decode("ascii")
    except ValueError:
        return text


def decoded_map(values: Any, *, binary: bool) -> Any:
    """A data map as Kubernetes' decoding leaves it, for the strategies to store: a null
    value is empty (Go reads JSON null into "" and into empty bytes) and, when ``binary``,
    base64 is written back canonical. Anything not a map is left for validation."""
    if not isinstance(values, dict):
        return values
    return {k: "" if v is None else canonical_base64(v) if binary and isinstance(v, str) else v
            for k, v in values.items()}


def check_keys(errs: FieldErrors, keys: Any, path: str) -> None:
    """Each key of ``path`` is a config key, errors at ``path[key]``."""
    for key in keys:
        for message in names.is_config_map_key(key):
            errs.append(invalid(f"{path}[{key}]", key, message))


def binary_map(errs: FieldErrors, value: Any, path: str, *, redact: bool) -> dict[str, bytes]:
    """A map of key → base64 text, decoded; a value that is not base64 is Invalid at
    ``path[key]`` (shown as the redaction marker when ``redact``: a Secret's value is
    never echoed in an error)."""
    good: dict[str, bytes] = {}
    if value is not None and not isinstance(value, dict):
        errs.append(invalid(path, REDACTED if redact else value, "must be an object"))
        return good
    for key, item in (value or {}).items():
        where = f"{path}[{key}]"
        if not isinstance(item, str):
            errs.append(invalid(where, REDACTED if redact else item, names.NOT_A_STRING))
            continue
        try:
            good[key] = decode_base64(item)
        except ValueError as exc:
            errs.append(invalid(where, REDACTED if redact else item, str(exc)))
    return good


def check_size(errs: FieldErrors, total: int, path: str) -> None:
    if total > MAX_DATA_BYTES:
        errs.append(too_long(path, MAX_DATA_BYTES))


def check_immutable(errs: FieldErrors, obj: dict, old: dict | None,
                    frozen: tuple[str, ...]) -> None:
    """``immutable`` is a boolean; once stored true, it stays true and ``frozen`` stay put."""
    errs.boolean(obj.get("immutable"), "immutable")
    if old is None or old.get("immutable") is not True:
        return
    if obj.get("immutable") is not True:
        errs.append(forbidden("immutable", IMMUTABLE_SET))
    for field in frozen:
        if (obj.get(field) or {}) != (old.get(field) or {}):
            errs.append(forbidden(field, IMMUTABLE_SET))


def validate_spec(errs: FieldErrors, obj: dict, old: dict | None) -> None:
    """A ConfigMap's ``data``, ``binaryData`` and ``immutable`` (create and update)."""
    check_immutable(errs, obj, old, ("data", "binaryData"))
    data = errs.string_map(obj.get("data"), "data")
    raw_binary = obj.get("binaryData")
    binary_keys = list(raw_binary) if isinstance(raw_binary, dict) else []
    binary = binary_map(errs, raw_binary, "binaryData", redact=False)
    check_keys(errs, data, "data")
    check_keys(errs, binary_keys, "binaryData")
    errs.extend(invalid(f"data[{key}]", key, DUPLICATE_KEY) for key in data if key in binary_keys)
    # the whole object is at fault, as Kubernetes reports it (an empty field path)
    check_size(errs, sum(len(v.encode()) for v in data.values())
               + sum(len(v) for v in binary.values()), "")
