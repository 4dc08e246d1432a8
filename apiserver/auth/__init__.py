"""Who is asking and may they: authentication, impersonation and authorization.

The request path (``apiserver/app.py``) runs them in kube-apiserver's order for
every HTTP request, resource or not: authenticate (x509 client certificate,
static token, ServiceAccount token, else anonymous), apply ``Impersonate-*``
headers if the caller may, then authorize the request's attributes (RBAC, with
the Node authorizer for ``system:nodes``). The user who passed is kept in the
ASGI scope under ``USER_KEY`` for admission to see.
"""
