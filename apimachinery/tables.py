"""kubectl's table columns and cells for each kind, as pure functions.

Shared by the API server (it answers ``kubectl get`` with ``Table`` objects) and
by mpctl (which prints the same columns), so both show exactly what a real
cluster shows. Objects (plain dicts as the API returns them) and a fixed ``now``
in, strings out. The column sets and cell rules follow kubectl's
``pkg/printers/internalversion/printers.go``; durations follow apimachinery's
``duration.HumanDuration``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from apimachinery import kinds, labels, services
from apimachinery.kinds import Kind

NONE = "<none>"
UNKNOWN = "<unknown>"
LOAD_BALANCER_WIDTH = 16
NODE_ROLE_PREFIX = "node-role.kubernetes.io/"
NODE_ROLE_LABEL = "kubernetes.io/role"


# --------------------------------------------------------------------------- time

def human_duration(d: timedelta | float) -> str:
    """apimachinery's ``HumanDuration``: "45s", "5m3s", "45m", "3h5m", "30h", "5d3h", "45d", "3y45d"."""
    total = d.total_seconds() if isinstance(d, timedelta) else float(d)
    seconds = int(total)  # Go's int(d.Seconds()) truncates toward zero
    if seconds < -1:
        return "<invalid>"
    if seconds < 0:
        return "0s"
    if seconds < 60 * 2:
        return f"{seconds}s"
    minutes = seconds // 60
    if minutes < 10:
        s = seconds % 60
        return f"{minutes}m" if s == 0 else f"{minutes}m{s}s"
    if minutes < 60 * 3:
        return f"{minutes}m"
    hours = seconds // 3600
    if hours < 8:
        m = minutes % 60
        return f"{hours}h" if m == 0 else f"{hours}h{m}m"
    if hours < 48:
        return f"{hours}h"
    if hours < 24 * 8:
        h = hours % 24
        return f"{hours // 24}d" if h == 0 else f"{hours // 24}d{h}h"
    if hours < 24 * 365 * 2:
        return f"{hours // 24}d"
    if hours < 24 * 365 * 8:
        dy = (hours // 24) % 365
        return f"{hours // 24 // 365}y" if dy == 0 else f"{hours // 24 // 365}y{dy}d"
    return f"{hours // 24 // 365}y"


def parse_time(value: object) -> datetime | None:
    """An RFC 3339 timestamp from the API (``Z`` or offset, optional fraction), or None."""
    if not value or not isinstance(value, str):
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("z", "Z"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def age(timestamp: object, now: datetime) -> str:
    """kubectl's ``translateTimestampSince``: ``<unknown>`` when unset."""
    t = parse_time(timestamp)
    if t is None:
        return UNKNOWN
    return human_duration(now - t)


def until(timestamp: object, now: datetime) -> str:
    """kubectl's ``translateTimestampUntil``: how long until a (future) time."""
    t = parse_time(timestamp)
    if t is None:
        return UNKNOWN
    return human_duration(t - now)


def rfc1123z(value: object) -> str:
    """Go's ``time.RFC1123Z`` layout (``Mon, 02 Jan 2006 15:04:05 -0700``); "" when unset."""
    t = parse_time(value)
    return t.strftime("%a, %d %b %Y %H:%M:%S %z") if t else ""


# --------------------------------------------------------------------------- helpers

def dig(obj: Mapping[str, Any] | None, *path: str, default: Any = None) -> Any:
    """``obj[path[0]][path[1]]…``, or ``default`` where a step is missing, null or not a map
    (API objects are read as they come; a cell never raises on an odd one)."""
    cur: Any = obj
    for key in path:
        if not isinstance(cur, Mapping):
            return default
        cur = cur.get(key)
        if cur is None:
            return default
    return cur


def name_of(obj: Mapping[str, Any]) -> str:
    return str(dig(obj, "metadata", "name", default=""))


def namespace_of(obj: Mapping[str, Any]) -> str:
    return str(dig(obj, "metadata", "namespace", default=""))


def format_labels(labels: Mapping[str, Any] | None) -> str:
    """``labels.FormatLabels``: sorted ``k=v`` joined by commas, ``<none>`` when empty."""
    if not labels:
        return NONE
    return ",".join(f"{k}={labels[k]}" for k in sorted(labels))


def list_with_more(items: list[str], more: bool, count: int, maximum: int) -> str:
    ret = ",".join(items)
    if more:
        return f"{ret} + {count - maximum} more..."
    return ret or "<unset>"


def resource_name(kind: Kind) -> str:
    """What kubectl prefixes names with: ``service``, ``endpointslice.discovery.k8s.io``."""
    base = kind.kind.lower()
    return f"{base}.{kind.group}" if kind.group else base


# --------------------------------------------------------------------------- services

def service_ports(ports: Iterable[Mapping[str, Any]] | None) -> str:
    """``makePortString``: ``80/TCP``, ``80:30080/TCP`` with a node port; ``<none>`` if none."""
    pieces = []
    for port in ports or []:
        protocol = port.get("protocol") or "TCP"
        node_port = port.get("nodePort") or 0
        if node_port:
            pieces.append(f"{port.get('port')}:{node_port}/{protocol}")
        else:
            pieces.append(f"{port.get('port')}/{protocol}")
    return ",".join(pieces) or NONE


def load_balancer_ips(service: Mapping[str, Any], wide: bool) -> str:
    result = set()
    for ingress in dig(service, "status", "loadBalancer", "ingress", default=[]) or []:
        if ingress.get("ip"):
            result.add(ingress["ip"])
        elif ingress.get("hostname"):
            result.add(ingress["hostname"])
    text = ",".join(sorted(result))
    if not wide and len(text) > LOAD_BALANCER_WIDTH:
        text = text[:LOAD_BALANCER_WIDTH - 3] + "..."
    return text


def service_external_ip(service: Mapping[str, Any], wide: bool = False) -> str:
    """kubectl's EXTERNAL-IP: the load balancer's ingress (``<pending>`` until it has
    one), the CNAME target, or the externalIPs; ``<unknown>`` for an unknown type."""
    spec = service.get("spec") or {}
    external_ips = spec.get("externalIPs") or []
    if services.has_load_balancer_ingress(spec):
        lb = load_balancer_ips(service, wide)
        if external_ips:
            return ",".join(([*lb.split(",")] if lb else []) + list(external_ips))
        return lb or "<pending>"
    if services.is_external_name(spec):
        return str(spec.get("externalName") or "")
    if services.service_type(spec) in services.TYPES:
        return ",".join(external_ips) if external_ips else NONE
    return UNKNOWN


def service_cluster_ip(spec: Mapping[str, Any]) -> str:
    """kubectl's CLUSTER-IP: the primary address, ``None`` when headless."""
    ips = services.cluster_ips(spec)
    return services.HEADLESS if services.is_headless(spec) else ips[0] if ips else NONE


def service_row(svc: Mapping[str, Any], now: datetime, wide: bool) -> list[str]:
    spec = svc.get("spec") or {}
    row = [name_of(svc), str(services.service_type(spec)),
           service_cluster_ip(spec), service_external_ip(svc, wide),
           service_ports(spec.get("ports")), age(dig(svc, "metadata", "creationTimestamp"), now)]
    if wide:
        row.append(format_labels(spec.get("selector")))
    return row


# --------------------------------------------------------------------------- pods

def _condition_true(conditions: Iterable[Mapping[str, Any]] | None, ctype: str) -> bool:
    for c in conditions or []:
        if c.get("type") == ctype:
            return c.get("status") == "True"
    return False


def _later(a: datetime | None, b: object) -> datetime | None:
    t = parse_time(b)
    if t is None:
        return a
    return t if a is None or t > a else a


def pod_status(pod: Mapping[str, Any], now: datetime) -> tuple[str, str, str]:
    """(READY, STATUS, RESTARTS) exactly as kubectl's ``printPod`` computes them."""
    spec = pod.get("spec") or {}
    status = pod.get("status") or {}
    conditions = status.get("conditions") or []
    restarts = 0
    restartable_init_restarts = 0
    total = len(spec.get("containers") or [])
    ready = 0
    last_restart: datetime | None = None
    last_restartable_init_restart: datetime | None = None

    phase = status.get("phase") or ""
    reason = status.get("reason") or phase
    for c in conditions:
        if c.get("type") == "PodScheduled" and c.get("reason") == "SchedulingGated":
            reason = "SchedulingGated"

    init_specs = {c.get("name"): c for c in spec.get("initContainers") or []}
    init_containers = spec.get("initContainers") or []
    total += sum(1 for c in init_containers if c.get("restartPolicy") == "Always")

    def restartable(name: object) -> bool:
        return (init_specs.get(name) or {}).get("restartPolicy") == "Always"

    initializing = False
    for i, cs in enumerate(status.get("initContainerStatuses") or []):
        count = int(cs.get("restartCount") or 0)
        restarts += count
        finished = dig(cs, "lastState", "terminated", "finishedAt")
        last_restart = _later(last_restart, finished)
        if restartable(cs.get("name")):
            restartable_init_restarts += count
            last_restartable_init_restart = _later(last_restartable_init_restart, finished)
        state = cs.get("state") or {}
        terminated = state.get("terminated")
        waiting = state.get("waiting")
        if terminated is not None and int(terminated.get("exitCode") or 0) == 0:
            continue
        if restartable(cs.get("name")) and cs.get("started"):
            if cs.get("ready"):
                ready += 1
            continue
        if terminated is not None:
            if terminated.get("reason"):
                reason = "Init:" + terminated["reason"]
            elif terminated.get("signal"):
                reason = f"Init:Signal:{terminated['signal']}"
            else:
                reason = f"Init:ExitCode:{terminated.get('exitCode') or 0}"
        elif waiting is not None and waiting.get("reason") and \
                waiting.get("reason") != "PodInitializing":
            reason = "Init:" + waiting["reason"]
        else:
            reason = f"Init:{i}/{len(init_containers)}"
        initializing = True
        break

    if not initializing or _condition_true(conditions, "Initialized"):
        restarts = restartable_init_restarts
        last_restart = last_restartable_init_restart
        has_running = False
        error_reason = ""
        for cs in reversed(status.get("containerStatuses") or []):
            restarts += int(cs.get("restartCount") or 0)
            last_restart = _later(last_restart, dig(cs, "lastState", "terminated", "finishedAt"))
            state = cs.get("state") or {}
            waiting = state.get("waiting")
            terminated = state.get("terminated")
            if waiting is not None and waiting.get("reason"):
                reason = waiting["reason"]
            elif terminated is not None:
                if terminated.get("reason"):
                    reason = terminated["reason"]
                elif terminated.get("signal"):
                    reason = f"Signal:{terminated['signal']}"
                else:
                    reason = f"ExitCode:{terminated.get('exitCode') or 0}"
                if int(terminated.get("exitCode") or 0) != 0:
                    error_reason = reason
            elif cs.get("ready") and state.get("running") is not None:
                has_running = True
                ready += 1
        if reason == "Completed":
            if has_running and _condition_true(conditions, "Ready"):
                reason = "Running"
            elif error_reason:
                reason = error_reason
            elif has_running:
                reason = "NotReady"

    deletion = dig(pod, "metadata", "deletionTimestamp")
    if deletion and status.get("reason") == "NodeLost":
        reason = "Unknown"
    elif deletion and phase not in ("Succeeded", "Failed"):
        reason = "Terminating"

    restarts_text = str(restarts)
    if restarts and last_restart is not None:
        restarts_text = f"{restarts} ({human_duration(now - last_restart)} ago)"
    return f"{ready}/{total}", reason, restarts_text


def pod_row(pod: Mapping[str, Any], now: datetime, wide: bool) -> list[str]:
    ready, status, restarts = pod_status(pod, now)
    row = [name_of(pod), ready, status, restarts,
           age(dig(pod, "metadata", "creationTimestamp"), now)]
    if wide:
        spec = pod.get("spec") or {}
        st = pod.get("status") or {}
        ips = st.get("podIPs") or []
        ip = (ips[0].get("ip") if ips else None) or st.get("podIP") or NONE
        gates = spec.get("readinessGates") or []
        gates_text = NONE
        if gates:
            true = 0
            for gate in gates:
                for c in st.get("conditions") or []:
                    if c.get("type") == gate.get("conditionType"):
                        true += c.get("status") == "True"
                        break
            gates_text = f"{true}/{len(gates)}"
        row += [ip, spec.get("nodeName") or NONE, st.get("nominatedNodeName") or NONE, gates_text]
    return row


# --------------------------------------------------------------------------- nodes

def node_roles(node: Mapping[str, Any]) -> list[str]:
    roles = set()
    for key, value in (dig(node, "metadata", "labels", default={}) or {}).items():
        if key.startswith(NODE_ROLE_PREFIX):
            role = key[len(NODE_ROLE_PREFIX):]
            if role:
                roles.add(role)
        elif key == NODE_ROLE_LABEL and value:
            roles.add(value)
    return sorted(roles)


def node_status(node: Mapping[str, Any]) -> str:
    """``Ready``/``NotReady`` from the Ready condition, ``Unknown`` without one, plus
    ``,SchedulingDisabled`` for a cordoned node."""
    status = []
    for c in dig(node, "status", "conditions", default=[]) or []:
        if c.get("type") == "Ready":
            status.append("Ready" if c.get("status") == "True" else "NotReady")
            break
    if not status:
        status.append("Unknown")
    if dig(node, "spec", "unschedulable"):
        status.append("SchedulingDisabled")
    return ",".join(status)


def node_address(node: Mapping[str, Any], address_type: str) -> str:
    for a in dig(node, "status", "addresses", default=[]) or []:
        if a.get("type") == address_type:
            return str(a.get("address") or "")
    return NONE


def node_row(node: Mapping[str, Any], now: datetime, wide: bool) -> list[str]:
    info = dig(node, "status", "nodeInfo", default={}) or {}
    row = [name_of(node), node_status(node), ",".join(node_roles(node)) or NONE,
           age(dig(node, "metadata", "creationTimestamp"), now),
           str(info.get("kubeletVersion") or "")]
    if wide:
        row += [node_address(node, "InternalIP"), node_address(node, "ExternalIP"),
                info.get("osImage") or UNKNOWN, info.get("kernelVersion") or UNKNOWN,
                info.get("containerRuntimeVersion") or UNKNOWN]
    return row


# --------------------------------------------------------------------------- others

def namespace_row(ns: Mapping[str, Any], now: datetime, wide: bool) -> list[str]:
    return [name_of(ns), str(dig(ns, "status", "phase", default="")),
            age(dig(ns, "metadata", "creationTimestamp"), now)]


def endpointslice_ports(ports: Iterable[Mapping[str, Any]] | None) -> str:
    """``formatDiscoveryPorts``: up to 3 port numbers (or names, or ``*``), then ``+ N more...``."""
    items: list[str] = []
    more, count, maximum = False, 0, 3
    for port in ports or []:
        if len(items) < maximum:
            if port.get("port") is not None:
                items.append(str(port["port"]))
            elif port.get("name") is not None:
                items.append(str(port["name"]))
            else:
                items.append("*")
        elif len(items) == maximum:
            more = True
        count += 1
    return list_with_more(items, more, count, maximum)


def endpointslice_endpoints(endpoints: Iterable[Mapping[str, Any]] | None) -> str:
    """``formatDiscoveryEndpoints``: up to 3 addresses, then ``+ N more...``; ``<unset>``."""
    items: list[str] = []
    more, count, maximum = False, 0, 3
    for endpoint in endpoints or []:
        for address in endpoint.get("addresses") or []:
            if len(items) < maximum:
                items.append(str(address))
            elif len(items) == maximum:
                more = True
            count += 1
    return list_with_more(items, more, count, maximum)


def endpointslice_row(eps: Mapping[str, Any], now: datetime, wide: bool) -> list[str]:
    return [name_of(eps), str(eps.get("addressType") or ""),
            endpointslice_ports(eps.get("ports")), endpointslice_endpoints(eps.get("endpoints")),
            age(dig(eps, "metadata", "creationTimestamp"), now)]


def event_row(ev: Mapping[str, Any], now: datetime, wide: bool) -> list[str]:
    """kubectl's printEvent: FIRST SEEN from ``firstTimestamp`` (``eventTime`` when
    unset), LAST SEEN from ``lastTimestamp`` (FIRST SEEN when unset), both and COUNT
    from ``series`` when an events.k8s.io recorder wrote one; COUNT 1 when unset."""
    first = age(ev.get("firstTimestamp") or ev.get("eventTime"), now)
    last = age(ev.get("lastTimestamp"), now) if ev.get("lastTimestamp") else first
    count = ev.get("count") or 1
    series = ev.get("series")
    if isinstance(series, Mapping):
        last = age(series.get("lastObservedTime"), now)
        count = series.get("count") or count
    involved = ev.get("involvedObject") or {}
    kind = str(involved.get("kind") or "").lower()
    obj = f"{kind}/{involved['name']}" if involved.get("name") else kind
    kind_cells = [last, str(ev.get("type") or ""), str(ev.get("reason") or ""), obj]
    message = str(ev.get("message") or "").strip()
    if not wide:
        return [*kind_cells, message]
    source = ev.get("source") or {}
    component = source.get("component") or ev.get("reportingComponent") or ""
    host = source.get("host") or ev.get("reportingInstance") or ""
    return [*kind_cells, str(involved.get("fieldPath") or ""),
            f"{component}, {host}" if host else str(component), message, first, str(count),
            name_of(ev)]


def serviceaccount_row(sa: Mapping[str, Any], now: datetime, wide: bool) -> list[str]:
    secrets = sa.get("secrets")
    return [name_of(sa), str(len(secrets) if isinstance(secrets, list) else 0),
            age(dig(sa, "metadata", "creationTimestamp"), now)]


def lease_row(lease: Mapping[str, Any], now: datetime, wide: bool) -> list[str]:
    """kubectl's printLease: NAME, HOLDER (``spec.holderIdentity``, "" when unset), AGE."""
    holder = dig(lease, "spec", "holderIdentity", default="")
    return [name_of(lease), holder if isinstance(holder, str) else "",
            age(dig(lease, "metadata", "creationTimestamp"), now)]


def _keys(value: Any) -> int:
    return len(value) if isinstance(value, Mapping) else 0


def configmap_row(cm: Mapping[str, Any], now: datetime, wide: bool) -> list[str]:
    """kubectl's printConfigMap: DATA counts ``data`` and ``binaryData`` keys."""
    return [name_of(cm), str(_keys(cm.get("data")) + _keys(cm.get("binaryData"))),
            age(dig(cm, "metadata", "creationTimestamp"), now)]


def secret_row(secret: Mapping[str, Any], now: datetime, wide: bool) -> list[str]:
    """kubectl's printSecret: NAME, TYPE, DATA (keys, never values), AGE."""
    kind = secret.get("type")
    return [name_of(secret), kind if isinstance(kind, str) else "",
            str(_keys(secret.get("data"))), age(dig(secret, "metadata", "creationTimestamp"), now)]


def generic_row(obj: Mapping[str, Any], now: datetime, wide: bool) -> list[str]:
    return [name_of(obj), age(dig(obj, "metadata", "creationTimestamp"), now)]


def created_at(obj: Mapping[str, Any]) -> str:
    """kubectl's CREATED AT: the creation time in UTC, RFC 3339."""
    t = parse_time(dig(obj, "metadata", "creationTimestamp"))
    return t.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ") if t else UNKNOWN


def role_row(role: Mapping[str, Any], now: datetime, wide: bool) -> list[str]:
    return [name_of(role), created_at(role)]


def role_binding_row(binding: Mapping[str, Any], now: datetime, wide: bool) -> list[str]:
    """NAME, ROLE (``ClusterRole/view``), AGE; wide: USERS, GROUPS, SERVICEACCOUNTS."""
    ref = binding.get("roleRef") or {}
    subjects = [s for s in binding.get("subjects") or [] if isinstance(s, Mapping)]

    def names(kind: str) -> str:
        return ", ".join(str(s.get("name") or "") for s in subjects if s.get("kind") == kind)

    sas = ", ".join(f"{s.get('namespace') or ''}/{s.get('name') or ''}" for s in subjects
                    if s.get("kind") == "ServiceAccount")
    return [name_of(binding), f"{ref.get('kind') or ''}/{ref.get('name') or ''}",
            age(dig(binding, "metadata", "creationTimestamp"), now),
            names("User"), names("Group"), sas]


# --------------------------------------------------------------------------- workloads

def _count(value: object) -> int:
    """A replica count as kubectl prints it: absent (or odd) is 0."""
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def container_cells(pod_spec: Mapping[str, Any] | None) -> tuple[str, str]:
    """``layoutContainerCells``: container names and images, each comma-joined."""
    containers = [c for c in dig(pod_spec, "containers", default=[]) or []
                  if isinstance(c, Mapping)]
    return (",".join(str(c.get("name") or "") for c in containers),
            ",".join(str(c.get("image") or "") for c in containers))


def selector_text(selector: object) -> str:
    """``metav1.LabelSelectorAsSelector(...).String()``: ``app=web,tier in (a,b)``, keys
    sorted; "" for none (or one that does not parse: validation keeps those out)."""
    if not isinstance(selector, Mapping):
        return ""
    try:
        return str(labels.selector_from_label_selector_object(selector))
    except labels.SelectorError:
        return ""


def _workload_wide(obj: Mapping[str, Any]) -> list[str]:
    names, images = container_cells(dig(obj, "spec", "template", "spec"))
    return [names, images, selector_text(dig(obj, "spec", "selector"))]


def deployment_row(d: Mapping[str, Any], now: datetime, wide: bool) -> list[str]:
    """kubectl's printDeployment: NAME, READY (ready/desired), UP-TO-DATE, AVAILABLE, AGE."""
    status = d.get("status") or {}
    row = [name_of(d),
           f"{_count(status.get('readyReplicas'))}/{_count(dig(d, 'spec', 'replicas'))}",
           str(_count(status.get("updatedReplicas"))),
           str(_count(status.get("availableReplicas"))),
           age(dig(d, "metadata", "creationTimestamp"), now)]
    return row + _workload_wide(d) if wide else row


def replicaset_row(rs: Mapping[str, Any], now: datetime, wide: bool) -> list[str]:
    """kubectl's printReplicaSet: NAME, DESIRED, CURRENT, READY, AGE."""
    status = rs.get("status") or {}
    row = [name_of(rs), str(_count(dig(rs, "spec", "replicas"))),
           str(_count(status.get("replicas"))), str(_count(status.get("readyReplicas"))),
           age(dig(rs, "metadata", "creationTimestamp"), now)]
    return row + _workload_wide(rs) if wide else row


def _host_port(ip: str, port: object) -> str:
    """``net.JoinHostPort``: IPv6 addresses in brackets."""
    return f"[{ip}]:{port}" if ":" in ip else f"{ip}:{port}"


def endpoints_addresses(subsets: Iterable[Mapping[str, Any]] | None) -> str:
    """kubectl's ``formatEndpoints``: up to 3 ready ``ip:port`` (just ``ip`` in a subset
    without ports), then ``+ N more...``; ``<none>`` without subsets."""
    subsets = [s for s in subsets or [] if isinstance(s, Mapping)]
    if not subsets:
        return NONE
    items: list[str] = []
    more, count, maximum = False, 0, 3
    for subset in subsets:
        addresses = [str(a.get("ip") or "") for a in subset.get("addresses") or []
                     if isinstance(a, Mapping)]
        ports = [p for p in subset.get("ports") or [] if isinstance(p, Mapping)]
        # a headless Service's subset may have no ports: its addresses stand alone
        cells = [[_host_port(ip, p.get("port")) for ip in addresses] for p in ports] \
            if ports else [addresses]
        for per_port in cells:
            count += len(per_port)
            for cell in per_port:
                if len(items) == maximum:
                    more = True
                    break
                items.append(cell)
    text = ",".join(items)
    return f"{text} + {count - maximum} more..." if more else text


def endpoints_row(ep: Mapping[str, Any], now: datetime, wide: bool) -> list[str]:
    return [name_of(ep), endpoints_addresses(ep.get("subsets")),
            age(dig(ep, "metadata", "creationTimestamp"), now)]


RowFn = Callable[[Mapping[str, Any], datetime, bool], list[str]]


@dataclass(frozen=True)
class TableSpec:
    columns: tuple[str, ...]
    wide_columns: tuple[str, ...]
    row: RowFn
    name_column: int = 0
    # Where the wide columns go when they are not all last (kubectl's event table puts
    # SUBOBJECT and SOURCE before MESSAGE): every column, in the -o wide order, which
    # is the order the row function returns its wide cells in.
    wide_layout: tuple[str, ...] = ()

    def header(self, wide: bool) -> list[str]:
        if not wide:
            return list(self.columns)
        return list(self.wide_layout or self.columns + self.wide_columns)


SERVICE_TABLE = TableSpec(("NAME", "TYPE", "CLUSTER-IP", "EXTERNAL-IP", "PORT(S)", "AGE"),
                          ("SELECTOR",), service_row)
POD_TABLE = TableSpec(("NAME", "READY", "STATUS", "RESTARTS", "AGE"),
                      ("IP", "NODE", "NOMINATED NODE", "READINESS GATES"), pod_row)
NODE_TABLE = TableSpec(("NAME", "STATUS", "ROLES", "AGE", "VERSION"),
                       ("INTERNAL-IP", "EXTERNAL-IP", "OS-IMAGE", "KERNEL-VERSION",
                        "CONTAINER-RUNTIME"), node_row)
NAMESPACE_TABLE = TableSpec(("NAME", "STATUS", "AGE"), (), namespace_row)
ENDPOINTSLICE_TABLE = TableSpec(("NAME", "ADDRESSTYPE", "PORTS", "ENDPOINTS", "AGE"), (),
                                endpointslice_row)
EVENT_TABLE = TableSpec(("LAST SEEN", "TYPE", "REASON", "OBJECT", "MESSAGE"),
                        ("SUBOBJECT", "SOURCE", "FIRST SEEN", "COUNT", "NAME"), event_row,
                        name_column=-1,
                        wide_layout=("LAST SEEN", "TYPE", "REASON", "OBJECT", "SUBOBJECT",
                                     "SOURCE", "MESSAGE", "FIRST SEEN", "COUNT", "NAME"))
SERVICEACCOUNT_TABLE = TableSpec(("NAME", "SECRETS", "AGE"), (), serviceaccount_row)
LEASE_TABLE = TableSpec(("NAME", "HOLDER", "AGE"), (), lease_row)
CONFIGMAP_TABLE = TableSpec(("NAME", "DATA", "AGE"), (), configmap_row)
SECRET_TABLE = TableSpec(("NAME", "TYPE", "DATA", "AGE"), (), secret_row)
GENERIC = TableSpec(("NAME", "AGE"), (), generic_row)
WORKLOAD_WIDE = ("CONTAINERS", "IMAGES", "SELECTOR")
DEPLOYMENT_TABLE = TableSpec(("NAME", "READY", "UP-TO-DATE", "AVAILABLE", "AGE"), WORKLOAD_WIDE,
                             deployment_row)
REPLICASET_TABLE = TableSpec(("NAME", "DESIRED", "CURRENT", "READY", "AGE"), WORKLOAD_WIDE,
                             replicaset_row)
ENDPOINTS_TABLE = TableSpec(("NAME", "ENDPOINTS", "AGE"), (), endpoints_row)
ROLE_TABLE = TableSpec(("NAME", "CREATED AT"), (), role_row)
ROLE_BINDING_TABLE = TableSpec(("NAME", "ROLE", "AGE"), ("USERS", "GROUPS", "SERVICEACCOUNTS"),
                               role_binding_row)

# The tables a client prints with (kubectl's printers register one handler per type).
# The API server does not read this: each kind's strategy names its table above.
TABLES: dict[Kind, TableSpec] = {
    kinds.SERVICE: SERVICE_TABLE,
    kinds.POD: POD_TABLE,
    kinds.NODE: NODE_TABLE,
    kinds.NAMESPACE: NAMESPACE_TABLE,
    kinds.ENDPOINTSLICE: ENDPOINTSLICE_TABLE,
    kinds.EVENT: EVENT_TABLE,
    kinds.SERVICEACCOUNT: SERVICEACCOUNT_TABLE,
    kinds.LEASE: LEASE_TABLE,
    kinds.ROLE: ROLE_TABLE,
    kinds.CLUSTERROLE: ROLE_TABLE,
    kinds.ROLEBINDING: ROLE_BINDING_TABLE,
    kinds.CLUSTERROLEBINDING: ROLE_BINDING_TABLE,
    kinds.DEPLOYMENT: DEPLOYMENT_TABLE,
    kinds.REPLICASET: REPLICASET_TABLE,
    kinds.ENDPOINTS: ENDPOINTS_TABLE,
    kinds.CONFIGMAP: CONFIGMAP_TABLE,
    kinds.SECRET: SECRET_TABLE,
}


def table_spec(kind: Kind) -> TableSpec:
    """The table a client prints ``kind`` with: its own, or NAME and AGE."""
    return TABLES.get(kind, GENERIC)


def table_header(kind: Kind, *, wide: bool = False, all_namespaces: bool = False,
                 show_labels: bool = False) -> list[str]:
    spec = table_spec(kind)
    header = spec.header(wide)
    if all_namespaces and kind.namespaced:
        header.insert(0, "NAMESPACE")
    if show_labels:
        header.append("LABELS")
    return header


def table_row(kind: Kind, obj: Mapping[str, Any], now: datetime, *, wide: bool = False,
              all_namespaces: bool = False, show_labels: bool = False,
              kind_prefix: bool = False) -> list[str]:
    spec = table_spec(kind)
    row = spec.row(obj, now, wide)
    if kind_prefix and spec.name_column >= 0:
        row[spec.name_column] = f"{resource_name(kind)}/{row[spec.name_column]}"
    if all_namespaces and kind.namespaced:
        row.insert(0, namespace_of(obj))
    if show_labels:
        row.append(format_labels(dig(obj, "metadata", "labels")))
    return row


def table_rows(kind: Kind, objects: Iterable[Mapping[str, Any]], now: datetime, *,
               wide: bool = False, all_namespaces: bool = False, show_labels: bool = False,
               kind_prefix: bool = False, header: bool = True) -> list[list[str]]:
    """The table's rows as cells (header first unless ``header=False``)."""
    rows = [table_header(kind, wide=wide, all_namespaces=all_namespaces,
                         show_labels=show_labels)] if header else []
    rows += [table_row(kind, obj, now, wide=wide, all_namespaces=all_namespaces,
                       show_labels=show_labels, kind_prefix=kind_prefix) for obj in objects]
    return rows
