"""The node agent's HTTPS API, the one the API server calls (kubelet's port 10250).

- ``server``: TLS with a client certificate required (the cluster CA), the caller's
  identity checked before any request is read (``auth``), uvicorn in the agent's loop.
- ``routes``: the route table; a new endpoint is one more entry there.
- ``logs``: ``/containerLogs/{ns}/{pod}/{container}``.
- ``streams``: ``/exec/...`` and ``/attach/...`` over WebSocket (the
  ``v4``/``v5.channel.k8s.io`` framing is ``apimachinery.remotecommand``, pure).
- ``forwarding``: ``/portForward/{ns}/{pod}``, kubectl port-forward's WebSocket
  tunnel; ``portforward`` serves its SPDY streams (``spdy``: the codec, sans-I/O),
  dialing the pod's ports inside its network namespace.
- ``podproxy``: ``/podProxy/{ns}/{pod}/{scheme}:{port}/{path}``, HTTP relayed to the
  pod from inside its namespace (the API server's ``pods/proxy``, ``services/proxy``).
- ``pods``: how a handler finds a pod's worker.
"""
