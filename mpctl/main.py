"""``mpctl``: a small kubectl for miniplane (``apply``, ``get``, ``describe``, ``delete``).

Argument parsing and dispatch live here, with all the I/O; what is printed is built
by the pure modules next to it (``printers``, ``describe``, ``apply``,
``manifests``). Every failure ends as one line on stderr and exit status 1:

* ``Error from server (NotFound): services "web" not found`` for API errors,
* ``error: cannot reach the API server at URL: reason`` when nothing answers
  (``error: cannot reach any API server: URL: reason; URL: reason`` when
  ``--server`` lists several and none answered),
* ``error: ...`` for bad manifests, unknown kinds, bad flag values or config;
  a ``--server``/``$MINIPLANE_SERVER`` that is not a URL list exits 2.

Moving to another listed server is not news on stdout: ``-v`` logs it on stderr.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import re
import signal
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, NoReturn, TypeVar

import yaml

from apimachinery import tables
from apimachinery.kinds import (
    ENDPOINTSLICE,
    EVENT,
    NODE,
    POD,
    SERVICE,
    Kind,
    UnknownKind,
    by_kind,
    lookup,
)
from client.config import SERVER_HELP, ConfigError, ServerFlagError, load_config
from client.errors import ApiError, ConnectionFailed, NotFound
from client.http import Client
from componentbase import flags
from componentbase.pki import PKIError

from . import describe as describing
from . import podio, printers
from .apply import ApplyError, ApplyFailed, apply_manifest, resolve_namespace
from .cluster import commands as cluster_commands
from .cluster.network import NetworkError
from .cluster.plan import SpecError
from .manifests import Manifest, ManifestError, load
from .podio import PodIOError
from .tabwriter import TableWriter

OUTPUT_FORMATS = ("json", "name", "wide", "yaml")
T = TypeVar("T")
PROPAGATION = "Background"


class CliError(Exception):
    """A user error detected by mpctl itself; printed as ``error: <message>``."""


# --------------------------------------------------------------------------- output

def out(text: str) -> None:
    sys.stdout.write(text)
    sys.stdout.flush()


def err(line: str) -> None:
    sys.stderr.write(line + "\n")
    sys.stderr.flush()


def server_error_line(exc: ApiError, context: str = "") -> str:
    """kubectl's line for an API error: ``Error from server (Reason): message``."""
    return f"Error from server ({exc.reason}): {context}{exc.message}"


def connection_error_line(exc: ConnectionFailed, server: str) -> str:
    if len(exc.attempts) > 1:
        tried = "; ".join(f"{url}: {why}" for url, why in exc.attempts)
        return f"error: cannot reach any API server: {tried}"
    if exc.attempts:
        server = exc.attempts[0][0]
    reason = str(exc.__cause__) if exc.__cause__ is not None and str(exc.__cause__) \
        else exc.message
    return f"error: cannot reach the API server at {server}: {reason}"


# --------------------------------------------------------------------------- arguments

def parse_bool(value: str) -> bool:
    lowered = value.strip().lower()
    if lowered in ("true", "t", "1", "yes"):
        return True
    if lowered in ("false", "f", "0", "no"):
        return False
    raise argparse.ArgumentTypeError(f"invalid boolean value {value!r}")


_DURATION = re.compile(r"^\s*(?:(\d+(?:\.\d+)?)h)?(?:(\d+(?:\.\d+)?)m(?!s))?"
                       r"(?:(\d+(?:\.\d+)?)s)?(?:(\d+(?:\.\d+)?)ms)?\s*$")


def parse_duration(value: str) -> float:
    """Seconds from ``60``, ``60s``, ``2m``, ``1h30m``, ``500ms`` (Go-style durations)."""
    text = value.strip()
    with contextlib.suppress(ValueError):
        return float(text)
    m = _DURATION.match(text)
    if not text or not m or not any(m.groups()):
        raise argparse.ArgumentTypeError(f"invalid duration {value!r}")
    h, mins, s, ms = (float(g) if g else 0.0 for g in m.groups())
    return h * 3600 + mins * 60 + s + ms / 1000


def _global_options(parser: argparse.ArgumentParser, *, suppress: bool) -> None:
    """Flags accepted before and after the command (``mpctl -n x get`` and ``get -n x``)."""
    default = argparse.SUPPRESS if suppress else None
    parser.add_argument("--server", "-s", default=default, metavar="URL[,URL…]",
                        help=SERVER_HELP)
    parser.add_argument("--kubeconfig", default=default, metavar="PATH",
                        help="kubeconfig file (else $KUBECONFIG, ~/.kube/config)")
    parser.add_argument("-n", "--namespace", default=default, metavar="NS",
                        help="namespace (default: the kubeconfig context's, else default)")
    parser.add_argument("-v", "--verbose", action="store_true",
                        default=argparse.SUPPRESS if suppress else False,
                        help="log what the client does (such as moving to another API "
                             "server) on stderr")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mpctl", description="Control a miniplane cluster (a small kubectl).")
    _global_options(parser, suppress=False)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True

    def command(name: str, help_text: str) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help_text, description=help_text)
        _global_options(p, suppress=True)
        return p

    p = command("apply", "Create or update objects from manifests (client-side apply)")
    p.add_argument("-f", "--filename", action="append", required=True, metavar="FILE",
                   help="manifest file, directory of .yaml/.yml/.json files, or - for stdin "
                        "(repeatable)")
    p.add_argument("--server-side", action="store_true",
                   help="let the server merge the manifest (server-side apply)")
    p.add_argument("--field-manager", default=None, metavar="NAME",
                   help="manager name recorded for server-side apply (default mpctl)")
    p.add_argument("--force-conflicts", action="store_true",
                   help="server-side apply: take over fields other managers own")

    p = command("create", "Create objects from manifests (error if they exist)")
    p.add_argument("-f", "--filename", action="append", required=True, metavar="FILE",
                   help="manifest file, directory, or - for stdin (repeatable)")

    for name, what in (("label", "labels"), ("annotate", "annotations")):
        p = command(name, f"Add, change (--overwrite) or remove (KEY-) {what} of an object")
        p.add_argument("resource", metavar="KIND", help="kind, or KIND/NAME")
        p.add_argument("args", nargs="+", metavar="NAME|KEY=VALUE|KEY-",
                       help="the object's name (unless KIND/NAME), then KEY=VALUE or KEY-")
        p.add_argument("--overwrite", action="store_true",
                       help="allow changing a key that already has a value")

    p = command("get", "List objects, or show some by name")
    p.add_argument("resource", nargs="+", metavar="KIND [NAME...]",
                   help="kind (svc, po, no, ns, endpointslices, all; comma-separated) and "
                        "names, or KIND/NAME")
    p.add_argument("-A", "--all-namespaces", action="store_true",
                   help="list across all namespaces")
    p.add_argument("-l", "--selector", metavar="SELECTOR", help="label selector")
    p.add_argument("--field-selector", metavar="SELECTOR", help="field selector")
    p.add_argument("-o", "--output", metavar="FORMAT", help="wide, yaml, json or name")
    p.add_argument("--show-labels", action="store_true", help="add a LABELS column")
    p.add_argument("-w", "--watch", action="store_true",
                   help="after listing, print a row per change until interrupted")
    p.add_argument("--watch-only", action="store_true",
                   help="print changes only, without the initial list")
    p.add_argument("--ignore-not-found", action="store_true",
                   help="named objects that don't exist are not an error")

    p = command("describe", "Show details of objects")
    p.add_argument("resource", nargs="+", metavar="KIND [NAME...]")
    p.add_argument("-A", "--all-namespaces", action="store_true")
    p.add_argument("-l", "--selector", metavar="SELECTOR", help="label selector")

    p = command("delete", "Delete objects by name, selector or manifest")
    p.add_argument("resource", nargs="*", metavar="KIND [NAME...]")
    p.add_argument("-f", "--filename", action="append", metavar="FILE",
                   help="delete the objects of these manifests")
    p.add_argument("-l", "--selector", metavar="SELECTOR", help="label selector")
    p.add_argument("--all", action="store_true", help="every object of the kind")
    p.add_argument("--grace-period", type=int, default=-1, metavar="N",
                   help="seconds for graceful termination (-1: the object's default)")
    p.add_argument("--now", action="store_true", help="same as --grace-period=1")
    p.add_argument("--wait", type=parse_bool, nargs="?", const=True, default=True,
                   metavar="BOOL", help="wait until the objects are gone (default true)")
    p.add_argument("--timeout", type=parse_duration, default=60.0, metavar="DURATION",
                   help="how long to wait (default 60s)")
    p.add_argument("--ignore-not-found", action="store_true",
                   help="objects that don't exist are not an error")

    p = command("wait", "Wait until objects meet a condition (--for=condition=Ready)")
    p.add_argument("resource", nargs="+", metavar="KIND [NAME...]")
    p.add_argument("--for", dest="for_", required=True, metavar="condition=COND[=VALUE]",
                   help="the condition to wait for, e.g. condition=Ready")
    p.add_argument("-l", "--selector", metavar="SELECTOR", help="label selector")
    p.add_argument("--all", action="store_true", help="every object of the kind")
    p.add_argument("--timeout", type=parse_duration, default=30.0, metavar="DURATION",
                   help="how long to wait (default 30s)")

    def pod_command(name: str, help_text: str) -> argparse.ArgumentParser:
        p = command(name, help_text)
        p.add_argument("pod", metavar="POD", help="pod name (or pod/NAME)")
        p.add_argument("-c", "--container", default=None, metavar="NAME",
                       help="container (default: the only one)")
        return p

    p = pod_command("exec", "Run a command in a container (through the API server)")
    p.add_argument("-i", "--stdin", action="store_true",
                   help="pass stdin to the container")
    p.add_argument("-t", "--tty", action="store_true",
                   help="stdin is a TTY (with -i: the local terminal, raw, resized)")
    p.add_argument("argv", nargs=argparse.REMAINDER, metavar="-- CMD [ARG...]")

    p = pod_command("logs", "Print a container's log (through the API server)")
    p.add_argument("-f", "--follow", action="store_true",
                   help="keep printing as the log grows, until the container stops")
    p.add_argument("--tail", type=int, default=-1, metavar="N",
                   help="only the last N lines (default: all)")
    p.add_argument("--timestamps", action="store_true",
                   help="each line with its RFC 3339 time")
    p.add_argument("-p", "--previous", action="store_true",
                   help="the log of the container's previous instance")
    p.add_argument("--since", type=flags.duration(), default=None, metavar="DURATION",
                   help="only lines newer than this (5s, 2m, 3h)")
    p.add_argument("--limit-bytes", type=int, default=None, metavar="N",
                   help="at most N bytes")

    p = command("cluster", "Run a local cluster: up, down, status, pki")
    cluster_sub = p.add_subparsers(dest="cluster_command", metavar="up|down|status|pki")
    cluster_sub.required = True
    cluster_commands.add_commands(cluster_sub)
    return parser


# --------------------------------------------------------------------------- context

@dataclass
class Context:
    client: Any
    server: str
    namespace: str  # -n, else the config's default
    explicit_namespace: str | None
    now: datetime = field(default_factory=lambda: datetime.now(UTC))


@dataclass(frozen=True)
class Target:
    kind: Kind
    names: tuple[str, ...] = ()


def parse_targets(words: Sequence[str]) -> list[Target]:
    """``svc``, ``svc web db``, ``svc,po``, ``all``, ``svc/web po/x`` → kinds with names."""
    if any("/" in w for w in words):
        if not all("/" in w for w in words):
            raise CliError("there is no need to specify a resource type as a separate "
                           "argument when passing arguments in resource/name form")
        grouped: dict[Kind, list[str]] = {}
        for w in words:
            kind_text, _, name = w.partition("/")
            if not name:
                raise CliError(f'arguments in resource/name form must have a single resource '
                               f'and name: "{w}"')
            grouped.setdefault(lookup(kind_text), []).append(name)
        return [Target(k, tuple(n)) for k, n in grouped.items()]
    kinds: list[Kind] = []
    for part in words[0].split(","):
        if not part:
            continue
        expanded = [POD, SERVICE] if part.strip().lower() == "all" else [lookup(part)]
        kinds.extend(k for k in expanded if k not in kinds)
    if not kinds:
        raise CliError("you must specify the type of resource")
    return [Target(k, tuple(words[1:])) for k in kinds]


def _items(result: dict[str, Any]) -> list[dict[str, Any]]:
    return list(result.get("items") or [])


# --------------------------------------------------------------------------- apply

def cmd_apply(args: argparse.Namespace, ctx: Context) -> int:
    if args.server_side:
        return _each_manifest(args, "apply", _resolved(args, ctx, _server_side_apply))
    return _each_manifest(args, "apply", lambda m: apply_manifest(
        ctx.client, m, flag_namespace=ctx.explicit_namespace, default_namespace=ctx.namespace))


def _server_side_apply(args: argparse.Namespace, ctx: Context, kind: Kind, obj: dict,
                       namespace: str | None) -> str:
    name = (obj.get("metadata") or {}).get("name")
    if not name:
        raise ApplyError("server-side apply needs metadata.name")
    ctx.client.patch(kind, name, obj, namespace=namespace, patch_type="apply",
                     field_manager=args.field_manager or "mpctl",
                     force=True if args.force_conflicts else None)
    return f"{tables.resource_name(kind)}/{name} serverside-applied"


def _create(args: argparse.Namespace, ctx: Context, kind: Kind, obj: dict,
            namespace: str | None) -> str:
    created = ctx.client.create(kind, obj, namespace)
    return f"{tables.resource_name(kind)}/{created['metadata']['name']} created"


def cmd_create(args: argparse.Namespace, ctx: Context) -> int:
    return _each_manifest(args, "create", _resolved(args, ctx, _create))


def _resolved(args: argparse.Namespace, ctx: Context,
              write: Callable[[argparse.Namespace, Context, Kind, dict, str | None], str]
              ) -> Callable[[Manifest], str]:
    """``write(args, ctx, kind, obj, namespace)`` for one manifest, its kind and namespace
    resolved as kubectl does (the manifest's, else ``-n``, else the context's)."""
    def one(m: Manifest) -> str:
        kind = by_kind(str(m.obj.get("apiVersion", "")), str(m.obj.get("kind", "")))
        namespace = resolve_namespace(m.obj, kind, ctx.explicit_namespace, ctx.namespace)
        return write(args, ctx, kind, dict(m.obj), namespace)
    return one


def _each_manifest(args: argparse.Namespace, verb: str, write: Callable[[Manifest], str]) -> int:
    """Run ``write`` for every manifest object; one line per object, errors as kubectl's.

    A lost connection ends the command (nothing more can succeed); any other failure
    is reported against its manifest and the next one is tried.
    """
    manifests = load(args.filename)
    if not manifests:
        raise CliError(f"no objects passed to {verb}")
    rc = 0
    for m in manifests:
        try:
            out(write(m) + "\n")
        except ConnectionFailed:
            raise
        except UnknownKind as exc:
            err(f'error: unable to recognize "{m.source}": {exc}')
            rc = 1
        except ApplyError as exc:
            err(f"error: {exc}")
            rc = 1
        except ApplyFailed as exc:
            err(server_error_line(exc.error, f'error when {exc.action} "{m.source}": '))
            rc = 1
        except ApiError as exc:
            action = "creating" if verb == "create" else "applying"
            err(server_error_line(exc, f'error when {action} "{m.source}": '))
            rc = 1
    return rc


# --------------------------------------------------------------------------- label, annotate

def metadata_patch(field: str, current: dict[str, str], changes: Sequence[str], *,
                   overwrite: bool) -> dict[str, Any]:
    """The merge patch for ``KEY=VALUE`` / ``KEY-`` arguments, refusing silent overwrites."""
    patch: dict[str, str | None] = {}
    for change in changes:
        if change.endswith("-") and "=" not in change:
            patch[change[:-1]] = None
            continue
        key, sep, value = change.partition("=")
        if not sep or not key:
            raise CliError(f"invalid {field[:-1]} spec: {change!r} (use KEY=VALUE or KEY-)")
        if key in current and current[key] != value and not overwrite:
            raise CliError(f"'{key}' already has a value ({current[key]}), and --overwrite "
                           "is false")
        patch[key] = value
    return {"metadata": {field: patch}}


def cmd_label(args: argparse.Namespace, ctx: Context) -> int:
    field = "labels" if args.command == "label" else "annotations"
    words = [args.resource, *args.args]
    if "/" in words[0]:
        kind_text, _, name = words[0].partition("/")
        changes = words[1:]
    elif len(words) >= 2:
        kind_text, name, changes = words[0], words[1], words[2:]
    else:
        raise CliError("you must specify a name")
    if not changes:
        raise CliError(f"at least one {field[:-1]} update is required")
    kind = lookup(kind_text)
    namespace = ctx.namespace if kind.namespaced else None
    current = (ctx.client.get(kind, name, namespace).get("metadata") or {}).get(field) or {}
    patch = metadata_patch(field, current, changes, overwrite=args.overwrite)
    ctx.client.patch(kind, name, patch, namespace=namespace, patch_type="merge",
                     field_manager=f"mpctl-{args.command}")
    out(f"{tables.resource_name(kind)}/{name} {'labeled' if field == 'labels' else 'annotated'}\n")
    return 0


# --------------------------------------------------------------------------- get

def _fetch(ctx: Context, target: Target, namespace: str | None, args: argparse.Namespace,
           ignore_not_found: bool) -> tuple[list[dict[str, Any]], int]:
    """The objects of one target (by name, or listed), and 1 if some name was missing."""
    rc = 0
    ns = namespace if target.kind.namespaced else None
    if target.names:
        objs = []
        for name in target.names:
            try:
                objs.append(ctx.client.get(target.kind, name, ns or ctx.namespace))
            except NotFound as exc:
                if not ignore_not_found:
                    err(server_error_line(exc))
                    rc = 1
        return objs, rc
    result = ctx.client.list_all(target.kind, ns, label_selector=args.selector,
                                 field_selector=getattr(args, "field_selector", None))
    return _items(result), rc


def _print_objects(fmt: str | None, kind: Kind, objs: list[dict[str, Any]], ctx: Context,
                   args: argparse.Namespace, *, kind_prefix: bool) -> str:
    if fmt == "name":
        return "".join(printers.to_name(kind, o) + "\n" for o in objs)
    return printers.print_table(kind, objs, ctx.now, wide=fmt == "wide",
                                all_namespaces=args.all_namespaces,
                                show_labels=args.show_labels, kind_prefix=kind_prefix)


def _check_output(fmt: str | None) -> None:
    if fmt is not None and fmt not in OUTPUT_FORMATS:
        raise CliError(f'unable to match a printer suitable for the output format "{fmt}", '
                       f"allowed formats are: {','.join(OUTPUT_FORMATS)}")


def cmd_get(args: argparse.Namespace, ctx: Context) -> int:
    _check_output(args.output)
    targets = parse_targets(args.resource)
    namespace = None if args.all_namespaces else ctx.namespace
    if args.watch or args.watch_only:
        return watch(args, ctx, targets, namespace)
    rc = 0
    fetched: list[tuple[Kind, list[dict[str, Any]]]] = []
    for target in targets:
        objs, missing = _fetch(ctx, target, namespace, args, args.ignore_not_found)
        rc |= missing
        fetched.append((target.kind, objs))

    if args.output in ("yaml", "json"):
        cleaned = [printers.clean_object(o, kind) for kind, objs in fetched for o in objs]
        single = len(targets) == 1 and len(targets[0].names) == 1
        if single and not cleaned:
            return rc
        doc = cleaned[0] if single else printers.as_list(cleaned)
        out(printers.to_yaml(doc) if args.output == "yaml" else printers.to_json(doc))
        return rc

    several = len(fetched) > 1
    sections = [_print_objects(args.output, kind, objs, ctx, args, kind_prefix=several)
                for kind, objs in fetched if objs]
    if sections:
        out(("\n" if args.output != "name" else "").join(sections))
    elif not any(t.names for t in targets):
        namespaced = any(t.kind.namespaced for t in targets)
        err(printers.no_resources_message(namespace, namespaced))
    return rc


def watch(args: argparse.Namespace, ctx: Context, targets: list[Target],
          namespace: str | None) -> int:
    if len(targets) != 1:
        raise CliError("you may only specify a single resource type")
    target = targets[0]
    if len(target.names) > 1:
        raise CliError("watch is only supported on individual resources and resource "
                       "collections, but multiple resources were found")
    kind = target.kind
    ns = (namespace if kind.namespaced else None)
    if target.names and kind.namespaced and ns is None:
        ns = ctx.namespace
    field_selector = args.field_selector
    if target.names:
        by_name = f"metadata.name={target.names[0]}"
        field_selector = f"{by_name},{field_selector}" if field_selector else by_name
    listed = ctx.client.list_all(kind, ns, label_selector=args.selector,
                                 field_selector=field_selector)
    rv = (listed.get("metadata") or {}).get("resourceVersion")
    fmt = args.output
    wide = fmt == "wide"
    table = TableWriter()
    header_done = False

    def emit(objs: list[dict[str, Any]]) -> None:
        nonlocal header_done
        if not objs:
            return
        if fmt in ("yaml", "json"):
            for o in objs:
                clean = printers.clean_object(o, kind)
                out("---\n" + printers.to_yaml(clean) if fmt == "yaml"
                    else printers.to_json(clean))
            return
        if fmt == "name":
            out("".join(printers.to_name(kind, o) + "\n" for o in objs))
            return
        rows = tables.table_rows(kind, objs, datetime.now(UTC), wide=wide,
                                   all_namespaces=args.all_namespaces,
                                   show_labels=args.show_labels, header=not header_done)
        header_done = True
        out(table.format(rows))

    if not args.watch_only:
        emit(_items(listed))
    try:
        events = ctx.client.watch(kind, ns, resource_version=rv, label_selector=args.selector,
                                  field_selector=field_selector)
        for event in events:
            if event.get("type") == "BOOKMARK":
                continue
            emit([event["object"]])
    except KeyboardInterrupt:
        return 0
    return 0


# --------------------------------------------------------------------------- describe

def _events_for(ctx: Context, kind: Kind, obj: dict[str, Any]) -> list[dict[str, Any]]:
    meta = obj.get("metadata") or {}
    parts = [f"involvedObject.name={meta.get('name')}", f"involvedObject.kind={kind.kind}"]
    if meta.get("namespace"):
        parts.insert(0, f"involvedObject.namespace={meta['namespace']}")
    if meta.get("uid"):
        parts.append(f"involvedObject.uid={meta['uid']}")
    ns = meta.get("namespace") or None
    try:
        return _items(ctx.client.list_all(EVENT, ns, field_selector=",".join(parts)))
    except ConnectionFailed:
        raise
    except ApiError:
        return []  # a server without events (or without these selectors) has none to show


def describe_object(ctx: Context, kind: Kind, obj: dict[str, Any]) -> str:
    meta = obj.get("metadata") or {}
    name = meta.get("name")
    slices: list[dict[str, Any]] = []
    pods: list[dict[str, Any]] | None = None
    if kind is SERVICE:
        try:
            slices = _items(ctx.client.list_all(
                ENDPOINTSLICE, meta.get("namespace") or ctx.namespace,
                label_selector=f"kubernetes.io/service-name={name}"))
        except ConnectionFailed:
            raise
        except ApiError:
            slices = []
    if kind is NODE:
        try:
            pods = _items(ctx.client.list_all(POD, None, field_selector=f"spec.nodeName={name}"))
        except ConnectionFailed:
            raise
        except ApiError:
            pods = None
    return describing.describe(kind, obj, ctx.now, events=_events_for(ctx, kind, obj),
                               slices=slices, pods=pods)


def cmd_describe(args: argparse.Namespace, ctx: Context) -> int:
    targets = parse_targets(args.resource)
    namespace = None if args.all_namespaces else ctx.namespace
    rc = 0
    texts: list[str] = []
    for target in targets:
        objs, missing = _fetch(ctx, target, namespace, args, False)
        rc |= missing
        texts.extend(describe_object(ctx, target.kind, o) for o in objs)
        if not objs and not target.names:
            err(printers.no_resources_message(namespace, target.kind.namespaced))
    if texts:
        out("\n\n".join(texts))
    return rc


# --------------------------------------------------------------------------- delete

@dataclass(frozen=True)
class Deletion:
    kind: Kind
    name: str
    namespace: str | None


def _deletions(args: argparse.Namespace, ctx: Context) -> list[Deletion]:
    if args.filename:
        if args.resource:
            raise CliError("when -f is given, no KIND or NAME arguments are allowed")
        todo = []
        for m in load(args.filename):
            kind = by_kind(str(m.obj.get("apiVersion")), str(m.obj.get("kind")))
            name = (m.obj.get("metadata") or {}).get("name")
            if not name:
                raise CliError(f'resource name may not be empty (in "{m.source}")')
            ns = resolve_namespace(m.obj, kind, ctx.explicit_namespace, ctx.namespace)
            todo.append(Deletion(kind, name, ns))
        return todo
    if not args.resource:
        raise CliError("you must provide one or more resources by argument or filename")
    targets = parse_targets(args.resource)
    todo = []
    for target in targets:
        ns = ctx.namespace if target.kind.namespaced else None
        if target.names:
            if args.selector or args.all:
                raise CliError("name cannot be provided when a selector or --all is specified")
            todo.extend(Deletion(target.kind, n, ns) for n in target.names)
        elif args.selector or args.all:
            listed = ctx.client.list_all(target.kind, ns, label_selector=args.selector)
            todo.extend(Deletion(target.kind, tables.name_of(o), ns) for o in _items(listed))
        else:
            raise CliError("resource(s) were provided, but no name was specified")
    return todo


def _gone(ctx: Context, d: Deletion, uid: str | None) -> bool:
    try:
        obj = ctx.client.get(d.kind, d.name, d.namespace)
    except NotFound:
        return True
    return bool(uid) and (obj.get("metadata") or {}).get("uid") != uid


def _poll_each(pending: list[T], done: Callable[[T], bool], label: Callable[[T], str],
               timeout: float) -> int:
    """Poll (backing off to 1 s) until ``done`` holds for every item; 1 on timeout.

    kubectl's ``delete --wait`` and ``wait`` both end this way: one line per object
    still pending at the deadline.
    """
    deadline = time.monotonic() + timeout
    delay = 0.05
    while True:
        pending = [item for item in pending if not done(item)]
        if not pending:
            return 0
        if time.monotonic() >= deadline:
            for item in pending:
                err(f"error: timed out waiting for the condition on {label(item)}")
            return 1
        time.sleep(min(delay, max(0.0, deadline - time.monotonic())))
        delay = min(delay * 2, 1.0)


def _wait_gone(ctx: Context, pending: list[tuple[Deletion, str | None]], timeout: float) -> int:
    """Poll until every object is gone (404, or replaced by a new uid); 1 on timeout."""
    return _poll_each(pending, lambda p: _gone(ctx, *p),
                      lambda p: f"{p[0].kind.plural}/{p[0].name}", timeout)


def cmd_delete(args: argparse.Namespace, ctx: Context) -> int:
    grace = 1 if args.now else (args.grace_period if args.grace_period >= 0 else None)
    rc = 0
    pending: list[tuple[Deletion, str | None]] = []
    todo = _deletions(args, ctx)
    if not todo and (args.selector or args.all):
        err(printers.no_resources_message(ctx.namespace, True))
    for d in todo:
        try:
            result = ctx.client.delete(d.kind, d.name, d.namespace, grace_period_seconds=grace,
                                       propagation_policy=PROPAGATION)
        except NotFound as exc:
            if not args.ignore_not_found:
                err(server_error_line(exc))
                rc = 1
            continue
        out(f'{tables.resource_name(d.kind)} "{d.name}" deleted\n')
        if args.wait:
            uid = None
            if result.get("kind") != "Status":
                uid = (result.get("metadata") or {}).get("uid")
            pending.append((d, uid))
    if pending:
        rc |= _wait_gone(ctx, pending, args.timeout)
    return rc


# --------------------------------------------------------------------------- wait

def parse_condition(text: str) -> tuple[str, str]:
    """``condition=Ready`` → ("Ready", "true"); ``condition=Ready=false`` → (.., "false")."""
    what, _, rest = text.partition("=")
    cond, _, value = rest.partition("=")
    if what != "condition" or not cond:
        raise CliError(f"unrecognized condition: {text!r} (only condition=NAME[=VALUE])")
    return cond, (value or "true").lower()


def cmd_wait(args: argparse.Namespace, ctx: Context) -> int:
    cond, value = parse_condition(args.for_)
    targets = parse_targets(args.resource)
    pending: list[tuple[Kind, str]] = []
    for t in targets:
        if t.names:
            pending += [(t.kind, n) for n in t.names]
        elif args.selector or args.all:
            ns = ctx.namespace if t.kind.namespaced else None
            found = _items(ctx.client.list_all(t.kind, ns, label_selector=args.selector))
            pending += [(t.kind, o["metadata"]["name"]) for o in found]
        else:
            raise CliError("resource(s) were provided, but no name was specified")
    if not pending:
        raise CliError("no matching resources found")

    def met(target: tuple[Kind, str]) -> bool:
        kind, name = target
        obj = ctx.client.get(kind, name, ctx.namespace if kind.namespaced else None)
        conds = {c.get("type"): str(c.get("status", "")).lower()
                 for c in (obj.get("status") or {}).get("conditions") or []}
        if conds.get(cond) != value:
            return False
        out(f"{tables.resource_name(kind)}/{name} condition met\n")
        return True

    return _poll_each(pending, met, lambda t: f"{t[0].plural}/{t[1]}", args.timeout)


# --------------------------------------------------------------------------- exec, logs

def _pod(args: argparse.Namespace, ctx: Context) -> dict[str, Any]:
    kind_text, slash, name = args.pod.rpartition("/")
    if slash and lookup(kind_text) is not POD:
        raise CliError(f"{args.pod}: only pods can be used here")
    return ctx.client.get(POD, name, ctx.namespace)


def cmd_exec(args: argparse.Namespace, ctx: Context) -> int:
    command = args.argv[1:] if args.argv[:1] == ["--"] else args.argv
    pod = _pod(args, ctx)
    if not command:
        raise PodIOError("you must specify at least one command for the container")
    container = podio.container_name(pod, args.container)
    phase = pod.get("status", {}).get("phase")
    if phase in ("Succeeded", "Failed"):
        raise PodIOError(f"cannot exec into a container in a completed pod; current phase "
                         f"is {phase}")
    return podio.run_exec(ctx.client.config, ctx.namespace, pod["metadata"]["name"],
                          container=container, command=command, stdin=args.stdin,
                          tty=args.tty)


def cmd_logs(args: argparse.Namespace, ctx: Context) -> int:
    pod = _pod(args, ctx)
    container = podio.container_name(pod, args.container)

    def write(data: bytes) -> None:
        sys.stdout.buffer.write(data)
        sys.stdout.buffer.flush()

    params = podio.log_params(
        container, follow=args.follow, tail=args.tail, timestamps=args.timestamps,
        previous=args.previous, limit_bytes=args.limit_bytes,
        since_seconds=max(1, int(args.since)) if args.since is not None else None)
    podio.stream_logs(ctx.client.config, ctx.namespace, pod["metadata"]["name"], params,
                      write)
    return 0


# --------------------------------------------------------------------------- main

COMMANDS = {"apply": cmd_apply, "create": cmd_create, "get": cmd_get,
            "describe": cmd_describe, "delete": cmd_delete, "label": cmd_label,
            "annotate": cmd_label, "wait": cmd_wait, "exec": cmd_exec, "logs": cmd_logs}
CLUSTER_COMMANDS = {"up": cluster_commands.cmd_up, "down": cluster_commands.cmd_down,
                    "status": cluster_commands.cmd_status, "pki": cluster_commands.cmd_pki}


def run_cluster(args: argparse.Namespace) -> int:
    try:
        return CLUSTER_COMMANDS[args.cluster_command](args)
    except BrokenPipeError:
        raise
    except (cluster_commands.UpError, SpecError, NetworkError, ValueError, OSError,
            ApiError, ConnectionFailed, PKIError) as exc:
        err(f"error: {exc}")
        return 1


def _on_sigterm(signum: int, frame: Any) -> NoReturn:
    raise KeyboardInterrupt


def run(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "cluster":
        return run_cluster(args)
    if args.verbose:
        logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(message)s")
        logging.getLogger("httpx").setLevel(logging.WARNING)
    server = args.server
    try:
        config = load_config(server=server, kubeconfig=args.kubeconfig)
    except ConfigError as exc:
        err(f"error: {exc}")
        return 2 if isinstance(exc, ServerFlagError) else 1
    watching = args.command == "get" and (args.watch or args.watch_only)
    try:
        with Client(config) as client:
            ctx = Context(client=client, server=config.server,
                          namespace=args.namespace or config.namespace,
                          explicit_namespace=args.namespace)
            return COMMANDS[args.command](args, ctx)
    except KeyboardInterrupt:
        return 0 if watching else 130
    except ConnectionFailed as exc:
        err(connection_error_line(exc, config.server))
    except ApiError as exc:
        err(server_error_line(exc))
    except (CliError, ManifestError, ApplyError, UnknownKind, PodIOError, ValueError) as exc:
        err(f"error: {exc}")
    except yaml.YAMLError as exc:
        err(f"error: {exc}")
    except OSError as exc:
        err(f"error: {exc.strerror or exc}" + (f": {exc.filename}" if exc.filename else ""))
    return 1


def main(argv: Sequence[str] | None = None) -> None:
    signal.signal(signal.SIGTERM, _on_sigterm)
    try:
        code = run(argv)
    except KeyboardInterrupt:
        code = 130
    except BrokenPipeError:
        # the reader went away (``mpctl get ... | head``): not an error worth a line
        with contextlib.suppress(OSError):
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
        code = 0
    except Exception as exc:  # noqa: BLE001 - the promise is: never a traceback
        err(f"error: {type(exc).__name__}: {exc}")
        code = 1
    sys.exit(code)


if __name__ == "__main__":
    main()
