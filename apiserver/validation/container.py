"""Container rules (Kubernetes ``validateContainers``, ``validateProbe``, ``validateEnv``).

Split from ``pod`` because containers carry most of a pod's fields. Names that must
be unique across the whole pod (container names, named ports, host ports) are
collected in a ``PodScope`` shared by regular and init containers.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from apimachinery import names
from apimachinery.quantities import QuantityError, parse_quantity
from apiserver.errors import duplicate, forbidden, invalid, not_supported, required
from apiserver.validation.fields import PROTOCOLS, FieldErrors, is_int
from apiserver.validation.securitycontext import check_container_security_context

PULL_POLICIES = ("Always", "IfNotPresent", "Never")
TERMINATION_MESSAGE_POLICIES = ("File", "FallbackToLogsOnError")
SCHEMES = ("HTTP", "HTTPS")
PROBES = ("livenessProbe", "readinessProbe", "startupProbe")
PROBE_HANDLERS = ("exec", "httpGet", "tcpSocket", "grpc")
LIFECYCLE_HANDLERS = ("exec", "httpGet", "tcpSocket", "sleep")
ENV_SOURCES = ("fieldRef", "resourceFieldRef", "configMapKeyRef", "secretKeyRef")
# What the downward API can put into an environment variable.
ENV_FIELD_PATHS = ("metadata.name", "metadata.namespace", "metadata.uid", "spec.nodeName",
                   "spec.serviceAccountName", "status.hostIP", "status.hostIPs", "status.podIP",
                   "status.podIPs")
_SUBSCRIPTED_PATH = re.compile(r"(metadata\.(?:labels|annotations))\['(.*)'\]")


@dataclass
class PodScope:
    """What must be unique across every container of one pod."""

    host_network: bool = False
    container_names: set[str] = field(default_factory=set)
    port_names: set[str] = field(default_factory=set)
    host_ports: set[tuple[int, str, str]] = field(default_factory=set)


def check_containers(errs: FieldErrors, value: Any, path: str, scope: PodScope, *,
                     init: bool) -> None:
    for p, container in errs.items(value, path):
        _check_container(errs, container, p, scope, init=init)


def _check_container(errs: FieldErrors, c: dict, path: str, scope: PodScope, *,
                     init: bool) -> None:
    name = errs.required_text(c.get("name"), f"{path}.name")
    if name and errs.check(name, f"{path}.name", names.is_dns1123_label):
        if name in scope.container_names:
            errs.append(duplicate(f"{path}.name", name))
        scope.container_names.add(name)
    image = errs.required_text(c.get("image"), f"{path}.image")
    if image and image.strip() != image:
        errs.append(invalid(f"{path}.image", image, "must not have leading or trailing whitespace"))
    for key in ("command", "args"):
        for _ in errs.strings(c.get(key), f"{path}.{key}"):
            pass
    for key in ("workingDir", "terminationMessagePath"):
        errs.text(c.get(key), f"{path}.{key}")
    for key in ("stdin", "stdinOnce", "tty"):
        errs.boolean(c.get(key), f"{path}.{key}")
    check_container_security_context(errs, c.get("securityContext"), f"{path}.securityContext")
    _check_resources(errs, c.get("resources"), f"{path}.resources")
    errs.enum(c.get("imagePullPolicy"), f"{path}.imagePullPolicy", PULL_POLICIES, required=True)
    errs.enum(c.get("terminationMessagePolicy"), f"{path}.terminationMessagePolicy",
              TERMINATION_MESSAGE_POLICIES, required=True)
    sidecar = _check_restart_policy(errs, c.get("restartPolicy"), f"{path}.restartPolicy",
                                    init=init)
    _check_ports(errs, c.get("ports"), f"{path}.ports", scope)
    _check_env(errs, c.get("env"), f"{path}.env")
    for _ in errs.items(c.get("envFrom"), f"{path}.envFrom"):
        pass
    _check_volume_mounts(errs, c.get("volumeMounts"), f"{path}.volumeMounts")
    for key in PROBES:
        probe = errs.obj(c.get(key), f"{path}.{key}")
        if probe is None:
            continue
        if init and not sidecar:
            errs.append(forbidden(f"{path}.{key}", "may not be set for init containers without "
                                  "restartPolicy=Always"))
            continue
        _check_probe(errs, probe, f"{path}.{key}", exactly_one_success=key != "readinessProbe")
    lifecycle = errs.obj(c.get("lifecycle"), f"{path}.lifecycle") or {}
    for hook in ("postStart", "preStop"):
        handler = errs.obj(lifecycle.get(hook), f"{path}.lifecycle.{hook}")
        if handler is not None:
            check_handler(errs, handler, f"{path}.lifecycle.{hook}", LIFECYCLE_HANDLERS)


# The resources a container may name without a domain (helper.IsStandardContainerResourceName).
STANDARD_CONTAINER_RESOURCES = ("cpu", "memory", "ephemeral-storage")


def _check_resources(errs: FieldErrors, value: Any, path: str) -> None:
    """Kubernetes' ``ValidateResourceRequirements``: names, quantities, requests ≤ limits."""
    resources = errs.obj(value, path)
    if resources is None:
        return
    limits = _quantities(errs, resources.get("limits"), f"{path}.limits")
    requests = _quantities(errs, resources.get("requests"), f"{path}.requests")
    for name, (text, request) in requests.items():
        if name in limits and request > limits[name][1]:
            errs.append(invalid(f"{path}.requests[{name}]", text, f"must be less than or equal "
                                f"to {name} limit of {limits[name][0]}"))


def _quantities(errs: FieldErrors, value: Any, path: str) -> dict[str, tuple[Any, Any]]:
    """The valid ``name: quantity`` entries of a requests/limits map, with their values."""
    found: dict[str, tuple[Any, Any]] = {}
    given = errs.obj(value, path)
    for name, text in (given or {}).items():
        at = f"{path}[{name}]"
        if not _is_container_resource(name):
            errs.append(invalid(at, name, "must be a standard resource for containers"))
            continue
        try:
            amount = parse_quantity(text)
        except QuantityError as exc:
            errs.append(invalid(at, text, str(exc)))
            continue
        if amount < 0:
            errs.append(invalid(at, text, "must be greater than or equal to 0"))
            continue
        found[name] = (text, amount)
    return found


def _is_container_resource(name: str) -> bool:
    if name in STANDARD_CONTAINER_RESOURCES or name.startswith("hugepages-"):
        return True
    # extended resources carry a domain ("example.com/gpu"), never kubernetes.io's own
    return "/" in name and not names.is_qualified_name(name) and \
        "kubernetes.io/" not in name


def _check_restart_policy(errs: FieldErrors, value: Any, path: str, *, init: bool) -> bool:
    """A container-level restartPolicy makes an init container a sidecar; True if so."""
    if value is None:
        return False
    if not init:
        errs.append(forbidden(path, "may not be set for non-init containers"))
        return False
    return errs.enum(value, path, ("Always",)) == "Always"


def _check_ports(errs: FieldErrors, value: Any, path: str, scope: PodScope) -> None:
    for p, port in errs.items(value, path):
        name = errs.text(port.get("name"), f"{p}.name")
        if name and errs.check(name, f"{p}.name", names.is_iana_svc_name):
            if name in scope.port_names:  # a Service's named targetPort must be unambiguous
                errs.append(duplicate(f"{p}.name", name))
            scope.port_names.add(name)
        container_port = errs.port(port.get("containerPort"), f"{p}.containerPort", required=True)
        host_port = errs.integer(port.get("hostPort"), f"{p}.hostPort")
        if host_port:
            host_port = errs.port(host_port, f"{p}.hostPort")
        protocol = errs.enum(port.get("protocol"), f"{p}.protocol", PROTOCOLS, required=True)
        host_ip = errs.text(port.get("hostIP"), f"{p}.hostIP")
        if host_ip:
            errs.check(host_ip, f"{p}.hostIP", names.is_valid_ip)
        if scope.host_network and host_port and container_port and host_port != container_port:
            errs.append(invalid(f"{p}.hostPort", host_port,
                                "must match `containerPort` when `hostNetwork` is true"))
        if host_port and protocol:
            key = (host_port, protocol, host_ip or "")
            if key in scope.host_ports:
                errs.append(duplicate(f"{p}.hostPort", f"{host_port}/{protocol}"))
            scope.host_ports.add(key)


def _check_env(errs: FieldErrors, value: Any, path: str) -> None:
    for p, env in errs.items(value, path):
        name = errs.required_text(env.get("name"), f"{p}.name")
        if name:
            errs.check(name, f"{p}.name", names.is_env_var_name)
        text = errs.text(env.get("value"), f"{p}.value")
        source = errs.obj(env.get("valueFrom"), f"{p}.valueFrom")
        if source is None:
            continue
        if text:
            errs.append(invalid(f"{p}.valueFrom", "",
                                "may not be specified when `value` is not empty"))
        _check_env_source(errs, source, f"{p}.valueFrom")


def _check_env_source(errs: FieldErrors, source: dict, path: str) -> None:
    given = [key for key in ENV_SOURCES if source.get(key) is not None]
    if not given:
        errs.append(invalid(path, "", "must specify one of: `fieldRef`, `resourceFieldRef`, "
                            "`configMapKeyRef` or `secretKeyRef`"))
    elif len(given) > 1:
        errs.append(invalid(path, "", "may not have more than one field specified at a time"))
    field_ref = errs.obj(source.get("fieldRef"), f"{path}.fieldRef")
    if field_ref is not None:
        errs.text(field_ref.get("apiVersion"), f"{path}.fieldRef.apiVersion")
        _check_field_path(errs, field_ref.get("fieldPath"), f"{path}.fieldRef.fieldPath")
    resource_ref = errs.obj(source.get("resourceFieldRef"), f"{path}.resourceFieldRef")
    if resource_ref is not None:
        errs.required_text(resource_ref.get("resource"), f"{path}.resourceFieldRef.resource")
        errs.text(resource_ref.get("containerName"), f"{path}.resourceFieldRef.containerName")
    for key in ("configMapKeyRef", "secretKeyRef"):
        ref = errs.obj(source.get(key), f"{path}.{key}")
        if ref is not None:
            errs.required_text(ref.get("key"), f"{path}.{key}.key")
            errs.text(ref.get("name"), f"{path}.{key}.name")
            errs.boolean(ref.get("optional"), f"{path}.{key}.optional")


def _check_field_path(errs: FieldErrors, value: Any, path: str) -> None:
    field_path = errs.required_text(value, path)
    if not field_path:
        return
    if m := _SUBSCRIPTED_PATH.fullmatch(field_path):
        key = m.group(2).lower() if m.group(1) == "metadata.annotations" else m.group(2)
        errs.check(key, path, names.is_qualified_name)
    elif field_path not in ENV_FIELD_PATHS:
        errs.append(not_supported(path, field_path, sorted(ENV_FIELD_PATHS)))


def _check_volume_mounts(errs: FieldErrors, value: Any, path: str) -> None:
    for p, mount in errs.items(value, path):
        errs.required_text(mount.get("name"), f"{p}.name")
        errs.required_text(mount.get("mountPath"), f"{p}.mountPath")
        errs.text(mount.get("subPath"), f"{p}.subPath")
        errs.boolean(mount.get("readOnly"), f"{p}.readOnly")


def _check_probe(errs: FieldErrors, probe: dict, path: str, *, exactly_one_success: bool) -> None:
    check_handler(errs, probe, path, PROBE_HANDLERS)
    errs.at_least(probe.get("initialDelaySeconds"), f"{path}.initialDelaySeconds", 0)
    for key in ("timeoutSeconds", "periodSeconds", "successThreshold", "failureThreshold"):
        errs.at_least(probe.get(key), f"{path}.{key}", 1)
    success = probe.get("successThreshold")
    if exactly_one_success and is_int(success) and success > 1:
        errs.append(invalid(f"{path}.successThreshold", success, "must be 1"))
    grace = errs.integer(probe.get("terminationGracePeriodSeconds"),
                         f"{path}.terminationGracePeriodSeconds")
    if grace is not None and grace <= 0:
        errs.append(invalid(f"{path}.terminationGracePeriodSeconds", grace,
                            "must be greater than 0"))


def check_handler(errs: FieldErrors, handler: dict, path: str, kinds: tuple[str, ...]) -> None:
    """Exactly one of ``kinds`` (exec, httpGet, …), each checked by its own rule."""
    chosen = ""
    for key in kinds:
        if handler.get(key) is None:
            continue
        if chosen:
            errs.append(forbidden(f"{path}.{key}", "may not specify more than 1 handler type"))
            continue
        chosen = key
        action = errs.obj(handler.get(key), f"{path}.{key}")
        if action is not None:
            _HANDLER_RULES[key](errs, action, f"{path}.{key}")
    if not chosen:
        errs.append(required(path, "must specify a handler type"))


def _check_exec(errs: FieldErrors, action: dict, path: str) -> None:
    command = list(errs.strings(action.get("command"), f"{path}.command"))
    if not command and action.get("command") in (None, []):
        errs.append(required(f"{path}.command", ""))


def _check_http_get(errs: FieldErrors, action: dict, path: str) -> None:
    errs.required_text(action.get("path"), f"{path}.path")
    errs.port_or_name(action.get("port"), f"{path}.port", required=True)
    errs.enum(action.get("scheme"), f"{path}.scheme", SCHEMES, required=True)
    errs.text(action.get("host"), f"{path}.host")
    for p, header in errs.items(action.get("httpHeaders"), f"{path}.httpHeaders"):
        name = errs.text(header.get("name"), f"{p}.name")
        if name is not None or header.get("name") is None:
            errs.check(name or "", f"{p}.name", names.is_http_header_name)
        errs.text(header.get("value"), f"{p}.value")


def _check_tcp_socket(errs: FieldErrors, action: dict, path: str) -> None:
    errs.port_or_name(action.get("port"), f"{path}.port", required=True)
    errs.text(action.get("host"), f"{path}.host")


def _check_grpc(errs: FieldErrors, action: dict, path: str) -> None:
    errs.port(action.get("port"), f"{path}.port", required=True)
    errs.text(action.get("service"), f"{path}.service")


def _check_sleep(errs: FieldErrors, action: dict, path: str) -> None:
    if action.get("seconds") is None:
        errs.append(required(f"{path}.seconds", ""))
    errs.at_least(action.get("seconds"), f"{path}.seconds", 0)


_HANDLER_RULES = {"exec": _check_exec, "httpGet": _check_http_get,
                  "tcpSocket": _check_tcp_socket, "grpc": _check_grpc, "sleep": _check_sleep}
