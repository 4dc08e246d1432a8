"""What ReplicaSets and Deployments share (Kubernetes ``pkg/apis/apps/validation``).

Both hold ``replicas``, a ``selector`` and a pod ``template`` the selector must match;
the template's spec is judged by the Pod rules (``pod.validate_spec``), its paths
moved under ``spec.template.spec``, plus the one rule a controller's pods add:
``restartPolicy`` is ``Always``. In apps/v1 the selector never changes after create.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from apimachinery import labels as label_selectors
from apimachinery import names
from apiserver.errors import FieldError, forbidden, invalid, not_supported, required
from apiserver.validation import pod
from apiserver.validation.fields import FieldErrors
from apiserver.validation.meta import check_annotations, check_labels

SELECTOR_OPERATORS = ("DoesNotExist", "Exists", "In", "NotIn")
# A replicated pod runs again whatever its exit: Always is the only policy allowed.
TEMPLATE_RESTART_POLICIES = ("Always",)
SELECTOR_MISMATCH = "`selector` does not match template `labels`"


def validate_workload_spec(errs: FieldErrors, spec: dict, old_spec: dict | None,
                           *, kind: str) -> None:
    """``spec.replicas``, ``spec.selector``, ``spec.template``, ``spec.minReadySeconds``;
    ``old_spec`` on update (the selector is immutable). ``kind`` names the object in
    the empty-selector message, as Kubernetes words it ("deployment")."""
    errs.at_least(spec.get("replicas"), "spec.replicas", 0)
    errs.at_least(spec.get("minReadySeconds"), "spec.minReadySeconds", 0)
    selector = check_label_selector(errs, spec.get("selector"), "spec.selector", kind=kind)
    check_pod_template(errs, spec.get("template"), "spec.template", selector)
    if old_spec is not None:
        errs.immutable(spec.get("selector"), old_spec.get("selector"), "spec.selector")


def check_label_selector(errs: FieldErrors, value: Any, path: str, *,
                         kind: str) -> label_selectors.LabelSelector | None:
    """A required, non-empty ``metav1.LabelSelector``; the parsed selector when valid."""
    if value is None:
        errs.append(required(path, ""))
        return None
    selector = errs.obj(value, path)
    if selector is None:
        return None
    before = len(errs)
    check_labels(errs, selector.get("matchLabels"), f"{path}.matchLabels")
    expressions = errs.seq(selector.get("matchExpressions"), f"{path}.matchExpressions")
    for p, expr in errs.items(expressions, f"{path}.matchExpressions"):
        _check_expression(errs, expr, p)
    if not (selector.get("matchLabels") or expressions):
        errs.append(invalid(path, selector, f"empty selector is invalid for {kind}"))
    if len(errs) > before:
        return None
    try:
        return label_selectors.selector_from_label_selector_object(selector)
    except label_selectors.SelectorError:
        errs.append(invalid(path, selector, "invalid label selector"))
        return None


def _check_expression(errs: FieldErrors, expr: dict, path: str) -> None:
    """``ValidateLabelSelectorRequirement``: a qualified key, values as the operator needs."""
    key = errs.required_text(expr.get("key"), f"{path}.key")
    if key:
        errs.check(key, f"{path}.key", names.is_qualified_name)
    operator = errs.text(expr.get("operator"), f"{path}.operator")
    values = list(errs.strings(expr.get("values"), f"{path}.values"))
    if operator in ("In", "NotIn"):
        if not values:
            errs.append(required(f"{path}.values",
                                 "must be specified when `operator` is 'In' or 'NotIn'"))
    elif operator in ("Exists", "DoesNotExist"):
        if values:
            errs.append(forbidden(f"{path}.values", "may not be specified when `operator` "
                                  "is 'Exists' or 'DoesNotExist'"))
    else:
        errs.append(not_supported(f"{path}.operator", operator, list(SELECTOR_OPERATORS)))
    for p, value in values:
        errs.check(value, p, names.is_valid_label_value)


def check_pod_template(errs: FieldErrors, value: Any, path: str,
                       selector: label_selectors.LabelSelector | None) -> None:
    """``ValidatePodTemplateSpecForReplicaSet``: labels the selector matches, a valid pod
    spec (the Pod's own rules), restartPolicy Always, no activeDeadlineSeconds."""
    template = errs.obj(value, path) or {}
    template_meta = errs.obj(template.get("metadata"), f"{path}.metadata") or {}
    labels_path = f"{path}.metadata.labels"
    check_labels(errs, template_meta.get("labels"), labels_path)
    check_annotations(errs, template_meta.get("annotations"), f"{path}.metadata.annotations")
    template_labels = template_meta.get("labels")
    if selector is not None and not selector.empty and not selector.matches(
            template_labels if isinstance(template_labels, dict) else {}):
        errs.append(invalid(labels_path, template_labels, SELECTOR_MISMATCH))
    spec_errs = FieldErrors()
    pod.validate_spec(spec_errs, {"spec": template.get("spec")}, None)
    errs.extend(_moved(e, "spec", f"{path}.spec") for e in spec_errs)
    spec = template.get("spec")
    if isinstance(spec, dict):
        policy = spec.get("restartPolicy")
        if isinstance(policy, str) and policy in pod.RESTART_POLICIES \
                and policy not in TEMPLATE_RESTART_POLICIES:
            errs.append(not_supported(f"{path}.spec.restartPolicy", policy,
                                      list(TEMPLATE_RESTART_POLICIES)))
        if spec.get("activeDeadlineSeconds") is not None:
            errs.append(forbidden(f"{path}.spec.activeDeadlineSeconds",
                                  "activeDeadlineSeconds in ReplicaSet is not Supported"))


def _moved(error: FieldError, old_prefix: str, new_prefix: str) -> FieldError:
    """A pod-spec error re-rooted under the template (``spec.x`` → ``spec.template.spec.x``)."""
    field = error.field
    if field == old_prefix or field.startswith((old_prefix + ".", old_prefix + "[")):
        field = new_prefix + field[len(old_prefix):]
    return dataclasses.replace(error, field=field)


def check_replica_counts(errs: FieldErrors, status: dict, counts: tuple[str, ...]) -> None:
    """Status counters are non-negative and none exceeds ``status.replicas``."""
    errs.at_least(status.get("observedGeneration"), "status.observedGeneration", 0)
    total = errs.at_least(status.get("replicas"), "status.replicas", 0)
    for key in counts:
        count = errs.at_least(status.get(key), f"status.{key}", 0)
        if count is not None and total is not None and count > total:
            errs.append(invalid(f"status.{key}", count,
                                "cannot be greater than status.replicas"))
    ready = status.get("readyReplicas")
    available = status.get("availableReplicas")
    if isinstance(ready, int) and isinstance(available, int) and available > ready:
        errs.append(invalid("status.availableReplicas", available,
                            "cannot be greater than readyReplicas"))
