"""What the autoscaling tests on the real node share: a SmolLM2 ChatModel deployed in a namespace of its own,
reads of its state, and a bounded chat load against it."""

from __future__ import annotations

import json
import threading
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from hack.quickstart import MODEL_IN_CACHE, host_volume, seed_model
from tests.support.node import Cluster
from tests.support.pods import port_forward, wait_ready
from tests.support.real_model import GGUF_NAME


def smollm2_chat_model(name: str, autoscaling: dict[str, Any]) -> dict[str, Any]:
    """A ChatModel of SmolLM2-135M on transformers, read from a ReadWriteMany cache claim, scaled by
    `autoscaling`."""
    return {
        "apiVersion": "kubechat.dev/v1alpha1",
        "kind": "ChatModel",
        "metadata": {"name": name},
        "spec": {
            "model": {"id": f"/cache/{MODEL_IN_CACHE}", "file": GGUF_NAME},
            "engine": "transformers",
            # Long answers keep each chat in flight (and the CPU busy) for a while on two shared cores.
            "generation": {"maxNewTokens": 160, "minNewTokens": 160, "doSample": False},
            "replicas": 1,
            # Small requests so that a second pod fits on the node beside the first.
            "resources": {"requests": {"cpu": "250m", "memory": "512Mi"}, "limits": {"memory": "3Gi"}},
            "cache": {"size": "1Gi", "accessMode": "ReadWriteMany"},
            "startupBudget": "10m",
            "autoscaling": autoscaling,
        },
    }


def deployed_model(cluster: Cluster, stem: str, model: dict[str, Any]) -> Iterator[str]:
    """`model` (smollm2_chat_model) applied in a fresh namespace, SmolLM2 on a PersistentVolume its cache
    claim binds to, until its one pod is Ready; yields the namespace, deleted (with the volume) on exit."""
    plane = cluster.plane
    name = model["metadata"]["name"]
    namespace = f"{stem}-{int(time.time())}"
    plane.kubectl("create", "namespace", namespace)
    volume = cluster.state_dir / "volumes" / namespace
    seed_model(volume / MODEL_IN_CACHE)
    persistent_volume = host_volume(plane, volume, namespace, f"{name}-cache", "ReadWriteMany")
    plane.kubectl("-n", namespace, "apply", "-f", "-", input=json.dumps(model))
    plane.kubectl("-n", namespace, "wait", "--for=create", f"deployment/{name}", "--timeout=60s")
    wait_ready(plane, namespace, f"-l app.kubernetes.io/instance={name}", timeout=600)
    try:
        yield namespace
    finally:
        plane.kubectl("delete", "namespace", namespace, "--wait=false", check=False)
        plane.kubectl("delete", "persistentvolume", persistent_volume, "--wait=false", check=False)


def chat_model(cluster: Cluster, namespace: str, name: str) -> dict[str, Any]:
    """The ChatModel as the apiserver has it."""
    return json.loads(cluster.plane.kubectl("-n", namespace, "get", "chatmodel", name, "-o", "json").stdout)


def live_model_pods(cluster: Cluster, namespace: str, name: str) -> list[str]:
    """The ChatModel's pods that are not terminating."""
    listing = cluster.plane.kubectl(
        "-n", namespace, "get", "pods", "-l", f"app.kubernetes.io/instance={name}", "-o", "json"
    ).stdout
    return [
        p["metadata"]["name"]
        for p in json.loads(listing)["items"]
        if not p["metadata"].get("deletionTimestamp")
    ]


class ChatLoad:
    """`concurrent` threads chatting one after another with the model server at 127.0.0.1:port (a
    port-forward) until finish(); a chat that fails ends its thread and is kept in `errors`."""

    def __init__(self, port: int, concurrent: int) -> None:
        self.port, self.stop, self.answers, self.errors = port, threading.Event(), 0, []
        self.threads = [threading.Thread(target=self._chat, daemon=True) for _ in range(concurrent)]
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
        """Stop starting chats and wait for those in flight."""
        self.stop.set()
        for thread in self.threads:
            thread.join(330)


@contextmanager
def chat_load(cluster: Cluster, namespace: str, name: str, concurrent: int) -> Iterator[ChatLoad]:
    """A ChatLoad through one port-forward to the model's Service (so all on one pod) while the block runs;
    on exit the chats in flight finish and the port-forward ends."""
    forward, port = port_forward(cluster.plane, namespace, f"service/{name}", 8080)
    load = ChatLoad(port, concurrent)
    try:
        yield load
    finally:
        load.finish()
        forward.kill()
        forward.wait()
