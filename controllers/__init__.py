"""miniplane controllers, run together by ``mp-controllers`` (``controllers.main``).

Per controller, a pure module holds the decisions and a wiring module turns
informer events into work-queue keys and the decisions into API writes:

==================  =================  ==========================================
pure                wiring             job
==================  =================  ==========================================
``slices``          ``endpointslice``  EndpointSlices of every selector Service
``scheduling``      ``scheduler``      bind unbound Pods to nodes
``ipam``            ``nodeipam``       a pod CIDR per Node
``lifecycle``       ``nodelifecycle``  silent nodes → Unknown, their pods → not Ready
``lifecycle``       ``podgc``          finish terminating pods no node will finish
``replicas``        ``replicaset``     keep a ReplicaSet's pods (claims: ``owners``,
                                       burst control: ``expectations``)
``rollout``,        ``deployment``     roll a Deployment out through ReplicaSets
``revisions``,
``deploystatus``
==================  =================  ==========================================

Shared machinery: ``runtime`` (queue + workers + metrics), ``informers`` (one
informer per kind), ``metrics`` (Prometheus text, /healthz), ``events``,
``objects`` (read-only helpers over API dicts), ``config`` (flags).
"""
