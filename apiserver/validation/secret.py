"""Secret rules (Kubernetes' ``ValidateSecret``/``ValidateSecretUpdate``).

``data`` is read as the bytes its base64 stands for (``configmap.binary_map``: a value
that is not base64 is Invalid at ``data[key]``, its contents redacted); keys are config
keys; at most 1 MiB in all. ``stringData`` is already merged into ``data`` by the
strategy, as Kubernetes' conversion does, so the rules name ``data[key]``. The
``type`` never changes, and the built-in types need their keys:

    kubernetes.io/service-account-token  annotation kubernetes.io/service-account.name
    kubernetes.io/dockercfg              data[.dockercfg], a JSON object
    kubernetes.io/dockerconfigjson       data[.dockerconfigjson], a JSON object
    kubernetes.io/basic-auth             data[username] or data[password]
    kubernetes.io/ssh-auth               a non-empty data[ssh-privatekey]
    kubernetes.io/tls                    data[tls.crt] and data[tls.key]

Any other type (``Opaque``, the default, or one of the user's) has no required keys.
"""

from __future__ import annotations

import json
from typing import Any

from apimachinery import names
from apiserver.errors import invalid, required
from apiserver.validation.configmap import (
    REDACTED,
    binary_map,
    check_immutable,
    check_keys,
    check_size,
)
from apiserver.validation.fields import IMMUTABLE, FieldErrors

OPAQUE = "Opaque"
SERVICE_ACCOUNT_TOKEN = "kubernetes.io/service-account-token"
DOCKERCFG = "kubernetes.io/dockercfg"
DOCKER_CONFIG_JSON = "kubernetes.io/dockerconfigjson"
BASIC_AUTH = "kubernetes.io/basic-auth"
SSH_AUTH = "kubernetes.io/ssh-auth"
TLS = "kubernetes.io/tls"
SERVICE_ACCOUNT_NAME = "kubernetes.io/service-account.name"

# type -> the JSON document each must hold under its key
_JSON_KEYS = {DOCKERCFG: ".dockercfg", DOCKER_CONFIG_JSON: ".dockerconfigjson"}


def _json_object_error(raw: bytes) -> str | None:
    """Why ``raw`` is not a JSON object, or None when it is."""
    try:
        doc = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        return f"invalid JSON: {exc}"
    return None if isinstance(doc, dict) else "must be a JSON object"


def check_type(errs: FieldErrors, kind: str, meta: dict, data: dict[str, bytes]) -> None:
    """The keys a built-in ``type`` requires (see the module's table)."""
    if kind == SERVICE_ACCOUNT_TOKEN:
        annotations = meta.get("annotations")
        if not isinstance(annotations, dict) or not annotations.get(SERVICE_ACCOUNT_NAME):
            errs.append(required(f"metadata.annotations[{SERVICE_ACCOUNT_NAME}]"))
    elif kind in _JSON_KEYS:
        key = _JSON_KEYS[kind]
        if key not in data:
            errs.append(required(f"data[{key}]"))
        else:
            problem = _json_object_error(data[key])
            if problem:
                errs.append(invalid(f"data[{key}]", REDACTED, problem))
    elif kind == BASIC_AUTH:
        if "username" not in data and "password" not in data:
            errs.extend([required("data[username]"), required("data[password]")])
    elif kind == SSH_AUTH:
        if not data.get("ssh-privatekey"):
            errs.append(required("data[ssh-privatekey]"))
    elif kind == TLS:
        errs.extend(required(f"data[{key}]") for key in ("tls.crt", "tls.key")
                    if key not in data)


def _check_leftover_string_data(errs: FieldErrors, value: Any) -> None:
    """``stringData`` the strategy could not merge: what is wrong with it, values redacted."""
    if value is None:
        return
    if not isinstance(value, dict):
        errs.append(invalid("stringData", REDACTED, "must be an object"))
        return
    errs.extend(invalid(f"stringData[{key}]", REDACTED, names.NOT_A_STRING)
                for key, item in value.items() if not isinstance(item, str))


def validate_spec(errs: FieldErrors, obj: dict, old: dict | None) -> None:
    """A Secret's ``data``, ``type``, ``immutable`` (create and update); ``stringData``
    left over (not a map of strings, so the strategy could not merge it) is reported."""
    check_immutable(errs, obj, old, ("data",))
    _check_leftover_string_data(errs, obj.get("stringData"))
    raw = obj.get("data")
    data = binary_map(errs, raw, "data", redact=True)
    check_keys(errs, list(raw) if isinstance(raw, dict) else [], "data")
    check_size(errs, sum(len(v) for v in data.values()), "data")
    kind = errs.text(obj.get("type"), "type")
    if old is not None and obj.get("type") != old.get("type"):
        errs.append(invalid("type", obj.get("type"), IMMUTABLE))
    meta = obj.get("metadata")
    check_type(errs, kind or "", meta if isinstance(meta, dict) else {}, data)
