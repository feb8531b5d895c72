"""Helpers of the operator's integration tests: kubectl with JSON reads, polling, and the operator process."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from tests.support.controlplane import ControlPlane
from tests.support.procs import REPO_ROOT, die_with_parent, free_port, python_env

CRD_DIR = REPO_ROOT / "crds"
EXAMPLES = REPO_ROOT / "examples"
T = TypeVar("T")


def wait_until(
    check: Callable[[], T], timeout: float = 30, what: str = "condition", interval: float = 0.25
) -> T:
    """Call check until it returns something truthy (returned) or timeout passes (AssertionError)."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}; last value: {last!r}")


class Kubectl:
    """kubectl bound to one namespace of the control plane, with JSON reads."""

    def __init__(self, plane: ControlPlane, namespace: str) -> None:
        self.plane, self.namespace = plane, namespace

    def __call__(
        self, *args: str, input: str | None = None, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        return self.plane.kubectl(f"--namespace={self.namespace}", *args, input=input, check=check)

    def get(self, resource: str, name: str | None = None, *args: str) -> Any:
        """The object (or list) as JSON; None when a named object does not exist."""
        result = self("get", resource, *([name] if name else []), "-o", "json", *args, check=False)
        if result.returncode != 0:
            if "NotFound" in result.stderr:
                return None
            raise AssertionError(result.stderr)
        return json.loads(result.stdout)

    def items(self, resource: str, selector: str | None = None) -> list[dict]:
        return self.get(resource, None, *(["-l", selector] if selector else []))["items"]

    def apply(self, manifest: str | Path) -> subprocess.CompletedProcess[str]:
        if isinstance(manifest, Path):
            return self("apply", "-f", str(manifest))
        return self("apply", "-f", "-", input=manifest)

    def status(self, resource: str, name: str) -> dict:
        return (self.get(resource, name) or {}).get("status") or {}

    def wait_phase(self, resource: str, name: str, phase: str, timeout: float = 60) -> dict:
        return wait_until(
            lambda: (s := self.status(resource, name)).get("phase") == phase and s,
            timeout,
            f"{resource}/{name} phase {phase}",
        )


class OperatorProcess:
    """`python -m kubechat_operator` as a child process, logging to a file."""

    def __init__(self, plane: ControlPlane, log_path: Path, *args: str) -> None:
        self.liveness_port, self.metrics_port = free_port(), free_port()
        self.log_path = log_path
        # Where the request autoscaler reads each pod's /metrics (autoscaler_scrape.PodAddresses): kwok's
        # pods serve nothing, at addresses that lead off the machine; a test maps pods to local servers.
        self.scrape_addresses = log_path.with_suffix(".scrape.json")
        self.scrape_addresses.write_text("{}")
        env = python_env(**plane.env(), KUBECHAT_SCRAPE_ADDRESSES=str(self.scrape_addresses))
        self._log = log_path.open("ab")
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "kubechat_operator",
                f"--liveness-port={self.liveness_port}",
                f"--metrics-port={self.metrics_port}",
                *args,
            ],
            env=env,
            cwd=REPO_ROOT,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=die_with_parent(),
        )

    def http(self, port: int, path: str) -> tuple[int, str]:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=2) as response:
                return response.status, response.read().decode()
        except OSError as exc:
            return getattr(exc, "code", 0) or 0, str(exc)

    def metric(self, sample: str) -> float:
        """One sample of the operator's /metrics, e.g. 'kubechat_operator_applies_total{kind="Deployment"}'
        (0 when absent)."""
        status, body = self.http(self.metrics_port, "/metrics")
        assert status == 200, body
        for line in body.splitlines():
            if line.startswith(sample + " "):
                return float(line.split(" ")[1])
        return 0.0

    def wait_live(self, timeout: float = 30) -> None:
        def live() -> bool:
            assert self.process.poll() is None, f"operator exited:\n{self.log()}"
            return self.http(self.liveness_port, "/healthz")[0] == 200

        wait_until(live, timeout, "the operator's liveness endpoint")

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")[-6000:]

    def kill(self) -> None:
        """SIGKILL: no cleanup, like a crash or an OOM kill."""
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(10)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.kill()
        self._log.close()
