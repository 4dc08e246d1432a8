"""A container's environment as kubelet builds it (``makeEnvironmentVariables``): pure.

In kubelet's order: the Service variables (``services_env``: every Service of the
pod's namespace that exists now, when ``enableServiceLinks`` is not false, and the
master ``kubernetes`` Service of ``default`` always), then ``envFrom`` (ConfigMaps
and Secrets, with ``prefix``; keys that are not variable names are skipped and
reported), then ``env`` in order: a literal ``value`` with ``$(VAR)`` expanded
against what is defined so far and the Service variables, or ``valueFrom``
(``fieldRef``, ``resourceFieldRef``, ``configMapKeyRef``, ``secretKeyRef``). The
container's own variables win over the Service ones. ``command`` and ``args`` are
expanded against the result (``expand_command``).

What the builder needs from the API (ConfigMaps, Secrets) it gets through a
``Lookup``; a missing required object or key raises ``EnvError`` with kubelet's
message, which keeps the container Waiting with ``CreateContainerConfigError``.
"""

from __future__ import annotations

import base64
import binascii
import math
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any, Protocol

from apimachinery.podrefs import CONFIGMAPS, SECRETS, container_refs
from apimachinery.quantities import QuantityError, parse_quantity

MASTER_NAMESPACE = "default"
MASTER_SERVICES = ("kubernetes",)
_ENV_NAME = re.compile(r"[-._a-zA-Z][-._a-zA-Z0-9]*")
_SUBSCRIPT = re.compile(r"(metadata\.(?:labels|annotations))\['(.*)'\]")
RESOURCES = ("cpu", "memory", "ephemeral-storage")


class EnvError(Exception):
    """The container cannot be configured yet; the message is kubelet's."""


class Lookup(Protocol):
    """ConfigMaps and Secrets of the pod's namespace by name; None when not found."""

    def configmap(self, name: str) -> Mapping[str, Any] | None: ...

    def secret(self, name: str) -> Mapping[str, Any] | None: ...


@dataclass
class Built:
    """The environment, and kubelet's warnings about it (``(reason, message)``)."""

    env: dict[str, str]
    warnings: list[tuple[str, str]] = field(default_factory=list)


# -- Service variables (pkg/kubelet/envvars) -----------------------------------------------


def env_name(text: str) -> str:
    """A Service or port name as a variable name part: upper case, '-' → '_'."""
    return text.upper().replace("-", "_")


def service_ip_set(service: Mapping[str, Any]) -> bool:
    ip = (service.get("spec") or {}).get("clusterIP")
    return bool(ip) and ip != "None"


def service_env(service: Mapping[str, Any]) -> dict[str, str]:
    """The variables of one Service: ``<NAME>_SERVICE_HOST``/``_SERVICE_PORT``, one
    ``_SERVICE_PORT_<PORTNAME>`` per named port, and Docker's links form (``<NAME>_PORT``,
    ``<NAME>_PORT_<port>_<PROTO>`` with ``_PROTO``, ``_PORT``, ``_ADDR``). None for a
    headless Service or one without an IP (ExternalName)."""
    spec = service.get("spec") or {}
    ports = spec.get("ports") or []
    if not service_ip_set(service) or not ports:
        return {}
    ip = str(spec["clusterIP"])
    prefix = env_name(str((service.get("metadata") or {}).get("name", "")))
    env = {f"{prefix}_SERVICE_HOST": ip, f"{prefix}_SERVICE_PORT": str(ports[0].get("port"))}
    for p in ports:
        if p.get("name"):
            env[f"{prefix}_SERVICE_PORT_{env_name(str(p['name']))}"] = str(p.get("port"))
    host = f"[{ip}]" if ":" in ip else ip
    for i, p in enumerate(ports):
        proto, port = str(p.get("protocol") or "TCP"), p.get("port")
        url = f"{proto.lower()}://{host}:{port}"
        if i == 0:
            env[f"{prefix}_PORT"] = url
        base = f"{prefix}_PORT_{port}_{proto.upper()}"
        env[base] = url
        env[f"{base}_PROTO"] = proto.lower()
        env[f"{base}_PORT"] = str(port)
        env[f"{base}_ADDR"] = ip
    return env


def services_env(services: Iterable[Mapping[str, Any]], namespace: str, *,
                 enable_service_links: bool = True) -> dict[str, str]:
    """The Service variables of a pod in ``namespace``: its namespace's Services (with
    links enabled) and the master Service of ``default`` (always); a Service of the
    pod's own namespace with the master's name wins over it, as in kubelet."""
    chosen: dict[str, Mapping[str, Any]] = {}
    for svc in services:
        if not service_ip_set(svc):
            continue
        meta = svc.get("metadata") or {}
        name, ns = str(meta.get("name", "")), meta.get("namespace", "default")
        if ns == MASTER_NAMESPACE and name in MASTER_SERVICES:
            chosen.setdefault(name, svc)
        elif ns == namespace and enable_service_links:
            chosen[name] = svc
    env: dict[str, str] = {}
    for name in sorted(chosen):
        env.update(service_env(chosen[name]))
    return env


# -- $(VAR) expansion (third_party/forked/golang/expansion) ---------------------------------


def expand(text: str, mapping: Callable[[str], str]) -> str:
    """``$(VAR)`` → ``mapping(VAR)``; ``$$`` → ``$``; anything else as written."""
    out: list[str] = []
    i, n = 0, len(text)
    while i < n:
        ch = text[i]
        if ch != "$" or i + 1 == n:
            out.append(ch)
            i += 1
            continue
        nxt = text[i + 1]
        if nxt == "$":
            out.append("$")
            i += 2
        elif nxt == "(":
            close = text.find(")", i + 2)
            if close < 0:
                out.append("$(")
                i += 2
            else:
                out.append(mapping(text[i + 2:close]))
                i = close + 1
        else:
            out.append("$" + nxt)
            i += 2
    return "".join(out)


def mapping_for(*contexts: Mapping[str, str]) -> Callable[[str], str]:
    """The first context that defines a name gives its value; undefined stays ``$(NAME)``."""
    def lookup(name: str) -> str:
        for ctx in contexts:
            if name in ctx:
                return ctx[name]
        return f"$({name})"
    return lookup


def expand_command(container: Mapping[str, Any], env: Mapping[str, str]) -> list[str]:
    """``command`` + ``args`` with ``$(VAR)`` expanded against the container's env."""
    mapping = mapping_for(env)
    return [expand(str(a), mapping) for a in
            list(container.get("command") or []) + list(container.get("args") or [])]


# -- fieldRef -----------------------------------------------------------------------------


def _format_map(m: Mapping[str, Any]) -> str:
    """``k="v"`` lines, sorted (fieldpath.FormatMap)."""
    return "".join(f'{k}="{v}"\n' for k, v in sorted(m.items())).rstrip("\n")


def field_value(pod: Mapping[str, Any], path: str, *, pod_ips: Sequence[str],
                host_ips: Sequence[str], service_account: str) -> str:
    """A pod field as a variable's value (the paths the Downward API allows in env)."""
    meta, spec = pod.get("metadata") or {}, pod.get("spec") or {}
    simple = {"metadata.name": meta.get("name"), "metadata.namespace": meta.get("namespace"),
              "metadata.uid": meta.get("uid"), "spec.nodeName": spec.get("nodeName"),
              "spec.serviceAccountName": service_account,
              "status.podIP": pod_ips[0] if pod_ips else "",
              "status.podIPs": ",".join(pod_ips),
              "status.hostIP": host_ips[0] if host_ips else "",
              "status.hostIPs": ",".join(host_ips)}
    if path in simple:
        return str(simple[path] or "")
    if path in ("metadata.labels", "metadata.annotations"):
        return _format_map(meta.get(path.split(".")[1]) or {})
    sub = _SUBSCRIPT.fullmatch(path)
    if sub is not None:
        return str((meta.get(sub.group(1).split(".")[1]) or {}).get(sub.group(2), ""))
    raise EnvError(f'unsupported fieldPath: "{path}"')


# -- resourceFieldRef ---------------------------------------------------------------------


def _quantity(value: Any, what: str) -> Fraction:
    try:
        return parse_quantity(value)
    except QuantityError as exc:
        raise EnvError(f"{what}: {exc}") from None


def resource_value(ref: Mapping[str, Any], container: Mapping[str, Any],
                   allocatable: Mapping[str, Any]) -> str:
    """``limits.cpu`` and the rest as kubelet gives them: the value divided by
    ``divisor`` (default 1), rounded up; a limit that is not set is the node's
    allocatable; a request not set is its limit as written (API defaulting), else 0."""
    resource = str(ref.get("resource") or "")
    kind, _, name = resource.partition(".")
    if kind not in ("limits", "requests") or name not in RESOURCES:
        raise EnvError(f"unsupported container resource : {resource}")
    res = container.get("resources") or {}
    limits, requests = res.get("limits") or {}, res.get("requests") or {}
    if kind == "limits":
        raw = limits.get(name, allocatable.get(name, 0))
    else:
        raw = requests.get(name, limits.get(name, 0))
    value = _quantity(raw, resource)
    divisor = _quantity(ref.get("divisor") or "1", "divisor")
    if divisor == 0:
        divisor = Fraction(1)
    if name == "cpu":  # by milli-units, as Quantity.MilliValue
        return str(math.ceil(math.ceil(value * 1000) / math.ceil(divisor * 1000)))
    return str(math.ceil(math.ceil(value) / math.ceil(divisor)))


def _container_named(pod: Mapping[str, Any], name: str) -> Mapping[str, Any]:
    spec = pod.get("spec") or {}
    for c in list(spec.get("containers") or []) + list(spec.get("initContainers") or []):
        if c.get("name") == name:
            return c
    raise EnvError(f"container {name} not found")


# -- ConfigMaps and Secrets ---------------------------------------------------------------


def secret_data(secret: Mapping[str, Any]) -> dict[str, str]:
    """A Secret's ``data`` (base64) as text, as the container sees it."""
    out = {}
    for k, v in (secret.get("data") or {}).items():
        try:
            out[k] = base64.b64decode(str(v), validate=True).decode("utf-8", "replace")
        except (binascii.Error, ValueError):
            out[k] = ""
    return out


def is_env_var_name(name: str) -> bool:
    """Kubernetes' IsEnvVarName: ``[-._a-zA-Z][-._a-zA-Z0-9]*``, not ``.``/``..``."""
    return bool(_ENV_NAME.fullmatch(name)) and name != "." and not name.startswith("..")


def _env_from(source: Mapping[str, Any], namespace: str, lookup: Lookup, env: dict[str, str],
              warnings: list[tuple[str, str]]) -> None:
    prefix = str(source.get("prefix") or "")
    for field_name, kind in (("configMapRef", "configmap"), ("secretRef", "secret")):
        ref = source.get(field_name)
        if not ref:
            continue
        name = str(ref.get("name") or "")
        obj = lookup.configmap(name) if kind == "configmap" else lookup.secret(name)
        if obj is None:
            if ref.get("optional"):
                continue
            raise EnvError(f'{kind} "{name}" not found')
        data = (dict(obj.get("data") or {}) if kind == "configmap" else secret_data(obj))
        invalid = []
        for key, value in data.items():
            key = prefix + key
            if not is_env_var_name(key):
                invalid.append(key)
                continue
            env[key] = str(value)
        if invalid:
            what = "configMap" if kind == "configmap" else "secret"
            warnings.append(("InvalidEnvironmentVariableNames",
                             f"Keys [{', '.join(sorted(invalid))}] from the EnvFrom {what} "
                             f"{namespace}/{name} were skipped since they are considered "
                             "invalid environment variable names."))


def _key_ref(ref: Mapping[str, Any], kind: str, namespace: str, lookup: Lookup
             ) -> str | None:
    """A ``configMapKeyRef``/``secretKeyRef`` value; None when optional and missing."""
    name, key = str(ref.get("name") or ""), str(ref.get("key") or "")
    obj = lookup.configmap(name) if kind == "configmap" else lookup.secret(name)
    optional = bool(ref.get("optional"))
    if obj is None:
        if optional:
            return None
        raise EnvError(f'{kind} "{name}" not found')
    data = dict(obj.get("data") or {}) if kind == "configmap" else secret_data(obj)
    if key not in data:
        if optional:
            return None
        title = "ConfigMap" if kind == "configmap" else "Secret"
        raise EnvError(f"couldn't find key {key} in {title} {namespace}/{name}")
    return str(data[key])


# -- the whole ----------------------------------------------------------------------------


@dataclass(frozen=True)
class PodContext:
    """What the builder knows besides the pod: the Service variables, the addresses,
    the node's allocatable and the ServiceAccount the pod runs as."""

    service_env: Mapping[str, str]
    pod_ips: Sequence[str] = ()
    host_ips: Sequence[str] = ()
    allocatable: Mapping[str, Any] = field(default_factory=dict)
    service_account: str = "default"


def container_env(pod: Mapping[str, Any], container: Mapping[str, Any], ctx: PodContext,
                  lookup: Lookup) -> Built:
    """The container's variables: its own (``envFrom``, then ``env``), then the Service
    variables it does not define. Raises ``EnvError``."""
    namespace = str((pod.get("metadata") or {}).get("namespace") or "default")
    own: dict[str, str] = {}
    warnings: list[tuple[str, str]] = []
    for source in container.get("envFrom") or []:
        _env_from(source, namespace, lookup, own, warnings)
    mapping = mapping_for(own, ctx.service_env)
    for var in container.get("env") or []:
        name = str(var.get("name") or "")
        value: str | None = str(var.get("value") or "")
        source = var.get("valueFrom")
        if value:
            value = expand(value, mapping)
        elif source:
            value = _value_from(source, pod, container, ctx, namespace, lookup)
            if value is None:
                continue
        own[name] = value or ""
    return Built({**{k: v for k, v in ctx.service_env.items() if k not in own}, **own},
                 warnings)


def _value_from(source: Mapping[str, Any], pod: Mapping[str, Any],
                container: Mapping[str, Any], ctx: PodContext, namespace: str,
                lookup: Lookup) -> str | None:
    if source.get("fieldRef"):
        return field_value(pod, str(source["fieldRef"].get("fieldPath") or ""),
                           pod_ips=ctx.pod_ips, host_ips=ctx.host_ips,
                           service_account=ctx.service_account)
    if source.get("resourceFieldRef"):
        ref = source["resourceFieldRef"]
        target = (_container_named(pod, str(ref["containerName"]))
                  if ref.get("containerName") else container)
        return resource_value(ref, target, ctx.allocatable)
    if source.get("configMapKeyRef"):
        return _key_ref(source["configMapKeyRef"], "configmap", namespace, lookup)
    if source.get("secretKeyRef"):
        return _key_ref(source["secretKeyRef"], "secret", namespace, lookup)
    return ""


def referenced(container: Mapping[str, Any]) -> tuple[set[str], set[str]]:
    """(ConfigMap names, Secret names) a container's environment reads."""
    refs = container_refs(container)
    return ({n for r, n in refs if r == CONFIGMAPS}, {n for r, n in refs if r == SECRETS})
