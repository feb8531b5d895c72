"""Cold starts of the quick start's ChatModel (SmolLM2-135M, llama.cpp-free transformers engine) on the real
node, each split into its parts. Run by bench/coldstart/run.py (a pytest module: it reuses the real-node
fixtures of tests/cluster), which writes bench/results/coldstart.md.

One cold start: the ChatModel is scaled to 0 and its pods are gone; a chat is sent through the frontend
(held there); when the frontend's waiting gauge is above 0 the bench scales the ChatModel to 1 (standing in
for the operator's autoscaler loop) and polls, every 0.2 s, the new pod's status and its progress reports
(the `<model>-progress` ConfigMap the model server patches), noting when each step is first seen:

    request sent -> held (gauge > 0) -> scaled -> pod created -> scheduled -> container running
      -> progress: downloading -> loading -> warming -> pod Ready -> first token at the client

Timestamps are this process's clock at first sight (apiserver timestamps have 1 s resolution), so each part
is measured to about the poll period plus one apiserver round trip.
"""

from __future__ import annotations

import json
import os
import threading
import time
import urllib.request
from pathlib import Path

import pytest

from tests.cluster.conftest import images  # noqa: F401 - fixtures, found by name
from tests.cluster.test_cluster_quickstart import (  # noqa: F401
    FRONTEND,
    MODEL,
    QuickStart,
    frontend_waiting,
    let_the_frontend_wait_long,
    model_pod_names,
    operator,
    quickstart,
)
from tests.support.cluster_fixtures import real_cluster  # noqa: F401
from tests.support.node import Cluster
from tests.support.pods import port_forward, wait_for

# The node may first be busy with another run (its lock waits up to 30 min), then set up in minutes.
pytestmark = pytest.mark.timeout(3600)
RUNS = int(os.environ.get("KUBECHAT_COLDSTART_RUNS", "3"))
OUT = Path(os.environ.get("KUBECHAT_COLDSTART_OUT", "/tmp/kubechat-coldstart.json"))
POLL_S = 0.2


def stream_first_token(port: int, seen: dict[str, float]) -> None:
    """One streamed chat through the frontend; notes when the request went out and its first piece came."""
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/api/chat/stream",
        data=json.dumps({"message": "Say hello."}).encode(),
        headers={"Content-Type": "application/json"},
    )
    seen["request sent"] = time.monotonic()
    with urllib.request.urlopen(request, timeout=900) as response:
        for raw in response:
            line = raw.decode().strip()
            if line.startswith("data:") and json.loads(line[5:])["type"] == "delta":
                seen.setdefault("first token", time.monotonic())
        seen["answer done"] = time.monotonic()


def watch_pod(cluster: Cluster, namespace: str, seen: dict[str, float], stop: threading.Event) -> None:
    """First sight of each step of the new model pod, from its status and its progress report."""
    from kubernetes import client

    core = client.CoreV1Api(cluster.plane.api_client())
    selector = f"app.kubernetes.io/instance={MODEL}"
    while not stop.is_set():
        now = time.monotonic()
        for pod in core.list_namespaced_pod(namespace, label_selector=selector).items:
            if pod.metadata.deletion_timestamp:
                continue
            seen.setdefault("pod created", now)
            seen.setdefault("pod name", pod.metadata.name)  # type: ignore[arg-type]
            conditions = {c.type: c.status for c in pod.status.conditions or []}
            if conditions.get("PodScheduled") == "True":
                seen.setdefault("scheduled", now)
            if any(s.state.running for s in pod.status.container_statuses or []):
                seen.setdefault("container running", now)
            if conditions.get("Ready") == "True":
                seen.setdefault("pod ready", now)
            try:
                progress = core.read_namespaced_config_map(f"{MODEL}-progress", namespace).data or {}
                report = json.loads(progress.get(pod.metadata.name, "{}"))
            except (client.ApiException, ValueError):
                report = {}  # not written yet, or half a report: the next look sees it
            if report.get("stage"):
                seen.setdefault(f"stage {report['stage']}", now)
        time.sleep(POLL_S)


def image_note(cluster: Cluster, namespace: str, pod: str) -> str:
    """The kubelet's word on the image: pulled (and how long) or already present."""
    events = json.loads(
        cluster.plane.kubectl(
            "-n", namespace, "get", "events", "--field-selector", f"involvedObject.name={pod}", "-o", "json"
        ).stdout
    )["items"]
    pulled = [e["message"] for e in events if e.get("reason") == "Pulled"]
    return pulled[-1] if pulled else "no Pulled event"


# The steps in order, each with the part that ends there.
STEPS = [
    ("request sent", ""),
    ("scaled", "frontend holds, asks for a replica"),
    ("pod created", "operator and controllers create the pod"),
    ("scheduled", "scheduling"),
    ("container running", "image and container start"),
    ("stage downloading", "server process start (imports)"),
    ("stage loading", "weights (download or copy)"),
    ("stage warming", "load"),
    ("pod ready", "warm-up"),
    ("first token", "ready -> endpoints -> first token"),
]


def split(seen: dict[str, float]) -> dict[str, float]:
    """Seconds per part. A step never seen (no download for weights already on the volume; a stage shorter
    than the poll) takes the time of the next one seen: its part is 0 and the parts still add up."""
    times: list[float] = []
    for step, _ in reversed(STEPS):
        times.append(seen.get(step, times[-1] if times else seen["first token"]))
    times.reverse()
    parts = {part: round(times[i] - times[i - 1], 2) for i, (_, part) in enumerate(STEPS) if i}
    parts["total: request -> first token"] = round(seen["first token"] - seen["request sent"], 2)
    return parts


def test_cold_start_from_zero_to_the_first_token(real_cluster: Cluster, quickstart: QuickStart) -> None:  # noqa: F811
    plane, namespace = real_cluster.plane, quickstart.namespace
    let_the_frontend_wait_long(plane, namespace)
    runs = []
    for _ in range(RUNS):
        plane.kubectl("-n", namespace, "scale", "chatmodel", MODEL, "--replicas=0")
        wait_for(lambda: not model_pod_names(real_cluster, namespace), timeout=180, message="pods remain")
        forward, port = port_forward(plane, namespace, f"service/{FRONTEND}-frontend", 80)
        seen: dict[str, float] = {}
        stop = threading.Event()
        watcher = threading.Thread(target=watch_pod, args=(real_cluster, namespace, seen, stop), daemon=True)
        chat = threading.Thread(target=stream_first_token, args=(port, seen), daemon=True)
        try:
            load_before = os.getloadavg()
            chat.start()
            wait_for(lambda p=port: frontend_waiting(p) > 0, timeout=60, interval=0.1, message="not held")
            seen["held"] = time.monotonic()
            watcher.start()
            # Standing in for the operator's autoscaler: the gauge is above 0, so one replica is asked for.
            plane.kubectl("-n", namespace, "scale", "chatmodel", MODEL, "--replicas=1")
            seen["scaled"] = time.monotonic()
            chat.join(900)
            assert "first token" in seen, f"no answer: {seen}"
        finally:
            stop.set()
            forward.kill()
            forward.wait()
        pod = str(seen.pop("pod name"))
        runs.append({
            "split": split(seen),
            "image": image_note(real_cluster, namespace, pod),
            "load average before/after": [round(load_before[0], 2), round(os.getloadavg()[0], 2)],
            "stages seen": sorted(k for k in seen if k.startswith("stage")),
        })  # fmt: skip
    OUT.write_text(json.dumps(runs, indent=2))
