"""What ``mpctl describe`` prints, after kubectl's ``describe.go``.

Pure functions: the object, its related objects (EndpointSlices for a Service, Pods
on a Node, Events) and a fixed ``now`` in, aligned text out. Lines are written with
tabs between label and value and aligned by ``tabwrite`` (Go tabwriter semantics,
padding 2), so neighbouring lines line up exactly as kubectl's do.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any

from apimachinery.kinds import (
    CONFIGMAP,
    ENDPOINTSLICE,
    NAMESPACE,
    NODE,
    POD,
    SECRET,
    SERVICE,
    Kind,
)
from apimachinery.tables import (
    NONE,
    age,
    dig,
    format_labels,
    node_roles,
    parse_time,
    rfc1123z,
    until,
)

from .apply import LAST_APPLIED
from .printers import to_yaml
from .tabwriter import tabwrite

MAX_ANNOTATION_LEN = 140
SKIP_ANNOTATIONS = {LAST_APPLIED}

Obj = Mapping[str, Any]


class _Writer:
    """kubectl's PrefixWriter: each level indents two spaces; flush() aligns what came before
    separately from what follows."""

    def __init__(self) -> None:
        self._done: list[str] = []
        self._pending: list[str] = []

    def write(self, level: int, text: str) -> None:
        self._pending.append("  " * level + text)

    def line(self, text: str = "") -> None:
        self._pending.append(text + "\n")

    def flush(self) -> None:
        if self._pending:
            self._done.append(tabwrite("".join(self._pending)))
            self._pending = []

    def text(self) -> str:
        self.flush()
        return "".join(self._done)




def _labels(w: _Writer, title: str, labels: Mapping[str, Any] | None,
            initial_indent: str = "", inner_indent: str = "\t") -> None:
    w.write(0, f"{initial_indent}{title}:{inner_indent}")
    keys = sorted(labels or {})
    if not keys:
        w.line(NONE)
        return
    for i, key in enumerate(keys):
        if i:
            w.write(0, initial_indent + inner_indent)
        w.write(0, f"{key}={labels[key]}\n")  # type: ignore[index]


def _shorten(s: str, maximum: int) -> str:
    return s[:maximum] + "..." if len(s) > maximum else s


def _annotations(w: _Writer, title: str, annotations: Mapping[str, Any] | None) -> None:
    w.write(0, f"{title}:\t")
    keys = sorted(k for k in (annotations or {}) if k not in SKIP_ANNOTATIONS)
    if not keys:
        w.line(NONE)
        return
    for i, key in enumerate(keys):
        if i:
            w.write(0, "\t")
        value = str(annotations[key]).removesuffix("\n")  # type: ignore[index]
        if len(value) + len(key) + 2 > MAX_ANNOTATION_LEN or "\n" in value:
            w.write(0, f"{key}:\n")
            for s in value.split("\n"):
                w.write(0, f"\t  {_shorten(s, MAX_ANNOTATION_LEN - 2)}\n")
        else:
            w.write(0, f"{key}: {value}\n")


def _events(w: _Writer, events: Sequence[Obj] | None, now: datetime) -> None:
    if events is None:
        return
    if not events:
        w.write(0, "Events:\t<none>\n")
        return
    w.flush()

    def last_seen(e: Obj) -> datetime:
        t = parse_time(e.get("lastTimestamp") or e.get("eventTime")
                       or dig(e, "metadata", "creationTimestamp"))
        return t or datetime.min.replace(tzinfo=now.tzinfo)

    w.write(0, "Events:\n  Type\tReason\tAge\tFrom\tMessage\n")
    w.write(1, "----\t------\t----\t----\t-------\n")
    for e in sorted(events, key=last_seen):
        first = age(e.get("eventTime"), now) if e.get("eventTime") else \
            age(e.get("firstTimestamp"), now)
        series = e.get("series")
        count = int(e.get("count") or 0)
        if isinstance(series, dict):
            interval = f"{age(series.get('lastObservedTime'), now)} " \
                       f"(x{series.get('count')} over {first})"
        elif count > 1:
            interval = f"{age(e.get('lastTimestamp'), now)} (x{count} over {first})"
        else:
            interval = first
        # reportingController is reportingComponent on the wire
        source = dig(e, "source", "component") or e.get("reportingComponent") or ""
        message = str(e.get("message") or "").strip()
        field_path = dig(e, "involvedObject", "fieldPath")
        if field_path:  # a container's event: named first, as kubectl 1.37 does (1.32 not)
            message = f"{field_path}: {message}"
        w.write(1, f"{e.get('type') or ''}\t{e.get('reason') or ''}\t{interval}\t{source}\t"
                   f"{message}\n")


# --------------------------------------------------------------------------- Service

def format_endpoint_slices(slices: list[Obj], port_names: set[str] | None) -> str:
    """kubectl's ``formatEndpointSlices``: ready ``ip:port`` for the named ports, 3 at most."""
    if not slices:
        return NONE
    items: list[str] = []
    maximum, more, count = 3, False, 0

    def add(text: str, endpoint: Obj) -> None:
        nonlocal more, count
        if len(items) == maximum:
            more = True
        ready = dig(endpoint, "conditions", "ready")
        if ready is False:
            return
        if not more:
            items.append(text)
        count += 1

    for s in slices:
        endpoints = [e for e in s.get("endpoints") or [] if e.get("addresses")]
        ports = s.get("ports") or []
        if not ports:
            for e in endpoints:
                add(str(e["addresses"][0]), e)
            continue
        for port in ports:
            if port_names is None or (port.get("name") or "") in port_names:
                for e in endpoints:
                    addr = str(e["addresses"][0])
                    host = f"[{addr}]" if ":" in addr else addr
                    add(f"{host}:{port.get('port')}", e)
    ret = ",".join(items)
    if more:
        return f"{ret} + {count - maximum} more..."
    return ret


def describe_service(svc: Obj, slices: list[Obj], events: Sequence[Obj] | None,
                     now: datetime) -> str:
    w = _Writer()
    meta = svc.get("metadata") or {}
    spec = svc.get("spec") or {}
    w.write(0, f"Name:\t{meta.get('name', '')}\n")
    w.write(0, f"Namespace:\t{meta.get('namespace', '')}\n")
    _labels(w, "Labels", meta.get("labels"))
    _annotations(w, "Annotations", meta.get("annotations"))
    w.write(0, f"Selector:\t{format_labels(spec.get('selector'))}\n")
    w.write(0, f"Type:\t{spec.get('type') or 'ClusterIP'}\n")
    if spec.get("ipFamilyPolicy"):
        w.write(0, f"IP Family Policy:\t{spec['ipFamilyPolicy']}\n")
    w.write(0, f"IP Families:\t{','.join(spec.get('ipFamilies') or []) or NONE}\n")
    w.write(0, f"IP:\t{spec.get('clusterIP') or ''}\n")
    if spec.get("clusterIPs"):
        w.write(0, f"IPs:\t{','.join(spec['clusterIPs'])}\n")
    if spec.get("externalIPs"):
        w.write(0, f"External IPs:\t{','.join(spec['externalIPs'])}\n")
    if spec.get("type") == "ExternalName":
        w.write(0, f"External Name:\t{spec.get('externalName') or ''}\n")
    if spec.get("loadBalancerIP"):
        w.write(0, f"IP:\t{spec['loadBalancerIP']}\n")
    ingress = dig(svc, "status", "loadBalancer", "ingress", default=[]) or []
    if ingress:
        w.write(0, "LoadBalancer Ingress:\t"
                   f"{', '.join(i.get('ip') or i.get('hostname') or '' for i in ingress)}\n")
    for sp in spec.get("ports") or []:
        name = sp.get("name") or "<unset>"
        protocol = sp.get("protocol") or "TCP"
        w.write(0, f"Port:\t{name}\t{sp.get('port')}/{protocol}\n")
        target = sp.get("targetPort", sp.get("port"))
        w.write(0, f"TargetPort:\t{target}/{protocol}\n")
        if sp.get("nodePort"):
            w.write(0, f"NodePort:\t{name}\t{sp['nodePort']}/{protocol}\n")
        w.write(0, f"Endpoints:\t{format_endpoint_slices(slices, {sp.get('name') or ''})}\n")
    w.write(0, f"Session Affinity:\t{spec.get('sessionAffinity') or 'None'}\n")
    if spec.get("externalTrafficPolicy"):
        w.write(0, f"External Traffic Policy:\t{spec['externalTrafficPolicy']}\n")
    if spec.get("internalTrafficPolicy"):
        w.write(0, f"Internal Traffic Policy:\t{spec['internalTrafficPolicy']}\n")
    if spec.get("healthCheckNodePort"):
        w.write(0, f"HealthCheck NodePort:\t{spec['healthCheckNodePort']}\n")
    _events(w, events, now)
    return w.text()


# --------------------------------------------------------------------------- Pod

def describe_probe(probe: Obj) -> str:
    """kubectl's ``DescribeProbe`` (with the API defaults for unset thresholds)."""
    attrs = (f"delay={probe.get('initialDelaySeconds') or 0}s "
             f"timeout={probe.get('timeoutSeconds') or 1}s "
             f"period={probe.get('periodSeconds') or 10}s "
             f"#success={probe.get('successThreshold') or 1} "
             f"#failure={probe.get('failureThreshold') or 3}")
    if probe.get("exec") is not None:
        return f"exec [{' '.join(str(c) for c in probe['exec'].get('command') or [])}] {attrs}"
    if probe.get("httpGet") is not None:
        h = probe["httpGet"]
        scheme = str(h.get("scheme") or "HTTP").lower()
        host = str(h.get("host") or "")
        port = h.get("port")
        hostport = (f"[{host}]" if ":" in host else host) + (f":{port}" if port is not None
                                                             else "")
        return f"http-get {scheme}://{hostport}{h.get('path') or ''} {attrs}"
    if probe.get("tcpSocket") is not None:
        t = probe["tcpSocket"]
        return f"tcp-socket {t.get('host') or ''}:{t.get('port')} {attrs}"
    if probe.get("grpc") is not None:
        g = probe["grpc"]
        return f"grpc <pod>:{g.get('port')} {g.get('service') or ''} {attrs}"
    return f"unknown {attrs}"


def _container_state(w: _Writer, title: str, state: Obj | None) -> None:
    state = state or {}
    if state.get("running") is not None:
        w.write(2, f"{title}:\tRunning\n")
        w.write(3, f"Started:\t{rfc1123z(state['running'].get('startedAt'))}\n")
    elif state.get("terminated") is not None:
        t = state["terminated"]
        w.write(2, f"{title}:\tTerminated\n")
        if t.get("reason"):
            w.write(3, f"Reason:\t{t['reason']}\n")
        if t.get("message"):
            w.write(3, f"Message:\t{t['message']}\n")
        w.write(3, f"Exit Code:\t{t.get('exitCode') or 0}\n")
        if t.get("signal"):
            w.write(3, f"Signal:\t{t['signal']}\n")
        w.write(3, f"Started:\t{rfc1123z(t.get('startedAt'))}\n")
        w.write(3, f"Finished:\t{rfc1123z(t.get('finishedAt'))}\n")
    else:
        w.write(2, f"{title}:\tWaiting\n")
        reason = dig(state, "waiting", "reason")
        if reason:
            w.write(3, f"Reason:\t{reason}\n")


def _containers(w: _Writer, title: str, containers: list[Obj], statuses: list[Obj]) -> None:
    by_name = {s.get("name"): s for s in statuses}
    w.write(0, f"{title}:\n")
    for c in containers:
        status = by_name.get(c.get("name"))
        w.write(1, f"{c.get('name')}:\n")
        if status is not None:
            w.write(2, f"Container ID:\t{status.get('containerID') or ''}\n")
        w.write(2, f"Image:\t{c.get('image') or ''}\n")
        if status is not None:
            w.write(2, f"Image ID:\t{status.get('imageID') or ''}\n")
        ports = c.get("ports") or []
        port_text = ", ".join(f"{p.get('containerPort')}/{p.get('protocol') or 'TCP'}"
                              for p in ports)
        host_text = ", ".join(f"{p.get('hostPort') or 0}/{p.get('protocol') or 'TCP'}"
                              for p in ports)
        w.write(2, f"Ports:\t{port_text}\n" if "," in port_text
                else f"Port:\t{port_text or NONE}\n")
        w.write(2, f"Host Ports:\t{host_text}\n" if "," in host_text
                else f"Host Port:\t{host_text or NONE}\n")
        for key, label in (("command", "Command"), ("args", "Args")):
            if c.get(key):
                w.write(2, f"{label}:\n")
                for item in c[key]:
                    for s in str(item).split("\n"):
                        w.write(3, f"{s}\n")
        if status is not None:
            _container_state(w, "State", status.get("state"))
            if dig(status, "lastState", "terminated") is not None:
                _container_state(w, "Last State", status.get("lastState"))
            w.write(2, f"Ready:\t{'True' if status.get('ready') else 'False'}\n")
            w.write(2, f"Restart Count:\t{status.get('restartCount') or 0}\n")
        resources = c.get("resources") or {}
        for key, label in (("limits", "Limits"), ("requests", "Requests")):
            if resources.get(key):
                w.write(2, f"{label}:\n")
                for name in sorted(resources[key]):
                    w.write(3, f"{name}:\t{resources[key][name]}\n")
        for key, label in (("livenessProbe", "Liveness"), ("readinessProbe", "Readiness"),
                           ("startupProbe", "Startup")):
            if c.get(key) is not None:
                w.write(2, f"{label}:\t{describe_probe(c[key])}\n")
        env = c.get("env") or []
        w.write(2, "Environment:" + ("" if env else "\t<none>") + "\n")
        for e in env:
            if e.get("valueFrom") is None:
                for i, s in enumerate(str(e.get("value") or "").split("\n")):
                    w.write(3, f"{e.get('name')}:\t{s}\n" if i == 0 else f"\t{s}\n")
            else:
                w.write(3, f"{e.get('name')}:\t<set from {next(iter(e['valueFrom']), '?')}>\n")
        mounts = c.get("volumeMounts") or []
        if not mounts:
            w.write(2, "Mounts:\t<none>\n")
        else:
            w.write(2, "Mounts:\n")
            for m in sorted(mounts, key=lambda m: str(m.get("mountPath"))):
                mode = "ro" if m.get("readOnly") else "rw"
                w.write(3, f"{m.get('mountPath')} from {m.get('name')} ({mode})\n")


def describe_pod(pod: Obj, events: Sequence[Obj] | None, now: datetime) -> str:
    w = _Writer()
    meta = pod.get("metadata") or {}
    spec = pod.get("spec") or {}
    status = pod.get("status") or {}
    w.write(0, f"Name:\t{meta.get('name', '')}\n")
    w.write(0, f"Namespace:\t{meta.get('namespace', '')}\n")
    if spec.get("priority") is not None:
        w.write(0, f"Priority:\t{spec['priority']}\n")
    if spec.get("serviceAccountName"):
        w.write(0, f"Service Account:\t{spec['serviceAccountName']}\n")
    if spec.get("nodeName"):
        w.write(0, f"Node:\t{spec['nodeName']}/{status.get('hostIP') or ''}\n")
    else:
        w.write(0, "Node:\t<none>\n")
    if status.get("startTime"):
        w.write(0, f"Start Time:\t{rfc1123z(status['startTime'])}\n")
    _labels(w, "Labels", meta.get("labels"))
    _annotations(w, "Annotations", meta.get("annotations"))
    phase = status.get("phase") or ""
    if meta.get("deletionTimestamp") and phase not in ("Failed", "Succeeded"):
        w.write(0, f"Status:\tTerminating (lasts {until(meta['deletionTimestamp'], now)})\n")
        w.write(0, "Termination Grace Period:\t"
                   f"{meta.get('deletionGracePeriodSeconds') or 0}s\n")
    else:
        w.write(0, f"Status:\t{phase}\n")
    if status.get("reason"):
        w.write(0, f"Reason:\t{status['reason']}\n")
    if status.get("message"):
        w.write(0, f"Message:\t{status['message']}\n")
    w.write(0, f"IP:\t{status.get('podIP') or ''}\n")
    ips = status.get("podIPs") or ([{"ip": status["podIP"]}] if status.get("podIP") else [])
    if not ips:
        w.write(0, "IPs:\t<none>\n")
    else:
        w.write(0, "IPs:\n")
        for ip in ips:
            w.write(1, f"IP:\t{ip.get('ip')}\n")
    owners = [o for o in meta.get("ownerReferences") or [] if o.get("controller")]
    if owners:
        w.write(0, f"Controlled By:\t{owners[0].get('kind')}/{owners[0].get('name')}\n")
    if spec.get("initContainers"):
        _containers(w, "Init Containers", spec["initContainers"],
                    status.get("initContainerStatuses") or [])
    _containers(w, "Containers", spec.get("containers") or [],
                status.get("containerStatuses") or [])
    if spec.get("readinessGates"):
        w.write(0, "Readiness Gates:\n  Type\tStatus\n")
        conds = {c.get("type"): c.get("status") for c in status.get("conditions") or []}
        for g in spec["readinessGates"]:
            w.write(1, f"{g.get('conditionType')} \t{conds.get(g.get('conditionType'), '<none>')} \n")
    if status.get("conditions"):
        w.write(0, "Conditions:\n  Type\tStatus\n")
        for c in status["conditions"]:
            w.write(1, f"{c.get('type')} \t{c.get('status')} \n")
    volumes = spec.get("volumes") or []
    if not volumes:
        w.write(0, "Volumes:\t<none>\n")
    else:
        w.write(0, "Volumes:\n")
        for v in volumes:
            w.write(1, f"{v.get('name')}:\n")
            source = next((k for k in v if k != "name"), "<unknown>")
            w.write(2, f"Type:\t{source}\n")
    w.write(0, f"QoS Class:\t{status.get('qosClass') or 'BestEffort'}\n")
    _labels(w, "Node-Selectors", spec.get("nodeSelector"))
    tolerations = spec.get("tolerations") or []
    w.write(0, "Tolerations:\t")
    if not tolerations:
        w.line(NONE)
    for i, t in enumerate(tolerations):
        if i:
            w.write(0, "\t")
        text = str(t.get("key") or "")
        if t.get("value"):
            text += f"={t['value']}"
        if t.get("effect"):
            text += f":{t['effect']}"
        if t.get("operator") == "Exists" and not t.get("value"):
            text += " op=Exists"
        if t.get("tolerationSeconds") is not None:
            text += f" for {t['tolerationSeconds']}s"
        w.write(0, text + "\n")
    _events(w, events, now)
    return w.text()


# --------------------------------------------------------------------------- Node

def describe_node(node: Obj, pods: Sequence[Obj] | None, events: Sequence[Obj] | None,
                  now: datetime) -> str:
    w = _Writer()
    meta = node.get("metadata") or {}
    spec = node.get("spec") or {}
    status = node.get("status") or {}
    w.write(0, f"Name:\t{meta.get('name', '')}\n")
    w.write(0, f"Roles:\t{','.join(node_roles(node)) or NONE}\n")
    _labels(w, "Labels", meta.get("labels"))
    _annotations(w, "Annotations", meta.get("annotations"))
    w.write(0, f"CreationTimestamp:\t{rfc1123z(meta.get('creationTimestamp'))}\n")
    taints = spec.get("taints") or []
    w.write(0, "Taints:\t")
    if not taints:
        w.line(NONE)
    for i, t in enumerate(taints):
        if i:
            w.write(0, "\t")
        value = f"={t['value']}" if t.get("value") else ""
        w.write(0, f"{t.get('key')}{value}:{t.get('effect')}\n")
    w.write(0, f"Unschedulable:\t{'true' if spec.get('unschedulable') else 'false'}\n")
    if status.get("conditions"):
        w.write(0, "Conditions:\n  Type\tStatus\tLastHeartbeatTime\tLastTransitionTime\t"
                   "Reason\tMessage\n")
        w.write(1, "----\t------\t-----------------\t------------------\t------\t-------\n")
        for c in status["conditions"]:
            w.write(1, f"{c.get('type')} \t{c.get('status')} \t"
                       f"{rfc1123z(c.get('lastHeartbeatTime'))} \t"
                       f"{rfc1123z(c.get('lastTransitionTime'))} \t{c.get('reason') or ''} \t"
                       f"{c.get('message') or ''}\n")
    w.write(0, "Addresses:\n")
    for a in status.get("addresses") or []:
        w.write(1, f"{a.get('type')}:\t{a.get('address')}\n")
    for key, label in (("capacity", "Capacity"), ("allocatable", "Allocatable")):
        if status.get(key):
            w.write(0, f"{label}:\n")
            for name in sorted(status[key]):
                w.write(1, f"{name}:\t{status[key][name]}\n")
    info = status.get("nodeInfo") or {}
    w.write(0, "System Info:\n")
    for key, label in (("machineID", "Machine ID"), ("systemUUID", "System UUID"),
                       ("bootID", "Boot ID"), ("kernelVersion", "Kernel Version"),
                       ("osImage", "OS Image"), ("operatingSystem", "Operating System"),
                       ("architecture", "Architecture"),
                       ("containerRuntimeVersion", "Container Runtime Version"),
                       ("kubeletVersion", "Kubelet Version"),
                       ("kubeProxyVersion", "Kube-Proxy Version")):
        w.write(0, f"  {label}:\t{info.get(key) or ''}\n")
    if spec.get("podCIDR"):
        w.write(0, f"PodCIDR:\t{spec['podCIDR']}\n")
    if spec.get("podCIDRs"):
        w.write(0, f"PodCIDRs:\t{','.join(spec['podCIDRs'])}\n")
    if spec.get("providerID"):
        w.write(0, f"ProviderID:\t{spec['providerID']}\n")
    if pods is not None:
        running = [p for p in pods
                   if dig(p, "status", "phase") not in ("Succeeded", "Failed")]
        w.write(0, f"Non-terminated Pods:\t({len(running)} in total)\n")
        if running:
            w.write(1, "Namespace\tName\tAge\n")
            w.write(1, "---------\t----\t---\n")
            for p in running:
                pm = p.get("metadata") or {}
                w.write(1, f"{pm.get('namespace', '')}\t{pm.get('name', '')}\t"
                           f"{age(pm.get('creationTimestamp'), now)}\n")
    _events(w, events, now)
    return w.text()


# --------------------------------------------------------------------------- others

def describe_namespace(ns: Obj, events: Sequence[Obj] | None, now: datetime) -> str:
    w = _Writer()
    meta = ns.get("metadata") or {}
    w.write(0, f"Name:\t{meta.get('name', '')}\n")
    _labels(w, "Labels", meta.get("labels"))
    _annotations(w, "Annotations", meta.get("annotations"))
    w.write(0, f"Status:\t{dig(ns, 'status', 'phase', default='')}\n")
    _events(w, events, now)
    return w.text()


def describe_endpointslice(eps: Obj, events: Sequence[Obj] | None, now: datetime) -> str:
    w = _Writer()
    meta = eps.get("metadata") or {}
    w.write(0, f"Name:\t{meta.get('name', '')}\n")
    w.write(0, f"Namespace:\t{meta.get('namespace', '')}\n")
    _labels(w, "Labels", meta.get("labels"))
    _annotations(w, "Annotations", meta.get("annotations"))
    w.write(0, f"AddressType:\t{eps.get('addressType') or ''}\n")
    ports = eps.get("ports") or []
    if not ports:
        w.write(0, "Ports:\t<unset>\n")
    else:
        w.write(0, "Ports:\n")
        w.write(1, "Name\tPort\tProtocol\n")
        w.write(1, "----\t----\t--------\n")
        for p in ports:
            port = p.get("port")
            w.write(1, f"{p.get('name') or '<unset>'}\t"
                       f"{'<unset>' if port is None else port}\t{p.get('protocol') or 'TCP'}\n")
    endpoints = eps.get("endpoints") or []
    if not endpoints:
        w.write(0, "Endpoints:\t<none>\n")
    else:
        w.write(0, "Endpoints:\n")
        for e in endpoints:
            w.write(1, f"- Addresses:\t{','.join(str(a) for a in e.get('addresses') or [])}\n")
            w.write(2, "Conditions:\n")
            conditions = e.get("conditions") or {}
            for key, label in (("ready", "Ready"), ("serving", "Serving"),
                               ("terminating", "Terminating")):
                value = conditions.get(key)
                w.write(3, f"{label}:\t{'<unset>' if value is None else str(value).lower()}\n")
            w.write(2, f"Hostname:\t{e.get('hostname') or '<unset>'}\n")
            ref = e.get("targetRef")
            w.write(2, "TargetRef:\t"
                       f"{(str(ref.get('kind')) + '/' + str(ref.get('name'))) if ref else '<unset>'}\n")
            w.write(2, f"NodeName:\t{e.get('nodeName') or '<unset>'}\n")
            w.write(2, f"Zone:\t{e.get('zone') or '<unset>'}\n")
    _events(w, events, now)
    return w.text()


def _byte_size(encoded: Any) -> int:
    """How many bytes a base64 value (a Secret's ``data``, ``binaryData``) stands for."""
    try:
        return len(base64.b64decode(str(encoded or "")))
    except (binascii.Error, ValueError):
        return 0


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _head(w: _Writer, meta: Obj) -> None:
    w.write(0, f"Name:\t{meta.get('name', '')}\n")
    w.write(0, f"Namespace:\t{meta.get('namespace', '')}\n")
    _labels(w, "Labels", meta.get("labels"))
    _annotations(w, "Annotations", meta.get("annotations"))


def describe_configmap(cm: Obj, events: Sequence[Obj] | None, now: datetime) -> str:
    """kubectl's ConfigMap describer: each ``data`` value in full (it is not secret),
    ``binaryData`` as sizes."""
    w = _Writer()
    _head(w, cm.get("metadata") or {})
    w.write(0, "\nData\n====\n")
    data = _mapping(cm.get("data"))
    for key in sorted(data):
        w.write(0, f"{key}:\n----\n{data[key]}\n\n")
    w.write(0, "\nBinaryData\n====\n")
    binary = _mapping(cm.get("binaryData"))
    for key in sorted(binary):
        w.write(0, f"{key}: {_byte_size(binary[key])} bytes\n")
    w.write(0, "\n")
    _events(w, events, now)
    return w.text()


def describe_secret(secret: Obj) -> str:
    """kubectl's Secret describer: the type and each key's size in bytes, never a value
    (kubectl prints a service-account-token's ``token``; this does not either)."""
    w = _Writer()
    _head(w, secret.get("metadata") or {})
    w.write(0, f"\nType:\t{secret.get('type') or ''}\n")
    w.write(0, "\nData\n====\n")
    data = _mapping(secret.get("data"))
    for key in sorted(data):
        w.write(0, f"{key}:\t{_byte_size(data[key])} bytes\n")
    return w.text()


def describe_generic(obj: Obj, events: Sequence[Obj] | None, now: datetime) -> str:
    w = _Writer()
    meta = obj.get("metadata") or {}
    w.write(0, f"Name:\t{meta.get('name', '')}\n")
    if meta.get("namespace"):
        w.write(0, f"Namespace:\t{meta['namespace']}\n")
    _labels(w, "Labels", meta.get("labels"))
    _annotations(w, "Annotations", meta.get("annotations"))
    w.write(0, f"API Version:\t{obj.get('apiVersion') or ''}\n")
    w.write(0, f"Kind:\t{obj.get('kind') or ''}\n")
    w.flush()
    rest = {k: v for k, v in obj.items() if k not in ("apiVersion", "kind", "metadata")}
    if rest:
        for line in to_yaml(rest).splitlines():
            w.line(line)
    _events(w, events, now)
    return w.text()


Describer = Callable[..., str]

# kubectl's describer map: the kinds with a describer of their own, each given what it
# uses of (events, slices, pods). Any other kind, a newly served one included, gets
# ``describe_generic``: its metadata, then every other field.
_DESCRIBERS: dict[Kind, Describer] = {
    SERVICE: lambda obj, now, events, slices, pods: describe_service(obj, slices, events, now),
    POD: lambda obj, now, events, slices, pods: describe_pod(obj, events, now),
    NODE: lambda obj, now, events, slices, pods: describe_node(obj, pods, events, now),
    NAMESPACE: lambda obj, now, events, slices, pods: describe_namespace(obj, events, now),
    ENDPOINTSLICE: lambda obj, now, events, slices, pods: describe_endpointslice(obj, events,
                                                                                now),
    CONFIGMAP: lambda obj, now, events, slices, pods: describe_configmap(obj, events, now),
    SECRET: lambda obj, now, events, slices, pods: describe_secret(obj),
}


def describe(kind: Kind, obj: Obj, now: datetime, *, events: Sequence[Obj] | None = None,
             slices: Iterable[Obj] = (), pods: Sequence[Obj] | None = None) -> str:
    """The kind's describer, or the generic one; ``slices`` matter for Services, ``pods``
    for Nodes."""
    describer = _DESCRIBERS.get(kind)
    if describer is None:
        return describe_generic(obj, events, now)
    return describer(obj, now, events, list(slices), pods)
