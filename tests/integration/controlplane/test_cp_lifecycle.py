"""Starting and stopping a control plane leaves no process behind, also when its starter is killed."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time

import pytest

from tests.support.controlplane import COMPONENTS, ControlPlane, alive, kill_group
from tests.support.procs import python_env

pytestmark = pytest.mark.controlplane

# A process that starts a control plane, reports its process ids, and waits to be killed.
STARTER = """
import json, sys, time
from pathlib import Path
from tests.support.controlplane import ControlPlane
plane = ControlPlane(Path(sys.argv[1]), Path(sys.argv[2]))
plane.start()
print(json.dumps({"pgid": plane.process_group, "pids": plane.pids}), flush=True)
time.sleep(600)
"""


def wait_gone(pids: list[int], timeout: float = 10) -> list[int]:
    """The pids still alive after up to `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while any(alive(pid) for pid in pids) and time.monotonic() < deadline:
        time.sleep(0.1)
    return [pid for pid in pids if alive(pid)]


def test_stopping_a_control_plane_leaves_none_of_its_processes(control_plane, tmp_path):
    # A private instance beside the session's, so stopping it cannot disturb the other tests.
    private = ControlPlane(tmp_path / "private", control_plane.bin_dir)
    try:
        private.start()
        pids = private.pids
        assert sorted(pids) == sorted(COMPONENTS)
        assert all(alive(pid) for pid in pids.values())
        assert private.kubectl("get", "nodes", "-o", "name").stdout.split() == [
            "node/kwok-cpu-0", "node/kwok-gpu-0", "node/kwok-gpu-1",
        ]  # fmt: skip
    finally:
        private.stop()

    assert [name for name, pid in pids.items() if alive(pid)] == []


def test_killing_the_process_that_started_a_control_plane_kills_every_component(control_plane, tmp_path):
    starter = subprocess.Popen(
        [sys.executable, "-c", STARTER, str(tmp_path / "orphan"), str(control_plane.bin_dir)],
        stdout=subprocess.PIPE,
        text=True,
        env=python_env(),
    )
    started = None
    try:
        started = json.loads(starter.stdout.readline())
        assert sorted(started["pids"]) == sorted(COMPONENTS)

        os.kill(starter.pid, signal.SIGKILL)  # no teardown runs: only the kernel's PDEATHSIG is left
        starter.wait()

        assert wait_gone(list(started["pids"].values())) == []
    finally:
        if starter.poll() is None:
            starter.kill()
            starter.wait()
        starter.stdout.close()
        if started:  # the assertion failed: do not leave the survivors to the next tests
            kill_group(started["pgid"], list(started["pids"].values()))


def test_a_port_taken_before_the_apiserver_binds_it_is_picked_again(control_plane, tmp_path):
    private = ControlPlane(tmp_path / "private", control_plane.bin_dir)
    taken = private.ports["kube-apiserver"]
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", taken))
        squatter.listen()
        try:
            private.start()
            assert private.ports["kube-apiserver"] != taken
            assert private.kubectl("get", "--raw", "/readyz").stdout == "ok"
        finally:
            private.stop()
