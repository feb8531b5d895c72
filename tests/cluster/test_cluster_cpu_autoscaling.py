"""CPU autoscaling on the real node: the operator's HPA (metric cpu) reads the model pods' real CPU from
metrics-server, scales the ChatModel up under a bounded chat load and back down to minReplicas once it stops,
with the ChatModel's scale-down window as its behavior."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import pytest

from tests.support.cluster_scaling import (
    chat_load,
    chat_model,
    deployed_model,
    live_model_pods,
    smollm2_chat_model,
)
from tests.support.node import Cluster
from tests.support.pods import announce, wait_for

pytestmark = [pytest.mark.cluster, pytest.mark.controlplane, pytest.mark.slow, pytest.mark.timeout(1800)]

NAME = "cpu-scaling"
CONCURRENT = 4  # chats at once through one port-forward (so all on the first pod); two shared cores are busy
TARGET = 50  # percent of the 250m request: ~125m, far below what generating takes, far above an idle server
DOWN_WINDOW = 30  # spec.autoscaling.scaleDownStabilizationSeconds; the HPA's own default would be 300
AUTOSCALING = {
    "metric": "cpu",
    "minReplicas": 1,
    "maxReplicas": 2,
    "targetCPUUtilizationPercentage": TARGET,
    "scaleDownStabilizationSeconds": DOWN_WINDOW,
}


def _hpa(cluster: Cluster, namespace: str) -> dict[str, Any]:
    return json.loads(cluster.plane.kubectl("-n", namespace, "get", "hpa", NAME, "-o", "json").stdout)


def _utilisation(hpa: dict[str, Any]) -> int | None:
    """The average CPU utilisation (percent of the request) the HPA last read from metrics-server."""
    for metric in hpa.get("status", {}).get("currentMetrics") or []:
        if metric.get("type") == "Resource" and metric["resource"]["name"] == "cpu":
            return metric["resource"]["current"].get("averageUtilization")
    return None


def _rescales(cluster: Cluster, namespace: str) -> list[str]:
    """The messages of the HPA's SuccessfulRescale Events, oldest first."""
    listing = cluster.plane.kubectl(
        "-n", namespace, "get", "events", "-o", "json", "--field-selector",
        f"involvedObject.kind=HorizontalPodAutoscaler,involvedObject.name={NAME},reason=SuccessfulRescale",
    ).stdout  # fmt: skip
    events = sorted(json.loads(listing)["items"], key=lambda e: e.get("lastTimestamp") or e["eventTime"])
    return [e["message"] for e in events]


@pytest.fixture
def cpu_scaling_model(real_cluster: Cluster, operator: str) -> Iterator[str]:
    """The ChatModel above, SmolLM2 on a PersistentVolume its cache claim binds to, one pod Ready."""
    yield from deployed_model(real_cluster, "cpu-autoscaling", smollm2_chat_model(NAME, AUTOSCALING))


def test_chat_load_drives_real_cpu_past_the_hpa_target_replicas_rise_then_fall_to_min(
    real_cluster: Cluster, cpu_scaling_model: str, pytestconfig: pytest.Config
) -> None:
    plane, namespace = real_cluster.plane, cpu_scaling_model
    plane.kubectl("-n", namespace, "wait", "--for=create", f"hpa/{NAME}", "--timeout=60s")
    hpa = _hpa(real_cluster, namespace)
    assert hpa["spec"]["behavior"]["scaleDown"]["stabilizationWindowSeconds"] == DOWN_WINDOW

    readings: list[int] = []  # the HPA's utilisation, each time it changed

    def read() -> dict[str, Any]:
        hpa = _hpa(real_cluster, namespace)
        utilisation = _utilisation(hpa)
        if utilisation is not None and (not readings or readings[-1] != utilisation):
            readings.append(utilisation)
        return hpa

    started = time.monotonic()
    with chat_load(real_cluster, namespace, NAME, CONCURRENT) as load:
        # metrics-server scrapes every 15 s and the HPA looks every 5 s (tests/support/controlplane.py).
        wait_for(lambda: read()["status"].get("desiredReplicas", 0) >= 2, 300, 2, "the HPA never scaled up")
        decided = time.monotonic() - started
        wait_for(lambda: chat_model(real_cluster, namespace, NAME)["spec"]["replicas"] == 2, 60, 1,
                 "the HPA's decision never reached the ChatModel's spec.replicas")  # fmt: skip
        wait_for(lambda: chat_model(real_cluster, namespace, NAME)["status"].get("replicas") == 2, 120, 1,
                 "the operator never made the second pod")  # fmt: skip
    stopped = time.monotonic()
    assert load.answers > 0 and not load.errors, load.errors[:3]
    peak = max(readings)
    assert peak > TARGET, readings  # real CPU, read from metrics-server, crossed the target
    [up] = _rescales(real_cluster, namespace)
    assert up == "New size: 2; reason: cpu resource utilization (percentage of request) above target", up

    wait_for(lambda: read()["status"].get("desiredReplicas") == 1, 600, 2, "the HPA never scaled down")
    wait_for(lambda: chat_model(real_cluster, namespace, NAME)["spec"]["replicas"] == 1, 60, 1,
             "the ChatModel's spec.replicas stayed above minReplicas")  # fmt: skip
    down = time.monotonic() - stopped
    wait_for(lambda: chat_model(real_cluster, namespace, NAME)["status"].get("replicas") == 1, 180, 2,
             "the second pod stayed")  # fmt: skip
    assert len(live_model_pods(real_cluster, namespace, NAME)) == 1
    assert readings[-1] < TARGET, readings  # what the HPA read once the chats had ended
    assert _rescales(real_cluster, namespace)[-1] == "New size: 1; reason: All metrics below target"
    announce(
        pytestconfig,
        f"cpu autoscaling: {CONCURRENT} chats -> the HPA read {peak}% of the CPU request (target {TARGET}%) "
        f"and chose 2 replicas after {decided:.0f} s; {load.answers} answers; back to 1 replica {down:.0f} s "
        f"after the load stopped ({DOWN_WINDOW} s window); readings {readings}",
    )
