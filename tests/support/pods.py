"""Pod manifests and waits for tests on the real node."""

from __future__ import annotations

import json
import socket
import subprocess
import threading
import time
from typing import Any

import pytest

from tests.support.controlplane import ControlPlane
from tests.support.procs import die_with_parent

# What the operator's pods get too: non-root, a read-only root, no capabilities, RuntimeDefault seccomp.
RESTRICTED_CONTAINER = {
    "allowPrivilegeEscalation": False,
    "readOnlyRootFilesystem": True,
    "runAsNonRoot": True,
    "runAsUser": 1000,
    "capabilities": {"drop": ["ALL"]},
    "seccompProfile": {"type": "RuntimeDefault"},
}


def python_pod(name: str, image: str, script: str, labels: dict[str, str] | None = None) -> dict[str, Any]:
    """A pod running `python3 -c script` as a restricted container with small limits."""
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "labels": labels or {"app": name}},
        "spec": {
            "terminationGracePeriodSeconds": 1,
            "containers": [
                {
                    "name": "main",
                    "image": image,
                    "imagePullPolicy": "Never",
                    "command": ["python3", "-u", "-c", script],
                    "securityContext": RESTRICTED_CONTAINER,
                    "resources": {
                        "requests": {"cpu": "10m", "memory": "32Mi"},
                        "limits": {"memory": "128Mi"},
                    },
                }
            ],
        },
    }


def apply(plane: ControlPlane, namespace: str, *objects: dict[str, Any]) -> None:
    plane.kubectl(
        "-n",
        namespace,
        "apply",
        "-f",
        "-",
        input=json.dumps({"apiVersion": "v1", "kind": "List", "items": list(objects)}),
    )


def wait_ready(plane: ControlPlane, namespace: str, target: str, timeout: int = 120) -> None:
    """Wait for `target` (pod/NAME, or -l SELECTOR pods) to be Ready; on timeout the error carries the
    pods' description."""
    args = ["-n", namespace, "wait", "--for=condition=Ready", f"--timeout={timeout}s"]
    args += ["pod", "-l", target[3:]] if target.startswith("-l ") else [target]
    result = plane.kubectl(*args, check=False, timeout=timeout + 30)
    if result.returncode != 0:
        described = plane.kubectl("-n", namespace, "describe", "pods", check=False).stdout
        raise AssertionError(f"{target} not Ready in {timeout} s: {result.stderr}\n{described[-4000:]}")


def pod_field(plane: ControlPlane, namespace: str, pod: str, jsonpath: str) -> str:
    return plane.kubectl("-n", namespace, "get", "pod", pod, "-o", f"jsonpath={jsonpath}").stdout


def exec_python(plane: ControlPlane, namespace: str, pod: str, script: str, timeout: float = 60) -> str:
    """Run `python3 -c script` in the pod (kubectl exec through the kubelet) and return its stdout."""
    return plane.kubectl("-n", namespace, "exec", pod, "--", "python3", "-c", script, timeout=timeout).stdout


def wait_for(condition: Any, timeout: float, interval: float = 1, message: str = "") -> Any:
    """Poll `condition()` until it returns something truthy; returns it."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(message or f"condition not met in {timeout} s")
        time.sleep(interval)


def port_forward(
    plane: ControlPlane, namespace: str, target: str, port: int
) -> tuple[subprocess.Popen[str], int]:
    """`kubectl port-forward target :port` on loopback; returns the process and the local port (the caller
    terminates it)."""
    proc = subprocess.Popen(
        [str(plane.bin_dir / "kubectl"), f"--kubeconfig={plane.kubeconfig}", "-n", namespace, "port-forward",
         "--address=127.0.0.1", target, f":{port}"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert proc.stdout is not None
    line = proc.stdout.readline()  # "Forwarding from 127.0.0.1:PORT -> port"
    if "Forwarding from" not in line:
        proc.kill()
        raise AssertionError(f"port-forward failed: {line}{proc.communicate()[1]}")
    return proc, int(line.split("127.0.0.1:")[1].split()[0])


class StayingForward:
    """`kubectl port-forward target 127.0.0.1:local_port:port`, started again whenever it ends, as a context
    manager. port-forward picks one pod behind a Service and ends with it; started again, it picks the pod
    that replaced it, so a browser keeps its URL (and its origin's storage) across a pod kill."""

    def __init__(self, plane: ControlPlane, namespace: str, target: str, port: int, local_port: int) -> None:
        self.command = [
            str(plane.bin_dir / "kubectl"), f"--kubeconfig={plane.kubeconfig}", "-n", namespace,
            "port-forward", "--address=127.0.0.1", target, f"{local_port}:{port}",
        ]  # fmt: skip
        self.local_port = local_port
        self.restarts = -1
        self._stopping = threading.Event()
        self._process: subprocess.Popen[bytes] | None = None
        self._thread = threading.Thread(target=self._keep_forwarding, daemon=True)

    def _keep_forwarding(self) -> None:
        while not self._stopping.is_set():
            self.restarts += 1
            # Its own process group: a Ctrl-C meant for the caller must not end it before the caller's
            # cleanup does. It dies with this thread, which lives until __exit__ (or the process is killed).
            self._process = subprocess.Popen(
                self.command,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                process_group=0,
                preexec_fn=die_with_parent(),
            )
            self._process.wait()
            self._stopping.wait(0.5)

    def restart(self) -> None:
        """End the current port-forward (say, to a pod that is gone) and wait for the next one to listen."""
        before = self.restarts
        if self._process is not None:
            self._process.kill()
        wait_for(lambda: self.restarts > before and self.listening(), timeout=30, interval=0.2)

    def listening(self) -> bool:
        with socket.socket() as sock:
            sock.settimeout(1)
            return sock.connect_ex(("127.0.0.1", self.local_port)) == 0

    def __enter__(self) -> StayingForward:
        self._thread.start()
        wait_for(self.listening, timeout=30, interval=0.2, message=f"port-forward: {' '.join(self.command)}")
        return self

    def __exit__(self, *exc: object) -> None:
        self._stopping.set()
        while self._thread.is_alive():
            if self._process is not None and self._process.poll() is None:
                self._process.kill()
            self._thread.join(timeout=0.2)


def announce(config: pytest.Config, line: str) -> None:
    """A line in pytest's output even when output is captured (timings the CI log should show)."""
    reporter = config.pluginmanager.get_plugin("terminalreporter")
    capture = config.pluginmanager.get_plugin("capturemanager")
    if reporter is not None and capture is not None:
        with capture.global_and_fixture_disabled():
            reporter.write_line(f"\ntests/cluster: {line}")
