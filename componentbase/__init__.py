"""What every miniplane process shares beyond the API, as Kubernetes' component-base.

``flags`` (argparse value types with one error style), ``startup`` (logging and
the one-line fatal error), ``tasks`` (run a component's loops and tear them
down), ``metrics`` (Prometheus registries and the /metrics, /healthz, /readyz
server), ``polling`` (wait for a condition with a deadline), ``netns`` (run a
function inside a network namespace on a short-lived thread) and ``procs``
(processes by pid and start time). The API server may import it, so it imports
neither ``client/`` nor ``mpctl/``.
"""
