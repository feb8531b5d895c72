"""One busy neighbour *pod* beside a model pod on the real node (issue 14's neighbour target, as a cluster
runs it): the kubelet gives each pod a CPU share from its request, which a bare process does not get.

    hack/test -p tests.conftest -p tests.cluster.conftest bench/server/neighbour_pod.py

Not part of the test suite (it lives outside tests/ and asserts nothing about speed): the real node of
tests/cluster, the quick start's SmolLM2 GGUF, a ChatModel with a 1500m CPU request (so the operator gives
it 2 threads on the 2-CPU node), 8 chats at once through a port-forward (seed API, 160 greedy tokens each),
answers counted over 60 s; then the same beside a BestEffort pod running a busy Python loop. Results:
bench/results/server.md ("In pods on the real node").
"""

from __future__ import annotations

import json
import time

import pytest

from tests.support.cluster_scaling import chat_load, deployed_model, smollm2_chat_model
from tests.support.node import Cluster
from tests.support.pods import announce, wait_ready

pytestmark = [pytest.mark.cluster, pytest.mark.controlplane, pytest.mark.slow, pytest.mark.timeout(1500)]
NAME = "nb"
CLIENTS = 8
WINDOW_S = 60
TOKENS = 160  # smollm2_chat_model's minNewTokens = maxNewTokens
SPIN = [{"name": "GOMP_SPINCOUNT", "value": "300000"}]  # libgomp's own default, over the server's PASSIVE


def tokens_per_s(cluster: Cluster, namespace: str) -> float:
    """Answers finished in WINDOW_S (after 5 s of warm-up) x TOKENS, per second."""
    with chat_load(cluster, namespace, NAME, CLIENTS) as load:
        time.sleep(5)
        answers, start = load.answers, time.monotonic()
        time.sleep(WINDOW_S)
        done, seconds = load.answers - answers, time.monotonic() - start
    assert not load.errors, load.errors
    return done * TOKENS / seconds


@pytest.mark.parametrize(
    ("engine", "env"), [("llama.cpp", []), ("transformers", []), ("transformers", SPIN)], ids=str
)
def test_neighbour_pod(
    real_cluster: Cluster, operator: str, base_image: str, pytestconfig, engine, env
) -> None:
    model = smollm2_chat_model(NAME, {})
    del model["spec"]["autoscaling"]
    model["spec"].update(
        engine=engine,
        env=env,
        resources={"requests": {"cpu": "1500m", "memory": "512Mi"}, "limits": {"memory": "3Gi"}},
    )
    busy = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "busy"},
        "spec": {
            "containers": [
                {"name": "busy", "image": base_image, "command": ["python3", "-c", "while 1: pass"]}
            ]
        },
    }
    for namespace in deployed_model(real_cluster, f"nb-{engine.replace('.', '')}", model):
        quiet = tokens_per_s(real_cluster, namespace)
        real_cluster.plane.kubectl("-n", namespace, "apply", "-f", "-", input=json.dumps(busy))
        wait_ready(real_cluster.plane, namespace, "pod/busy", timeout=120)
        crowded = tokens_per_s(real_cluster, namespace)
        real_cluster.plane.kubectl("-n", namespace, "delete", "pod", "busy", "--wait=false")
        line = f"{engine} env={env}: {quiet:.1f} tok/s alone, {crowded:.1f} beside a busy BestEffort pod"
        announce(pytestconfig, f"{line} ({crowded / quiet:.2f})")
