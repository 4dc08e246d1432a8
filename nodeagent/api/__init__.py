"""The node agent's HTTPS API, the one the API server calls (kubelet's port 10250).

- ``server``: TLS with a client certificate required (the cluster CA), the caller's
  identity checked before any request is read (``auth``), uvicorn in the agent's loop.
- ``routes``: the route table; a new endpoint is one more entry there.
- ``logs``: ``/containerLogs/{ns}/{pod}/{container}``.
- ``streams``: ``/exec/...`` and ``/attach/...`` over WebSocket (the
  ``v4``/``v5.channel.k8s.io`` framing is ``apimachinery.remotecommand``, pure).
- ``pods``: how a handler finds a pod's worker.
"""
