"""Discovery documents (legacy form), built from the resource registry.

``/api`` and ``/apis`` list the served group-versions; ``/api/v1`` and
``/apis/<group>/<version>`` list resources with verbs, short names and
subresources, which is what kubectl reads before any other request.
"""

from __future__ import annotations

from typing import Any

from apiserver import podconnect, proxytargets, scale
from apiserver.registry.strategy import Strategy
from apiserver.resources import group_versions, in_group_version

SERVER_VERSION = {
    "major": "1",
    "minor": "36",
    "gitVersion": "v1.36.0-miniplane",
    "gitCommit": "0000000000000000000000000000000000000000",
    "gitTreeState": "clean",
    "buildDate": "2026-11-01T00:00:00Z",
    "goVersion": "python",
    "compiler": "cpython",
    "platform": "linux/amd64",
}

_SUB_VERBS = {"status": ["get", "patch", "update"], "finalize": ["update"],
              scale.SUBRESOURCE: list(scale.VERBS)}
# Subresources whose body is another group's kind: kubectl's scale client reads the
# Scale's group and version from here (without them it would ask for an apps/v1 Scale).
_SUB_KINDS = {scale.SUBRESOURCE: {"group": scale.GROUP, "version": scale.VERSION,
                                  "kind": scale.KIND}}


def api_versions(server_address: str) -> dict[str, Any]:
    return {"kind": "APIVersions", "versions": ["v1"],
            "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0",
                                            "serverAddress": server_address}]}


def api_group_list() -> dict[str, Any]:
    groups = []
    for group, version in group_versions():
        if not group:
            continue
        gv = {"groupVersion": f"{group}/{version}", "version": version}
        groups.append({"name": group, "versions": [gv], "preferredVersion": gv})
    return {"kind": "APIGroupList", "apiVersion": "v1", "groups": groups}


def _resource_entries(rt: Strategy) -> list[dict[str, Any]]:
    k = rt.kind
    entry: dict[str, Any] = {"name": k.plural, "singularName": k.singular,
                             "namespaced": k.namespaced, "kind": k.kind, "verbs": list(k.verbs)}
    if k.short_names:
        entry["shortNames"] = list(k.short_names)
    if k.categories:
        entry["categories"] = list(k.categories)
    entries = [entry]
    for sub in k.subresources:
        entries.append({"name": f"{k.plural}/{sub}", "singularName": "",
                        "namespaced": k.namespaced, "kind": k.kind,
                        "verbs": _SUB_VERBS.get(sub, ["get"]), **_SUB_KINDS.get(sub, {})})
    for sub, action in rt.actions.items():
        entries.append({"name": f"{k.plural}/{sub}", "singularName": "",
                        "namespaced": k.namespaced, "kind": action.kind, "verbs": ["create"]})
    if not k.group:
        entries += podconnect.discovery_entries(k.plural)  # log, exec, attach…
        entries += proxytargets.discovery_entries(k.plural)  # pods/proxy, services/proxy
    return entries


def api_resource_list(group: str, version: str) -> dict[str, Any] | None:
    served = in_group_version(group, version)
    if not served:
        return None
    resources = [e for rt in served for e in _resource_entries(rt)]
    return {"kind": "APIResourceList", "apiVersion": "v1",
            "groupVersion": f"{group}/{version}" if group else version, "resources": resources}
