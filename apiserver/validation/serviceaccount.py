"""ServiceAccount rules (Kubernetes' ``ValidateServiceAccount``): the name is a DNS-1123
subdomain (the ObjectMeta rule), the secret references name something, and
``automountServiceAccountToken`` is a boolean."""

from __future__ import annotations

from apiserver.validation.fields import FieldErrors

_REF_FIELDS = ("kind", "namespace", "name", "uid", "apiVersion", "resourceVersion", "fieldPath")


def validate_spec(errs: FieldErrors, obj: dict, old: dict | None) -> None:
    errs.boolean(obj.get("automountServiceAccountToken"), "automountServiceAccountToken")
    for path, ref in errs.items(obj.get("secrets"), "secrets"):
        for key in _REF_FIELDS:
            errs.text(ref.get(key), f"{path}.{key}")
    for path, ref in errs.items(obj.get("imagePullSecrets"), "imagePullSecrets"):
        errs.required_text(ref.get("name"), f"{path}.name")
