"""RBAC: rule matching (pure), the in-memory index of roles and bindings, the authorizer.

Three rooms, as Kubernetes' ``plugin/pkg/auth/authorizer/rbac``:

- rules: ``PolicyRule`` (the JSON rule, frozen into sets once) and ``rule_allows``,
  which decides one rule against one request as Kubernetes' ``RuleAllows`` does:
  ``*`` everywhere, ``resource/subresource`` and ``*/subresource``,
  ``resourceNames``, ``nonResourceURLs`` with a trailing ``*``. ``covers`` is the
  escalation check's "does one set of rules hold everything another grants";
- ``RBACIndex``: every Role, ClusterRole, RoleBinding and ClusterRoleBinding, kept
  by the API server from its committed-log feed (so a binding written through
  another server counts here too), with bindings indexed by subject. A request
  costs the bindings of the user's name and groups, not a database query;
- ``RBACAuthorizer``: allow when a binding that applies to the user refers to a
  role with a rule that allows the request; otherwise no opinion (with the
  reasons Kubernetes gives, e.g. a binding to a role that does not exist).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from apiserver.auth.authorizer import Decision, Verdict
from apiserver.auth.requestinfo import RequestInfo
from apiserver.auth.user import SERVICE_ACCOUNT_PREFIX, UserInfo

GROUP = "rbac.authorization.k8s.io"
ALL = "*"

# Storage keys of the four kinds (``plural.group``).
ROLES = f"roles.{GROUP}"
CLUSTER_ROLES = f"clusterroles.{GROUP}"
ROLE_BINDINGS = f"rolebindings.{GROUP}"
CLUSTER_ROLE_BINDINGS = f"clusterrolebindings.{GROUP}"
KEYS = (ROLES, CLUSTER_ROLES, ROLE_BINDINGS, CLUSTER_ROLE_BINDINGS)


# --------------------------------------------------------------------------- rules

@dataclass(frozen=True)
class PolicyRule:
    """One ``rules[]`` entry of a Role or ClusterRole."""

    verbs: frozenset[str]
    api_groups: frozenset[str] = frozenset()
    resources: frozenset[str] = frozenset()
    resource_names: frozenset[str] = frozenset()
    non_resource_urls: frozenset[str] = frozenset()

    @classmethod
    def of(cls, rule: Mapping[str, Any]) -> PolicyRule:
        """From the JSON rule; fields of the wrong type count as empty (validation refuses
        them before they are stored)."""
        def strings(key: str) -> frozenset[str]:
            value = rule.get(key)
            if not isinstance(value, list):
                return frozenset()
            return frozenset(v for v in value if isinstance(v, str))

        return cls(strings("verbs"), strings("apiGroups"), strings("resources"),
                   strings("resourceNames"), strings("nonResourceURLs"))

    def to_dict(self) -> dict[str, list[str]]:
        out: dict[str, list[str]] = {"verbs": sorted(self.verbs)}
        for key, values in (("apiGroups", self.api_groups), ("resources", self.resources),
                            ("resourceNames", self.resource_names),
                            ("nonResourceURLs", self.non_resource_urls)):
            if values:
                out[key] = sorted(values)
        if self.api_groups == frozenset() and self.resources:
            out["apiGroups"] = []
        return out


def rule(verbs: Iterable[str], groups: Iterable[str] = (), resources: Iterable[str] = (),
         names: Iterable[str] = (), urls: Iterable[str] = ()) -> PolicyRule:
    """A rule written in code (bootstrap policy, tests)."""
    return PolicyRule(frozenset(verbs), frozenset(groups), frozenset(resources),
                      frozenset(names), frozenset(urls))


def rules_of(obj: Mapping[str, Any]) -> tuple[PolicyRule, ...]:
    raw = obj.get("rules")
    if not isinstance(raw, list):
        return ()
    return tuple(PolicyRule.of(r) for r in raw if isinstance(r, dict))


def verb_matches(r: PolicyRule, verb: str) -> bool:
    return ALL in r.verbs or verb in r.verbs


def group_matches(r: PolicyRule, group: str) -> bool:
    return ALL in r.api_groups or group in r.api_groups


def resource_matches(r: PolicyRule, resource: str, subresource: str) -> bool:
    """``*``, the exact ``resource[/subresource]``, or ``*/subresource``."""
    if ALL in r.resources:
        return True
    combined = f"{resource}/{subresource}" if subresource else resource
    if combined in r.resources:
        return True
    return bool(subresource) and f"*/{subresource}" in r.resources


def name_matches(r: PolicyRule, name: str) -> bool:
    return not r.resource_names or name in r.resource_names


def url_matches(r: PolicyRule, path: str) -> bool:
    for url in r.non_resource_urls:
        if url in (ALL, path) or url.endswith("*") and path.startswith(url[:-1]):
            return True
    return False


def rule_allows(r: PolicyRule, info: RequestInfo) -> bool:
    """Kubernetes' ``RuleAllows``: does ``r`` permit the request ``info``?"""
    if not verb_matches(r, info.verb):
        return False
    if info.is_resource_request:
        return (group_matches(r, info.api_group)
                and resource_matches(r, info.resource, info.subresource)
                and name_matches(r, info.name))
    return url_matches(r, info.path)


def rules_allow(rules: Iterable[PolicyRule], info: RequestInfo) -> bool:
    return any(rule_allows(r, info) for r in rules)


# --------------------------------------------------------------------------- covers

def _has_all(owner: frozenset[str], wanted: Iterable[str]) -> bool:
    return ALL in owner or all(w in owner for w in wanted)


def _resource_covered(owner: frozenset[str], resource: str) -> bool:
    if ALL in owner or resource in owner:
        return True
    base, slash, sub = resource.partition("/")
    return bool(slash) and (f"{base}/*" in owner or f"*/{sub}" in owner)


def _url_covered(owner: frozenset[str], url: str) -> bool:
    for have in owner:
        if have in (ALL, url):
            return True
        if have.endswith("*") and url.startswith(have[:-1]):
            return True
    return False


def _breakdown(r: PolicyRule) -> Iterator[PolicyRule]:
    """A rule as one rule per (group, resource, verb, name) or (url, verb), the unit
    ``covers`` compares (Kubernetes' ``BreakdownRule``)."""
    for verb in sorted(r.verbs):
        for group in sorted(r.api_groups):
            for resource in sorted(r.resources):
                names = sorted(r.resource_names) or [""]
                for name in names:
                    yield rule([verb], [group], [resource], [name] if name else [])
        for url in sorted(r.non_resource_urls):
            yield rule([verb], urls=[url])


def _rule_covers(owner: PolicyRule, sub: PolicyRule) -> bool:
    if not _has_all(owner.verbs, sub.verbs):
        return False
    if sub.non_resource_urls:
        return all(_url_covered(owner.non_resource_urls, u) for u in sub.non_resource_urls)
    return (_has_all(owner.api_groups, sub.api_groups)
            and all(_resource_covered(owner.resources, res) for res in sub.resources)
            and (not owner.resource_names
                 or (bool(sub.resource_names) and sub.resource_names <= owner.resource_names)))


def uncovered(owner: Iterable[PolicyRule], wanted: Iterable[PolicyRule]) -> list[PolicyRule]:
    """The pieces of ``wanted`` no rule of ``owner`` holds (empty: ``owner`` covers it)."""
    owner = tuple(owner)
    missing: list[PolicyRule] = []
    for w in wanted:
        for piece in _breakdown(w):
            if not any(_rule_covers(o, piece) for o in owner) and piece not in missing:
                missing.append(piece)
    return missing


def describe_rule(r: PolicyRule) -> str:
    """How Kubernetes prints a rule in an escalation refusal."""
    def quoted(values: frozenset[str]) -> str:
        return " ".join(f'"{v}"' for v in sorted(values))

    if r.non_resource_urls:
        return f"{{NonResourceURLs:[{quoted(r.non_resource_urls)}], Verbs:[{quoted(r.verbs)}]}}"
    text = f"{{APIGroups:[{quoted(r.api_groups)}], Resources:[{quoted(r.resources)}]"
    if r.resource_names:
        text += f", ResourceNames:[{quoted(r.resource_names)}]"
    return text + f", Verbs:[{quoted(r.verbs)}]}}"


# --------------------------------------------------------------------------- bindings

SubjectKey = tuple[str, str]  # ("User", username) or ("Group", group)


@dataclass(frozen=True)
class RoleRef:
    kind: str  # Role | ClusterRole
    name: str


@dataclass(frozen=True)
class Binding:
    """A RoleBinding (``namespace`` set) or ClusterRoleBinding (``namespace`` "")."""

    namespace: str
    name: str
    role: RoleRef
    subjects: tuple[SubjectKey, ...]

    @property
    def kind(self) -> str:
        return "RoleBinding" if self.namespace else "ClusterRoleBinding"


def subject_key(subject: Mapping[str, Any], binding_namespace: str) -> SubjectKey | None:
    """The user or group a subject names; a ServiceAccount is its user name
    (``system:serviceaccount:<ns>:<name>``, the namespace defaulting to the binding's)."""
    kind, name = subject.get("kind"), subject.get("name")
    if not isinstance(name, str) or not name:
        return None
    if kind == "User":
        return ("User", name)
    if kind == "Group":
        return ("Group", name)
    if kind == "ServiceAccount":
        ns = subject.get("namespace") or binding_namespace
        if not isinstance(ns, str) or not ns:
            return None
        return ("User", f"{SERVICE_ACCOUNT_PREFIX}{ns}:{name}")
    return None


def binding_of(obj: Mapping[str, Any]) -> Binding | None:
    meta = obj.get("metadata") or {}
    ref = obj.get("roleRef") or {}
    if not isinstance(meta, dict) or not isinstance(ref, dict):
        return None
    ns = str(meta.get("namespace") or "")
    subjects = obj.get("subjects") or []
    keys = tuple(k for s in subjects if isinstance(s, dict)
                 for k in [subject_key(s, ns)] if k is not None) if isinstance(subjects,
                                                                               list) else ()
    return Binding(ns, str(meta.get("name") or ""),
                   RoleRef(str(ref.get("kind") or ""), str(ref.get("name") or "")), keys)


def user_keys(user: UserInfo) -> list[SubjectKey]:
    return [("User", user.name), *(("Group", g) for g in user.groups)]


# --------------------------------------------------------------------------- the index

class RBACIndex:
    """Roles and bindings as the committed log has them, bindings indexed by subject.

    Fed by ``apply`` (one object's new state, or None when it went) and ``replace``
    (everything, at start and after the log was compacted under the feed). Single
    writer: the event loop; lookups are plain dict reads.
    """

    def __init__(self) -> None:
        self.roles: dict[tuple[str, str], tuple[PolicyRule, ...]] = {}
        self.cluster_roles: dict[str, tuple[PolicyRule, ...]] = {}
        self._bindings: dict[tuple[str, str], Binding] = {}
        self._by_subject: dict[SubjectKey, set[tuple[str, str]]] = {}

    def replace(self, objects: Mapping[str, Iterable[Mapping[str, Any]]]) -> None:
        self.roles, self.cluster_roles = {}, {}
        self._bindings, self._by_subject = {}, {}
        for key, objs in objects.items():
            for obj in objs:
                meta = obj.get("metadata") or {}
                self.apply(key, str(meta.get("namespace") or ""), str(meta.get("name") or ""),
                           obj)

    def apply(self, key: str, namespace: str, name: str,
              obj: Mapping[str, Any] | None) -> None:
        if key == CLUSTER_ROLES:
            if obj is None:
                self.cluster_roles.pop(name, None)
            else:
                self.cluster_roles[name] = rules_of(obj)
        elif key == ROLES:
            if obj is None:
                self.roles.pop((namespace, name), None)
            else:
                self.roles[(namespace, name)] = rules_of(obj)
        elif key in (ROLE_BINDINGS, CLUSTER_ROLE_BINDINGS):
            bid = (namespace if key == ROLE_BINDINGS else "", name)
            self._unindex(bid)
            binding = binding_of(obj) if obj is not None else None
            if binding is not None:
                self._bindings[bid] = binding
                for subject in binding.subjects:
                    self._by_subject.setdefault(subject, set()).add(bid)

    def _unindex(self, bid: tuple[str, str]) -> None:
        old = self._bindings.pop(bid, None)
        if old is None:
            return
        for subject in old.subjects:
            ids = self._by_subject.get(subject)
            if ids is not None:
                ids.discard(bid)
                if not ids:
                    del self._by_subject[subject]

    def bindings_for(self, user: UserInfo, namespace: str) -> Iterator[Binding]:
        """ClusterRoleBindings, and RoleBindings in ``namespace``, that apply to ``user``."""
        seen: set[tuple[str, str]] = set()
        for key in user_keys(user):
            for bid in self._by_subject.get(key, ()):
                if bid in seen or (bid[0] and bid[0] != namespace):
                    continue
                seen.add(bid)
                yield self._bindings[bid]

    def role_rules(self, binding: Binding) -> tuple[PolicyRule, ...] | None:
        """The rules a binding grants; None when its role does not exist."""
        if binding.role.kind == "ClusterRole":
            return self.cluster_roles.get(binding.role.name)
        if binding.role.kind == "Role" and binding.namespace:
            return self.roles.get((binding.namespace, binding.role.name))
        return None

    def rules_for(self, user: UserInfo, namespace: str) -> tuple[list[PolicyRule], list[str]]:
        """Every rule ``user`` holds in ``namespace`` ("" for cluster scope), and the
        resolution errors (bindings to missing roles), as SelfSubjectRulesReview shows."""
        rules: list[PolicyRule] = []
        errors: list[str] = []
        for binding in sorted(self.bindings_for(user, namespace),
                              key=lambda b: (b.namespace, b.name)):
            got = self.role_rules(binding)
            if got is None:
                errors.append(_missing_role(binding))
                continue
            rules.extend(got)
        return rules, errors


def _missing_role(binding: Binding) -> str:
    plural = "clusterroles" if binding.role.kind == "ClusterRole" else "roles"
    return f'{plural}.{GROUP} "{binding.role.name}" not found'


# --------------------------------------------------------------------------- authorizer

@dataclass
class RBACAuthorizer:
    index: RBACIndex

    def authorize(self, user: UserInfo, info: RequestInfo) -> Verdict:
        errors: list[str] = []
        for binding in self.index.bindings_for(user, info.namespace):
            rules = self.index.role_rules(binding)
            if rules is None:
                errors.append(_missing_role(binding))
                continue
            if rules_allow(rules, info):
                return Verdict(Decision.ALLOW,
                               f'RBAC: allowed by {binding.kind} "{binding.name}" of '
                               f'{binding.role.kind} "{binding.role.name}"')
        return Verdict(Decision.NO_OPINION, f"RBAC: [{', '.join(errors)}]" if len(errors) > 1
                       else f"RBAC: {errors[0]}" if errors else "")
