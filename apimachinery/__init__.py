"""Kubernetes object facts with no I/O: the layer under the API server and every client.

Names and their rules (``names``), label and field selectors (``labels``), kinds
and object keys (``kinds``, ``keys``), RFC 3339 timestamps (``timestamps``),
kubectl's table cells (``tables``) and what a Service's type implies
(``services``). Like Kubernetes' apimachinery, it sits below both
``apiserver/`` and ``client/``; it imports only the standard library and
PyYAML, so importing it never pulls in httpx, FastAPI, SQLAlchemy or dnspython
(``tests/unit/test_apimachinery_imports.py`` checks each module).
"""
