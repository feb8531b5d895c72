"""A test run killed outright (SIGKILL: no teardown runs) still leaves none of the real parts it started: the
test helpers start them so that they die with the process that started them (tests/support/procs.py)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

from tests.support.procs import REPO_ROOT, python_env

# What a test process does: start a real database and a real model server through the shared helpers,
# report their pids, then hang (as a test would while it runs).
STARTS_PARTS_THEN_HANGS = """
import contextlib, sys, time
from tests.support.databases import redis
from tests.support.model_server import running_model_server
from tests.support.tiny_models import tiny_model_dir

with redis() as database, running_model_server(tiny_model_dir("llama"), wait=False) as server:
    print(database.process.process.pid, server.process.pid, flush=True)
    time.sleep(600)
"""


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie has exited but waits for its parent to reap it: it is gone as far as work goes.
    with open(f"/proc/{pid}/stat") as stat:
        return stat.read().rsplit(")", 1)[1].split()[0] != "Z"


def test_sigkilled_test_process_takes_its_database_and_model_server_with_it():
    runner = subprocess.Popen(
        [sys.executable, "-c", STARTS_PARTS_THEN_HANGS],
        cwd=REPO_ROOT,
        env=python_env(),
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        pids = [int(pid) for pid in runner.stdout.readline().split()]
        assert len(pids) == 2 and all(_alive(pid) for pid in pids)
        runner.send_signal(signal.SIGKILL)
        runner.wait(timeout=10)
        deadline = time.monotonic() + 10
        while any(_alive(pid) for pid in pids) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not [pid for pid in pids if _alive(pid)], "children outlived the killed test process"
    finally:
        runner.kill()
        runner.wait()
