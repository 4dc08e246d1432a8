"""Kubernetes' protobuf request bodies, read for the few kinds kubectl sends no other way.

kubectl's typed requests go out as ``application/vnd.kubernetes.protobuf``: ``auth can-i``
posts a SelfSubjectAccessReview / SelfSubjectRulesReview, ``create token`` a TokenRequest,
and the imperative ``create namespace|serviceaccount|role|clusterrole|rolebinding|
clusterrolebinding|deployment|configmap|secret`` their kind. Everything else a user writes (``apply -f``, ``create
-f``) is JSON, and every other protobuf body (``create service …`` among them) stays a
415. So this is not a protobuf library: it decodes the Kubernetes
envelope and, inside it, exactly the messages of ``KINDS`` into the dict the same object
would be as JSON (camelCase names, empty strings left out as ``omitempty`` does), which
the ordinary handlers then read. Fields it does not know are skipped, as protobuf does;
a body that is not well-formed is a ``ProtobufError`` naming the field at fault.

Wire format (k8s.io/apimachinery runtime/serializer/protobuf): the 4 bytes ``k8s\\0``,
then a ``runtime.Unknown`` {typeMeta = 1 {apiVersion = 1, kind = 2}, raw = 2,
contentEncoding = 3, contentType = 4} whose ``raw`` is the object's message. Field
numbers are those of the generated.proto files of k8s.io/api authorization/v1,
authentication/v1, core/v1, rbac/v1 and apps/v1 and of apimachinery's meta/v1 (ObjectMeta,
LabelSelector).
"""

from __future__ import annotations

import base64
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

MEDIA_TYPE = "application/vnd.kubernetes.protobuf"
MAGIC = b"k8s\x00"

VARINT, FIXED64, LENGTH, FIXED32 = 0, 1, 2, 5
_MAX_VARINT_BYTES = 10


class ProtobufError(ValueError):
    """The body is not a well-formed message; ``field`` is the JSON path at fault."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field or 'body'}: {message}")
        self.field = field or "body"


class NotReadable(ValueError):
    """A well-formed envelope holding a kind this module does not read."""


# ---------------------------------------------------------------- schemas


@dataclass(frozen=True)
class Scalar:
    kind: str  # "string", "bytes" (base64 in JSON, as ``[]byte`` is), "int64", "bool"


@dataclass(frozen=True)
class Message:
    fields: Mapping[int, tuple[str, Any]]  # number -> (JSON name, field type)


@dataclass(frozen=True)
class Repeated:
    item: Scalar | Message


@dataclass(frozen=True)
class MapOf:
    """``map<string, V>``: on the wire, repeated entries {key = 1, value = 2}."""

    value: Scalar | Message


FieldType = Scalar | Message | Repeated | MapOf

STRING, BYTES = Scalar("string"), Scalar("bytes")
INT64, BOOL = Scalar("int64"), Scalar("bool")
STRINGS = Repeated(STRING)

OBJECT_META = Message({1: ("name", STRING), 2: ("generateName", STRING),
                       3: ("namespace", STRING), 11: ("labels", MapOf(STRING)),
                       12: ("annotations", MapOf(STRING))})

# authorization.k8s.io/v1
# ExtraValue is a message {repeated string items = 1} on the wire and a bare list in JSON.
EXTRA_VALUE = Message({1: ("items", STRINGS)})
_SELECTOR_REQUIREMENT = Message({1: ("key", STRING), 2: ("operator", STRING),
                                 3: ("values", STRINGS)})
_SELECTOR = Message({1: ("rawSelector", STRING),
                     2: ("requirements", Repeated(_SELECTOR_REQUIREMENT))})
RESOURCE_ATTRIBUTES = Message({1: ("namespace", STRING), 2: ("verb", STRING),
                               3: ("group", STRING), 4: ("version", STRING),
                               5: ("resource", STRING), 6: ("subresource", STRING),
                               7: ("name", STRING), 8: ("fieldSelector", _SELECTOR),
                               9: ("labelSelector", _SELECTOR)})
NON_RESOURCE_ATTRIBUTES = Message({1: ("path", STRING), 2: ("verb", STRING)})
_SELF_ACCESS_SPEC = Message({1: ("resourceAttributes", RESOURCE_ATTRIBUTES),
                             2: ("nonResourceAttributes", NON_RESOURCE_ATTRIBUTES)})
_ACCESS_SPEC = Message({1: ("resourceAttributes", RESOURCE_ATTRIBUTES),
                        2: ("nonResourceAttributes", NON_RESOURCE_ATTRIBUTES),
                        3: ("user", STRING), 4: ("groups", STRINGS),
                        5: ("extra", MapOf(EXTRA_VALUE)),
                        6: ("uid", STRING)})
_RULES_SPEC = Message({1: ("namespace", STRING)})

# authentication.k8s.io/v1
_BOUND_OBJECT_REF = Message({1: ("kind", STRING), 2: ("apiVersion", STRING),
                             3: ("name", STRING), 4: ("uid", STRING)})
_TOKEN_REQUEST_SPEC = Message({1: ("audiences", STRINGS), 4: ("expirationSeconds", INT64),
                               3: ("boundObjectRef", _BOUND_OBJECT_REF)})


def _object(spec: Message) -> Message:
    """A top-level kind: metadata = 1, spec = 2 (status = 3 is the server's to fill)."""
    return Message({1: ("metadata", OBJECT_META), 2: ("spec", spec)})


# core/v1: what `kubectl create namespace` / `create serviceaccount` send
_OBJECT_REFERENCE = Message({1: ("kind", STRING), 2: ("namespace", STRING),
                             3: ("name", STRING), 4: ("uid", STRING),
                             5: ("apiVersion", STRING), 6: ("resourceVersion", STRING),
                             7: ("fieldPath", STRING)})
_SERVICE_ACCOUNT = Message({1: ("metadata", OBJECT_META),
                            2: ("secrets", Repeated(_OBJECT_REFERENCE)),
                            3: ("imagePullSecrets", Repeated(Message({1: ("name", STRING)}))),
                            4: ("automountServiceAccountToken", BOOL)})

# rbac.authorization.k8s.io/v1: `kubectl create role|clusterrole|rolebinding|clusterrolebinding`
_LABEL_SELECTOR = Message({1: ("matchLabels", MapOf(STRING)),
                           2: ("matchExpressions", Repeated(_SELECTOR_REQUIREMENT))})
_POLICY_RULE = Message({1: ("verbs", STRINGS), 2: ("apiGroups", STRINGS),
                        3: ("resources", STRINGS), 4: ("resourceNames", STRINGS),
                        5: ("nonResourceURLs", STRINGS)})
_ROLE = Message({1: ("metadata", OBJECT_META), 2: ("rules", Repeated(_POLICY_RULE))})
_CLUSTER_ROLE = Message({**_ROLE.fields, 3: ("aggregationRule", Message(
    {1: ("clusterRoleSelectors", Repeated(_LABEL_SELECTOR))}))})
_SUBJECT = Message({1: ("kind", STRING), 2: ("apiGroup", STRING), 3: ("name", STRING),
                    4: ("namespace", STRING)})
_ROLE_REF = Message({1: ("apiGroup", STRING), 2: ("kind", STRING), 3: ("name", STRING)})
_BINDING = Message({1: ("metadata", OBJECT_META), 2: ("subjects", Repeated(_SUBJECT)),
                    3: ("roleRef", _ROLE_REF)})

# apps/v1 and the core/v1 pod template: `kubectl create deployment NAME --image=… [--replicas]
# [--port] [-- COMMAND…]`. Only the fields that command sets (and their neighbours kubectl
# sends empty) are read; a pod spec is otherwise written as YAML, which is JSON's path.
_CONTAINER_PORT = Message({1: ("name", STRING), 3: ("containerPort", INT64),
                           4: ("protocol", STRING)})
_CONTAINER = Message({1: ("name", STRING), 2: ("image", STRING), 3: ("command", STRINGS),
                      4: ("args", STRINGS), 5: ("workingDir", STRING),
                      6: ("ports", Repeated(_CONTAINER_PORT)),
                      7: ("env", Repeated(Message({1: ("name", STRING), 2: ("value", STRING)}))),
                      14: ("imagePullPolicy", STRING)})
_POD_SPEC = Message({2: ("containers", Repeated(_CONTAINER)), 3: ("restartPolicy", STRING),
                     6: ("dnsPolicy", STRING), 7: ("nodeSelector", MapOf(STRING)),
                     8: ("serviceAccountName", STRING), 10: ("nodeName", STRING)})
_POD_TEMPLATE = Message({1: ("metadata", OBJECT_META), 2: ("spec", _POD_SPEC)})
_DEPLOYMENT_SPEC = Message({1: ("replicas", INT64), 2: ("selector", _LABEL_SELECTOR),
                            3: ("template", _POD_TEMPLATE),
                            4: ("strategy", Message({1: ("type", STRING)})),
                            5: ("minReadySeconds", INT64), 6: ("revisionHistoryLimit", INT64),
                            7: ("paused", BOOL), 9: ("progressDeadlineSeconds", INT64)})

# core/v1: `kubectl create configmap NAME --from-literal|--from-file|--from-env-file` and
# `kubectl create secret generic|tls|docker-registry NAME …`
_CONFIG_MAP = Message({1: ("metadata", OBJECT_META), 2: ("data", MapOf(STRING)),
                       3: ("binaryData", MapOf(BYTES)), 4: ("immutable", BOOL)})
_SECRET = Message({1: ("metadata", OBJECT_META), 2: ("data", MapOf(BYTES)),
                   3: ("type", STRING), 4: ("stringData", MapOf(STRING)),
                   5: ("immutable", BOOL)})

AUTHORIZATION = "authorization.k8s.io/v1"
AUTHENTICATION = "authentication.k8s.io/v1"
RBAC = "rbac.authorization.k8s.io/v1"

# kind -> (apiVersion, message): the only protobuf bodies the server reads.
KINDS: Mapping[str, tuple[str, Message]] = {
    "SelfSubjectAccessReview": (AUTHORIZATION, _object(_SELF_ACCESS_SPEC)),
    "SelfSubjectRulesReview": (AUTHORIZATION, _object(_RULES_SPEC)),
    "SubjectAccessReview": (AUTHORIZATION, _object(_ACCESS_SPEC)),
    "LocalSubjectAccessReview": (AUTHORIZATION, _object(_ACCESS_SPEC)),
    "TokenRequest": (AUTHENTICATION, _object(_TOKEN_REQUEST_SPEC)),
    "Namespace": ("v1", _object(Message({1: ("finalizers", STRINGS)}))),
    "ServiceAccount": ("v1", _SERVICE_ACCOUNT),
    "Role": (RBAC, _ROLE),
    "ClusterRole": (RBAC, _CLUSTER_ROLE),
    "RoleBinding": (RBAC, _BINDING),
    "ClusterRoleBinding": (RBAC, _BINDING),
    "Deployment": ("apps/v1", _object(_DEPLOYMENT_SPEC)),
    "ConfigMap": ("v1", _CONFIG_MAP),
    "Secret": ("v1", _SECRET),
}

_TYPE_META = Message({1: ("apiVersion", STRING), 2: ("kind", STRING)})


# ---------------------------------------------------------------- wire format


def _varint(data: bytes, pos: int, path: str) -> tuple[int, int]:
    value = shift = 0
    for i in range(pos, min(pos + _MAX_VARINT_BYTES, len(data))):
        byte = data[i]
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            return value & 0xFFFF_FFFF_FFFF_FFFF, i + 1
        shift += 7
    raise ProtobufError(path, "truncated or over-long varint")


def fields(data: bytes, path: str = "") -> Iterator[tuple[int, int, int | bytes]]:
    """Pure: each (field number, wire type, value) of a message, in order; varints and
    fixed-width values as ints, length-delimited ones as bytes."""
    pos = 0
    while pos < len(data):
        key, pos = _varint(data, pos, path)
        number, wire = key >> 3, key & 7
        if number == 0:
            raise ProtobufError(path, "field number 0")
        value: int | bytes
        if wire == VARINT:
            value, pos = _varint(data, pos, path)
        elif wire in (FIXED64, FIXED32):
            width = 8 if wire == FIXED64 else 4
            if pos + width > len(data):
                raise ProtobufError(path, f"truncated field {number}")
            value, pos = int.from_bytes(data[pos:pos + width], "little"), pos + width
        elif wire == LENGTH:
            size, pos = _varint(data, pos, path)
            if pos + size > len(data):
                raise ProtobufError(path, f"field {number} is longer than the message")
            value, pos = data[pos:pos + size], pos + size
        else:
            raise ProtobufError(path, f"field {number} has unsupported wire type {wire}")
        yield number, wire, value


def _scalar(ftype: Scalar | Message, wire: int, value: int | bytes, path: str) -> Any:
    if isinstance(ftype, Message):
        if not isinstance(value, bytes):
            raise ProtobufError(path, "expected an embedded message")
        return decode_message(ftype, value, path)
    if ftype.kind == "bytes":
        if not isinstance(value, bytes):
            raise ProtobufError(path, "expected bytes")
        return base64.b64encode(value).decode("ascii")
    if ftype.kind == "string":
        if not isinstance(value, bytes):
            raise ProtobufError(path, "expected a string")
        try:
            return value.decode("utf-8")
        except UnicodeDecodeError:
            raise ProtobufError(path, "string is not valid UTF-8") from None
    if wire != VARINT or not isinstance(value, int):
        raise ProtobufError(path, f"expected a varint ({ftype.kind})")
    if ftype.kind == "bool":
        return value != 0
    return value - (1 << 64) if value >= 1 << 63 else value  # int64: two's complement


def _map_entry(ftype: MapOf, value: int | bytes, path: str) -> tuple[str, Any]:
    if not isinstance(value, bytes):
        raise ProtobufError(path, "expected a map entry")
    key, item = "", None
    for number, wire, part in fields(value, path):
        if number == 1:
            key = _scalar(STRING, wire, part, path)
        elif number == 2:
            item = _scalar(ftype.value, wire, part, f"{path}[{key}]" if key else path)
    if item is None:
        item = {} if isinstance(ftype.value, Message) else ""
    if ftype.value is EXTRA_VALUE and isinstance(item, dict):
        item = item.get("items", [])
    return key, item


def decode_message(message: Message, data: bytes, path: str = "") -> dict[str, Any]:
    """Pure: ``data`` as the JSON object of ``message``. Unknown fields are skipped; a
    string that is empty is left out (JSON's ``omitempty``); a message field given
    twice is merged, a scalar given twice keeps the last value, as protobuf does."""
    out: dict[str, Any] = {}
    for number, wire, value in fields(data, path):
        known = message.fields.get(number)
        if known is None:
            continue
        name, ftype = known
        where = f"{path}.{name}" if path else name
        if isinstance(ftype, Repeated):
            out.setdefault(name, []).append(
                _scalar(ftype.item, wire, value, f"{where}[{len(out.get(name, []))}]"))
        elif isinstance(ftype, MapOf):
            key, item = _map_entry(ftype, value, where)
            out.setdefault(name, {})[key] = item
        else:
            decoded = _scalar(ftype, wire, value, where)
            if isinstance(decoded, dict) and isinstance(out.get(name), dict):
                decoded = {**out[name], **decoded}
            out[name] = decoded
    return {k: v for k, v in out.items() if v != ""}


def decode(body: bytes, expected_kind: str) -> dict[str, Any]:
    """Pure: a protobuf request body for ``expected_kind`` (one of ``KINDS``) as the
    object it would be in JSON, with its ``apiVersion`` and ``kind``.

    Raises ``NotReadable`` for a kind this module does not read, ``ProtobufError``
    for a body that is not the envelope, is compressed, or holds another kind.
    """
    if expected_kind not in KINDS:
        raise NotReadable(expected_kind)
    api_version, message = KINDS[expected_kind]
    if not body.startswith(MAGIC):
        raise ProtobufError("body", "missing the Kubernetes protobuf prefix (k8s\\x00)")
    type_meta: dict[str, Any] = {}
    raw, encoding = b"", ""
    for number, wire, value in fields(body[len(MAGIC):]):
        if number == 1:
            type_meta = _scalar(_TYPE_META, wire, value, "typeMeta")
        elif number == 2:
            if not isinstance(value, bytes):
                raise ProtobufError("raw", "expected bytes")
            raw = value
        elif number == 3:
            encoding = _scalar(STRING, wire, value, "contentEncoding")
    if encoding:
        raise ProtobufError("contentEncoding", f"unsupported content encoding {encoding!r}")
    got = (type_meta.get("apiVersion", ""), type_meta.get("kind", ""))
    if got != (api_version, expected_kind):
        raise ProtobufError("kind", f"the API version in the data ({got[0]}) and kind "
                            f"({got[1]}) do not match the expected {api_version} "
                            f"{expected_kind}")
    return {"apiVersion": api_version, "kind": expected_kind,
            **decode_message(message, raw)}
