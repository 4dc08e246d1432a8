"""A pod's QoS class from its containers' requests and limits."""

from __future__ import annotations

import pytest

from apimachinery.pods import qos_class


def pod(*resources: dict, init: tuple[dict, ...] = ()) -> dict:
    return {"containers": [{"name": f"c{i}", "resources": r} for i, r in enumerate(resources)],
            "initContainers": [{"name": f"i{i}", "resources": r} for i, r in enumerate(init)]}


BOTH = {"cpu": "500m", "memory": "128Mi"}


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        (pod({}), "BestEffort"),
        (pod({"requests": {"cpu": "0"}}), "BestEffort"),
        (pod({"limits": {"example.com/gpu": "1"}}), "BestEffort"),
        (pod({"limits": BOTH, "requests": BOTH}), "Guaranteed"),
        (pod({"limits": BOTH, "requests": {"cpu": "0.5", "memory": "134217728"}}), "Guaranteed"),
        (pod({"limits": BOTH, "requests": BOTH}, {"limits": BOTH, "requests": BOTH}),
         "Guaranteed"),
        (pod({"limits": BOTH, "requests": {"cpu": "250m", "memory": "128Mi"}}), "Burstable"),
        (pod({"limits": {"cpu": "1"}, "requests": {"cpu": "1"}}), "Burstable"),
        (pod({"requests": {"memory": "64Mi"}}), "Burstable"),
        (pod({"limits": BOTH, "requests": BOTH}, {}), "Burstable"),
        (pod({"limits": BOTH, "requests": BOTH}, init=({"requests": {"cpu": "1"}},)),
         "Burstable"),
        (pod({"limits": {"cpu": "lots", "memory": "1Gi"}, "requests": {"memory": "1Gi"}}),
         "Burstable"),
        ({"containers": "nope"}, "BestEffort"),
        (None, "BestEffort"),
    ],
)
def test_qos_class(spec, expected):
    assert qos_class(spec) == expected
