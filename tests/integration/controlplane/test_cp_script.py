"""`hack/control-plane up|env|status|down`: the background control plane people use by hand."""

from __future__ import annotations

import json
import os
import subprocess

import pytest

from tests.support.controlplane import REPO_ROOT, alive, build

pytestmark = pytest.mark.controlplane

SCRIPT = REPO_ROOT / "hack" / "control-plane"


def test_up_env_down_gives_a_usable_control_plane_and_leaves_no_process(tmp_path):
    build()
    state_dir = tmp_path / "run"
    env = {**os.environ, "KUBECHAT_CONTROL_PLANE_STATE": str(state_dir)}

    def script(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([SCRIPT, *args], env=env, capture_output=True, text=True, timeout=120)

    try:
        assert script("up").returncode == 0
        pids = json.loads((state_dir / "state.json").read_text())["pids"]
        assert script("status").returncode == 0
        nodes = subprocess.run(
            ["bash", "-c", f'eval "$({SCRIPT} env)" && kubectl get nodes -o name'],
            env=env,
            capture_output=True,
            text=True,
            check=True,
            timeout=60,
        )
        assert nodes.stdout.split() == ["node/kwok-cpu-0", "node/kwok-gpu-0", "node/kwok-gpu-1"]
    finally:
        down = script("down")

    assert down.returncode == 0, down.stderr
    assert [name for name, pid in pids.items() if alive(pid)] == []
    assert script("status").returncode == 1
