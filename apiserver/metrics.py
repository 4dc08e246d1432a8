"""Request and storage counters, rendered in the Prometheus text format."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass
class Metrics:
    requests: dict[tuple[str, str, int], int] = field(default_factory=lambda: defaultdict(int))
    seconds: dict[tuple[str, str], float] = field(default_factory=lambda: defaultdict(float))
    watchers_started: int = 0

    def observe(self, verb: str, resource: str, code: int, seconds: float) -> None:
        self.requests[(verb, resource, code)] += 1
        self.seconds[(verb, resource)] += seconds

    def render(self, gauges: dict[str, Callable[[], float]]) -> str:
        lines = ["# TYPE apiserver_request_total counter"]
        for (verb, resource, code), n in sorted(self.requests.items()):
            lines.append(f'apiserver_request_total{{verb="{verb}",resource="{resource}",'
                         f'code="{code}"}} {n}')
        lines.append("# TYPE apiserver_request_duration_seconds_sum counter")
        for (verb, resource), s in sorted(self.seconds.items()):
            lines.append(f'apiserver_request_duration_seconds_sum{{verb="{verb}",'
                         f'resource="{resource}"}} {s:.6f}')
        lines.append("# TYPE apiserver_watch_started_total counter")
        lines.append(f"apiserver_watch_started_total {self.watchers_started}")
        for name, read in sorted(gauges.items()):
            lines.append(f"# TYPE {name} gauge")
            lines.append(f"{name} {read()}")
        return "\n".join(lines) + "\n"
