"""Request autoscaling on the real node: the chart's operator reads the real model pods' /metrics, adds a
replica under a bounded load ramp, removes it after the load stops, and sends an idle model to zero."""

from __future__ import annotations

import json
import shutil
import threading
import time
import urllib.request
from collections.abc import Iterator

import pytest
import yaml

from tests.cluster.test_cluster_quickstart import MODEL_IN_CACHE, build_model, operator  # noqa: F401 (fixture)
from tests.support.node import Cluster
from tests.support.pods import announce, port_forward, wait_for, wait_ready

pytestmark = [pytest.mark.cluster, pytest.mark.controlplane, pytest.mark.slow, pytest.mark.timeout(2700)]

NAME = "scaling"
CONCURRENT = 8  # chats at once, all through one port-forward (so all on the first pod)
MODEL = f"""
apiVersion: kubechat.dev/v1alpha1
kind: ChatModel
metadata: {{name: {NAME}}}
spec:
  model: {{id: /cache/{MODEL_IN_CACHE}, file: SmolLM2-135M-Instruct.Q4_1.gguf}}
  engine: transformers
  # Long answers keep each chat in flight for a while on two shared cores.
  generation: {{maxNewTokens: 160, minNewTokens: 160, doSample: false}}
  replicas: 1
  # Small requests so that a second pod fits on the node beside the first.
  resources: {{requests: {{cpu: 250m, memory: 512Mi}}, limits: {{memory: 3Gi}}}}
  cache: {{size: 1Gi, accessMode: ReadWriteMany}}
  startupBudget: 10m
  autoscaling:
    minReplicas: 1
    maxReplicas: 2
    targetRequestsPerReplica: 2
    scaleDownStabilizationSeconds: 15
    scaleToZeroAfterSeconds: 20
"""


def _model(cluster: Cluster, namespace: str) -> dict:
    return json.loads(cluster.plane.kubectl("-n", namespace, "get", "chatmodel", NAME, "-o", "json").stdout)


def _scale_events(cluster: Cluster, namespace: str) -> list[tuple[str, str]]:
    listing = cluster.plane.kubectl(
        "-n", namespace, "get", "events", "--field-selector", f"involvedObject.name={NAME}", "-o", "json"
    ).stdout
    reasons = ("LoadIncreased", "LoadDecreased", "Idle", "Wake")
    return [(e["reason"], e["message"]) for e in json.loads(listing)["items"] if e["reason"] in reasons]


def _live_model_pods(cluster: Cluster, namespace: str) -> list[str]:
    listing = cluster.plane.kubectl(
        "-n", namespace, "get", "pods", "-l", f"app.kubernetes.io/instance={NAME}", "-o", "json"
    ).stdout
    return [
        p["metadata"]["name"]
        for p in json.loads(listing)["items"]
        if not p["metadata"].get("deletionTimestamp")
    ]


@pytest.fixture
def scaling_model(real_cluster: Cluster, operator: str) -> Iterator[str]:  # noqa: F811 (imported fixture)
    """The ChatModel above, SmolLM2 on a PersistentVolume its cache claim binds to, one pod Ready."""
    plane = real_cluster.plane
    namespace = f"autoscaling-{int(time.time())}"
    plane.kubectl("create", "namespace", namespace)
    volume = real_cluster.state_dir / "volumes" / namespace
    build_model(volume / MODEL_IN_CACHE)
    for path in [volume, *volume.rglob("*")]:
        shutil.chown(path, 1000, 1000)
    claim = {
        "apiVersion": "v1",
        "kind": "PersistentVolume",
        "metadata": {"name": f"{namespace}-cache"},
        "spec": {
            "capacity": {"storage": "1Gi"},
            "accessModes": ["ReadWriteMany"],
            "persistentVolumeReclaimPolicy": "Retain",
            "storageClassName": "",
            "hostPath": {"path": str(volume), "type": "Directory"},
            "claimRef": {"namespace": namespace, "name": f"{NAME}-cache"},
        },
    }
    plane.kubectl("apply", "-f", "-", input=json.dumps(claim))
    plane.kubectl("-n", namespace, "apply", "-f", "-", input=yaml.safe_dump(yaml.safe_load(MODEL)))
    plane.kubectl("-n", namespace, "wait", "--for=create", f"deployment/{NAME}", "--timeout=60s")
    wait_ready(plane, namespace, f"-l app.kubernetes.io/instance={NAME}", timeout=600)
    yield namespace
    plane.kubectl("delete", "namespace", namespace, "--wait=false", check=False)
    plane.kubectl("delete", "persistentvolume", f"{namespace}-cache", "--wait=false", check=False)


class ChatLoad:
    """CONCURRENT threads chatting one after another through a port-forward until stopped."""

    def __init__(self, port: int) -> None:
        self.port, self.stop, self.answers, self.errors = port, threading.Event(), 0, []
        self.threads = [threading.Thread(target=self._chat, daemon=True) for _ in range(CONCURRENT)]
        for thread in self.threads:
            thread.start()

    def _chat(self) -> None:
        while not self.stop.is_set():
            request = urllib.request.Request(
                f"http://127.0.0.1:{self.port}/chat",
                data=json.dumps({"message": "Tell me a long story about a cat.", "history": []}).encode(),
                headers={"Content-Type": "application/json"},
            )
            try:
                with urllib.request.urlopen(request, timeout=300) as response:
                    json.load(response)
                self.answers += 1
            except OSError as exc:
                self.errors.append(str(exc))
                return

    def finish(self) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join(330)


def test_request_load_adds_a_replica_its_end_removes_it_and_an_idle_model_goes_to_zero(
    real_cluster: Cluster, scaling_model: str, pytestconfig: pytest.Config
) -> None:
    plane, namespace = real_cluster.plane, scaling_model
    forward, port = port_forward(plane, namespace, f"service/{NAME}", 8080)
    started = time.monotonic()
    load = ChatLoad(port)
    try:
        wait_for(lambda: _model(real_cluster, namespace)["spec"]["replicas"] == 2, 120, 1, "no scale up")
        decided = time.monotonic() - started
        wait_for(lambda: len(_live_model_pods(real_cluster, namespace)) == 2, 60, 1, "no second pod")
        wait_ready(plane, namespace, f"-l app.kubernetes.io/instance={NAME}", timeout=600)
        second_ready = time.monotonic() - started
    finally:
        load.finish()
        forward.kill()
        forward.wait()
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
