"""A Service's IP family fields, decided against the families this cluster serves.

Kubernetes' ``initIPFamilyFields`` (``pkg/registry/core/service/storage/alloc.go``),
as a pure function: it runs when a Service with a ClusterIP (or headless) is written,
after validation has judged the fields' shapes, and before any address is taken. It
fills ``ipFamilyPolicy`` (written, else the stored one, else SingleStack; a headless
Service without a selector defaults to RequireDualStack) and ``ipFamilies`` (written,
else inferred from ``clusterIPs``, else the cluster's first family), and refuses what
the cluster cannot serve with Kubernetes' own messages: a family it does not have
(``spec.ipFamilies[i]``, or ``spec.clusterIPs[i]`` when only the address says so),
``RequireDualStack`` on a single-family cluster, two addresses or two families with
SingleStack. ``PreferDualStack`` falls back to one family and keeps its policy, as in
Kubernetes. A headless Service without a selector may name both families on any
cluster (it gets no address), as Kubernetes allows.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from apimachinery import names
from apimachinery.services import HEADLESS, is_headless
from apiserver.errors import FieldError, invalid

IPV4, IPV6 = "IPv4", "IPv6"
SINGLE_STACK, PREFER_DUAL_STACK, REQUIRE_DUAL_STACK = (
    "SingleStack", "PreferDualStack", "RequireDualStack")
_WITH_ADDRESS = ("ClusterIP", "NodePort", "LoadBalancer")


@dataclass(frozen=True)
class FamilyFields:
    """What the Service stores: its policy, families, and the addresses written (the
    secondary one dropped when an update turned the Service SingleStack); an empty
    ``cluster_ips`` means "allocate"."""

    policy: str
    families: tuple[str, ...]
    cluster_ips: tuple[str, ...]


def family_of(ip: str) -> str:
    """``IPv4``/``IPv6`` for an address (validation has judged it already)."""
    return {4: IPV4, 6: IPV6}.get(names.ip_family(ip) or 0, "unknown")


def written_cluster_ips(spec: dict) -> list[str]:
    """``clusterIPs``, else ``[clusterIP]`` when only the singular was written (an
    old client: Kubernetes' ``normalizeClusterIPs``); ``None`` kept for headless."""
    ips = spec.get("clusterIPs")
    if isinstance(ips, list) and ips:
        return [ip for ip in ips if isinstance(ip, str)]
    ip = spec.get("clusterIP")
    return [ip] if isinstance(ip, str) and ip else []


def ip_family_fields(spec: dict, old_spec: dict | None, *,
                     configured: Sequence[str]) -> FamilyFields | list[FieldError]:
    """The family fields ``spec`` gets on a cluster serving ``configured`` (its first
    is the default), or why it cannot have them. ``old_spec`` is None on create."""
    policy = _policy(spec, old_spec)
    families = _strings(spec.get("ipFamilies"))
    ips = written_cluster_ips(spec)
    if old_spec is not None and _unchanged_prefer_dual_stack(spec, old_spec):
        return FamilyFields(policy, tuple(families), tuple(ips))
    errors: list[FieldError] = []
    if old_spec is not None:
        ips, families = _on_update(policy, ips, families, old_spec, errors)
    if policy == SINGLE_STACK:
        if len(ips) == 2:
            errors.append(invalid("spec.ipFamilyPolicy", policy,
                                  "must be 'RequireDualStack' or 'PreferDualStack' when "
                                  "multiple cluster IPs are specified"))
        if len(families) == 2:
            errors.append(invalid("spec.ipFamilyPolicy", policy,
                                  "must be 'RequireDualStack' or 'PreferDualStack' when "
                                  "multiple IP families are specified"))
    for i, ip in enumerate(ips):  # families not written are inferred from the addresses
        if ip == HEADLESS:
            break
        if i >= len(families):
            family = family_of(ip)
            if family in configured:
                families.append(family)
            else:
                errors.append(invalid(f"spec.clusterIPs[{i}]", ips,
                                      f"{family} is not configured on this cluster"))
    if errors:
        return errors
    if is_headless(spec) and not spec.get("selector"):
        # no address to allocate: any families, the other one added unless SingleStack
        families = families or [configured[0]]
        if len(families) < 2 and policy != SINGLE_STACK:
            families.append(_other(families[0]))
        return FamilyFields(policy, tuple(families), tuple(ips))
    if policy == REQUIRE_DUAL_STACK and len(configured) < 2:
        errors.append(invalid("spec.ipFamilyPolicy", policy,
                              "this cluster is not configured for dual-stack services"))
    errors.extend(invalid(f"spec.ipFamilies[{i}]", family, "not configured on this cluster")
                  for i, family in enumerate(families) if family not in configured)
    if errors:
        return errors
    families = families or [configured[0]]
    if policy != SINGLE_STACK and len(families) == 1 and len(configured) == 2:
        families.append(_other(families[0]))
    return FamilyFields(policy, tuple(families), tuple(ips))


def _policy(spec: dict, old_spec: dict | None) -> str:
    """Written, else kept from before (an update never flips single/dual by itself),
    else SingleStack; headless without a selector: RequireDualStack."""
    written = spec.get("ipFamilyPolicy")
    if written:
        return str(written)
    if old_spec is not None and old_spec.get("ipFamilyPolicy"):
        return str(old_spec["ipFamilyPolicy"])
    if is_headless(spec) and not spec.get("selector"):
        return REQUIRE_DUAL_STACK
    return SINGLE_STACK


def _unchanged_prefer_dual_stack(spec: dict, old_spec: dict) -> bool:
    """A PreferDualStack Service updated without touching its addresses or families
    keeps them, even after the cluster's families changed (Kubernetes'
    ``isMatchingPreferDualStackClusterIPFields``)."""
    return (spec.get("ipFamilyPolicy") == PREFER_DUAL_STACK
            and old_spec.get("ipFamilyPolicy") in (None, PREFER_DUAL_STACK)
            and spec.get("type") == old_spec.get("type")
            and spec.get("type") in _WITH_ADDRESS
            and _strings(spec.get("clusterIPs")) == _strings(old_spec.get("clusterIPs"))
            and _strings(spec.get("ipFamilies")) == _strings(old_spec.get("ipFamilies")))


def _on_update(policy: str, ips: list[str], families: list[str], old_spec: dict,
               errors: list[FieldError]) -> tuple[list[str], list[str]]:
    """SingleStack with the old lists unchanged is clear intent: keep the primary only.
    Another policy may not shrink them."""
    old_ips, old_families = _strings(old_spec.get("clusterIPs")), _strings(
        old_spec.get("ipFamilies"))
    if policy == SINGLE_STACK:
        if ips == old_ips and len(ips) > 1:
            ips = ips[:1]
        if families == old_families and len(families) > 1:
            families = families[:1]
        return ips, families
    if ips and len(ips) < len(old_ips):
        errors.append(invalid("spec.ipFamilyPolicy", policy,
                              "must be 'SingleStack' to release the secondary cluster IP"))
    if families and len(families) < len(old_families):
        errors.append(invalid("spec.ipFamilyPolicy", policy,
                              "must be 'SingleStack' to release the secondary IP family"))
    return ips, families


def _other(family: str) -> str:
    return IPV6 if family == IPV4 else IPV4


def _strings(value: Any) -> list[str]:
    return [v for v in value if isinstance(v, str)] if isinstance(value, list) else []
