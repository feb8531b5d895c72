"""Helpers of the packaging tests: helm against a control plane, polling, the chart's location."""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import yaml

from hack.localpod import Kubectl
from tests.support.controlplane import ControlPlane
from tests.support.procs import REPO_ROOT

CHART = REPO_ROOT / "charts" / "kubechat"
RELEASE_NAMESPACE = "kubechat-system"


class Helm:
    """hack/control-plane's helm binary with private config/cache dirs (and a cluster, if given)."""

    def __init__(self, bin_dir: Path, home: Path, plane: ControlPlane | None = None) -> None:
        self.binary = str(bin_dir / "helm")
        self.env = (plane.env() if plane else dict(os.environ)) | {
            "HELM_CACHE_HOME": str(home / "cache"),
            "HELM_CONFIG_HOME": str(home / "config"),
            "HELM_DATA_HOME": str(home / "data"),
        }

    def __call__(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            [self.binary, *args], env=self.env, capture_output=True, text=True, timeout=300, check=False
        )
        if check and result.returncode != 0:
            raise AssertionError(f"helm {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}")
        return result

    def template(self, *args: str, chart: Path = CHART) -> list[dict]:
        """The chart's rendered manifests, parsed."""
        out = self("template", "kubechat", str(chart), "--namespace", RELEASE_NAMESPACE, *args).stdout
        return [doc for doc in yaml.safe_load_all(out) if doc]


def wait_for(predicate: Callable[[], object], timeout: float, what: str, interval: float = 0.5) -> object:
    """Poll until predicate returns something truthy; fail with `what` after timeout seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(interval)


def get_json(kubectl: Kubectl, *args: str) -> dict:
    return json.loads(kubectl.run("get", *args, "-o", "json"))
