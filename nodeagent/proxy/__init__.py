"""The service proxy of ``mp-nodeagent``: kube-proxy's iptables mode, in Python.

Pure core, effects at the edges:

- ``model``: API objects → validated ``ServicePort`` / ``Endpoint`` values. Anything
  that would be unsafe in an ``iptables-restore`` file is rejected here.
- ``chains``: kube-proxy's chain-name hash (operators recognise the names).
- ``ruleset``: (service ports, endpoints, node context) → per-Service rule fragments
  and the top-level chains; renders the whole ruleset as restore text.
- ``plan``: (what was written, what is wanted) → the restore payloads to send,
  ordered and chunked so each one is valid and none is large enough to hit
  iptables-nft's superlinear restore cost.
- ``apply``: the only caller of ``iptables-restore`` / ``iptables-save``.
- ``conntrack``: clearing stale UDP flows after endpoints go away.
- ``changes``: the informer-fed cache, parsed on arrival, and which Services'
  inputs changed since the last sync (no-op changes dropped).
- ``schedule``: when to sync, check for drift or collect leftovers, as a pure
  function of the clock (kube-proxy's bounded-frequency runner).
- ``sync``: one sync, drift check and collection, and the thin loop that asks
  ``schedule`` and acts.
- ``metrics``: ``/metrics`` and ``/healthz``.
- ``agent``: informers + sync + metrics wired together for ``nodeagent.main``.
"""
