"""Request autoscaling on the real node: the chart's operator reads the real model pods' /metrics, adds a
replica under a bounded load ramp, removes it after the load stops, and sends an idle model to zero."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator

import pytest

from tests.support.cluster_scaling import (
    chat_load,
    chat_model,
    deployed_model,
    live_model_pods,
    smollm2_chat_model,
)
from tests.support.node import Cluster
from tests.support.pods import announce, wait_for, wait_ready

pytestmark = [pytest.mark.cluster, pytest.mark.controlplane, pytest.mark.slow, pytest.mark.timeout(2700)]

NAME = "scaling"
CONCURRENT = 8  # chats at once, all through one port-forward (so all on the first pod)
# Scale up once more than 2 chats per pod are in flight; down after a 15 s window; to zero after 20 s idle.
AUTOSCALING = {
    "minReplicas": 1,
    "maxReplicas": 2,
    "targetRequestsPerReplica": 2,
    "scaleDownStabilizationSeconds": 15,
    "scaleToZeroAfterSeconds": 20,
}


def _model(cluster: Cluster, namespace: str) -> dict:
    return chat_model(cluster, namespace, NAME)


def _scale_events(cluster: Cluster, namespace: str) -> list[tuple[str, str]]:
    listing = cluster.plane.kubectl(
        "-n", namespace, "get", "events", "--field-selector", f"involvedObject.name={NAME}", "-o", "json"
    ).stdout
    reasons = ("LoadIncreased", "LoadDecreased", "Idle", "Wake")
    return [(e["reason"], e["message"]) for e in json.loads(listing)["items"] if e["reason"] in reasons]


def _live_model_pods(cluster: Cluster, namespace: str) -> list[str]:
    return live_model_pods(cluster, namespace, NAME)


@pytest.fixture
def scaling_model(real_cluster: Cluster, operator: str) -> Iterator[str]:
    """The ChatModel above, SmolLM2 on a PersistentVolume its cache claim binds to, one pod Ready."""
    yield from deployed_model(real_cluster, "autoscaling", smollm2_chat_model(NAME, AUTOSCALING))


def test_request_load_adds_a_replica_its_end_removes_it_and_an_idle_model_goes_to_zero(
    real_cluster: Cluster, scaling_model: str, pytestconfig: pytest.Config
) -> None:
    plane, namespace = real_cluster.plane, scaling_model
    started = time.monotonic()
    with chat_load(real_cluster, namespace, NAME, CONCURRENT) as load:
        wait_for(lambda: _model(real_cluster, namespace)["spec"]["replicas"] == 2, 120, 1, "no scale up")
        decided = time.monotonic() - started
        wait_for(lambda: len(_live_model_pods(real_cluster, namespace)) == 2, 60, 1, "no second pod")
        wait_ready(plane, namespace, f"-l app.kubernetes.io/instance={NAME}", timeout=600)
        second_ready = time.monotonic() - started
    stopped = time.monotonic()
    assert load.answers > 0 and not load.errors, load.errors[:3]
    [(_, up)] = [e for e in _scale_events(real_cluster, namespace) if e[0] == "LoadIncreased"]
    assert up.startswith("scaled from 1 to 2 replicas: load "), up
    assert int(up.split("load ")[1].split()[0]) >= 3  # more than one replica's target of 2 was in flight

    wait_for(lambda: _model(real_cluster, namespace)["spec"]["replicas"] == 1, 120, 1, "no scale down")
    down = time.monotonic() - stopped
    assert _model(real_cluster, namespace)["status"]["autoscaling"]["lastScaleReason"] == "LoadDecreased"
    wait_for(lambda: len(_live_model_pods(real_cluster, namespace)) == 1, 180, 2, "the extra pod stays")

    patch = {"spec": {"autoscaling": {"minReplicas": 0}}}
    plane.kubectl("-n", namespace, "patch", "chatmodel", NAME, "--type=merge", "-p", json.dumps(patch))
    wait_for(lambda: _model(real_cluster, namespace)["spec"]["replicas"] == 0, 120, 1, "not scaled to zero")
    wait_for(lambda: not _live_model_pods(real_cluster, namespace), 180, 2, "model pods remain at zero")
    table = plane.kubectl("-n", namespace, "get", "chatmodel", NAME).stdout
    assert "Idle" in table, table
    announce(
        pytestconfig,
        f"autoscaling: {CONCURRENT} chats -> 2 replicas decided after {decided:.0f} s, second pod Ready "
        f"after {second_ready:.0f} s; {load.answers} answers; back to 1 replica {down:.0f} s after the load "
        "stopped (15 s window); to zero after 20 s idle",
    )
