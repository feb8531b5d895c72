"""Run the chat frontend as a real process for tests (`python -m kubechat_frontend`: gunicorn, threads)."""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from tests.support.model_server import RunningServer, running_model_server
from tests.support.procs import die_with_parent, free_port, python_env
from tests.support.tiny_models import tiny_model_dir


@dataclass
class RunningFrontend:
    url: str
    log: Path
    process: subprocess.Popen

    def log_lines(self) -> list[dict[str, Any]]:
        """The JSON lines of its log (request logs and warnings); other lines (gunicorn's) are skipped."""
        entries = []
        for line in self.log.read_text(errors="replace").splitlines():
            with contextlib.suppress(ValueError):
                entries.append(json.loads(line))
        return entries


def frontend_env(settings: dict[str, Any]) -> dict[str, str]:
    """`KUBECHAT_FRONTEND_*` variables for `settings` named without the prefix (lists become JSON)."""
    env = {}
    for name, value in settings.items():
        if isinstance(value, (list, dict)):
            value = json.dumps(value)
        elif isinstance(value, bool):
            value = "true" if value else "false"
        env[f"KUBECHAT_FRONTEND_{name}"] = str(value)
    return env


def start_frontend_process(
    settings: dict[str, Any], log: Path, *, workers: int | None = 1, threads: int | None = 16, port: int = 0
) -> tuple[subprocess.Popen, str]:
    """`python -m kubechat_frontend` with `settings`, not waited for (it may refuse to start); `None` for
    `workers` or `threads` leaves that to the frontend's default."""
    port = port or free_port()
    sizing = {}
    if threads is not None:
        sizing["KUBECHAT_FRONTEND_THREADS"] = str(threads)
    if workers is not None:
        sizing["KUBECHAT_FRONTEND_WORKERS"] = str(workers)
    env = python_env(
        KUBECHAT_FRONTEND_HOST="127.0.0.1",
        KUBECHAT_FRONTEND_PORT=str(port),
        **sizing,
        **frontend_env({"COOKIE_SECURE": False, **settings}),
    )
    with open(log, "ab") as log_file:
        process = subprocess.Popen(
            [sys.executable, "-m", "kubechat_frontend"],
            env=env,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group, so a hung arbiter's workers die with it
            preexec_fn=die_with_parent(),
        )
    return process, f"http://127.0.0.1:{port}"


@contextlib.contextmanager
def run_frontend(
    settings: dict[str, Any], log: Path, *, workers: int | None = 1, threads: int | None = 16, port: int = 0
) -> Iterator[RunningFrontend]:
    """Start a frontend with `settings`, wait for `/health`, and stop it (and its workers) afterwards.
    `workers=None` leaves the worker count to the frontend's default, as a Deployment does; `port` reuses a
    port (a restarted frontend where the last one was)."""
    process, url = start_frontend_process(settings, log, workers=workers, threads=threads, port=port)
    try:
        deadline = time.monotonic() + 60
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"frontend exited with {process.returncode}:\n{log.read_text()[-3000:]}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(url + "/health", timeout=2).status_code == 200:
                    break
            if time.monotonic() > deadline:
                raise RuntimeError(f"frontend did not start in 60 s:\n{log.read_text()[-3000:]}")
            time.sleep(0.2)
        yield RunningFrontend(url, log, process)
    finally:
        # gunicorn's arbiter stops its workers on SIGTERM (graceful) and exits.
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=40)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def avoid_rate_window_edge(window_s: int = 60, margin_s: float = 10) -> None:
    """Sleep into the next rate-limit window if this one ends within `margin_s`, so that a burst of requests
    in a test is counted in one fixed window (as every replica computes it)."""
    left = window_s - time.time() % window_s
    if left < margin_s:
        time.sleep(left + 0.1)


@dataclass
class ServedModel:
    """A real model server (tests.support.model_server) as a frontend sees it: URL, served name, pod, node."""

    url: str
    name: str
    pod: str
    node: str
    server: RunningServer

    def stop(self) -> None:
        self.server.stop()


@contextlib.contextmanager
def served_model(name: str, kind: str, **env: str) -> Iterator[ServedModel]:
    """The real model server on a tiny `kind` model (tests.support.tiny_models), served as `name`; `env` adds
    to its ConfigMap's variables (answers are at most 12 tokens unless `KUBECHAT_MAX_NEW_TOKENS` says)."""
    settings = {"KUBECHAT_SERVED_MODEL_NAME": name, "KUBECHAT_MAX_NEW_TOKENS": "12", **env}
    with running_model_server(tiny_model_dir(kind), env=settings) as server:
        # The helper names the pod and node itself; the server echoes them in every answer.
        yield ServedModel(server.url, name, "test-pod", "test-node", server)


@dataclass
class Keys:
    """A keys file (what the API-keys Secret mounts) with two users' keys, and the admin key."""

    file: str
    user_key: str
    other_key: str
    admin_key: str

    @property
    def user_headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.user_key}"}

    @property
    def other_headers(self) -> dict[str, str]:
        return {"X-API-Key": self.other_key}

    @property
    def admin_headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.admin_key}"}


def make_keys(directory: Path) -> Keys:
    user, other, admin = (secrets.token_urlsafe(24) for _ in range(3))
    path = directory / "api-keys"
    path.write_text(f"# mounted from a Secret\n{user}\n{other}\n")
    return Keys(str(path), user, other, admin)
