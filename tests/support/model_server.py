"""Run the REAL model server as a subprocess for tests (any part's tests: server, frontend, e2e).

    with running_model_server(tiny_model_dir("godel")) as server:
        requests.post(f"{server.url}/chat", json={"message": "Hi"})

The server listens on a free loopback port, imports this checkout's source (``python_env()``) and is ready
(``/readyz`` answered 200, i.e. the model generated its warm-up answer) when the context is entered. On exit
it gets SIGTERM (graceful drain), then SIGKILL if it lingers. Its output is in ``server.log_path``.

Fixtures: ``godel_server``, ``llama_server``, ``llama_chat_server`` (module scope, tiny models).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support.procs import die_with_parent, free_port, python_env
from tests.support.tiny_models import tiny_model_dir


class ServerStartError(RuntimeError):
    """The server exited or did not get ready in time; the message carries the end of its log."""


@dataclass
class RunningServer:
    """A model server process: its base URL, process and log."""

    url: str
    port: int
    process: subprocess.Popen
    log_path: Path

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30.0) -> int:
        """Signal the server and wait for it; kill it if it does not exit in ``timeout``. Returns the code."""
        if self.process.poll() is None:
            self.process.send_signal(sig)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)
        return self.process.returncode


def http_status(url: str, timeout: float = 2.0) -> tuple[int, dict]:
    """GET ``url``; returns (status, JSON body or {}); status 0 when nothing answers."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return response.status, json.loads(response.read() or b"{}")
    except urllib.error.HTTPError as exc:
        try:
            return exc.code, json.loads(exc.read() or b"{}")
        except (OSError, ValueError):  # the body can time out too, while loading holds the GIL
            return exc.code, {}
    except (OSError, ValueError):
        return 0, {}


def wait_ready(server: RunningServer, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise ServerStartError(
                f"model server exited with {server.process.returncode}:\n{server.log()[-4000:]}"
            )
        status, body = http_status(f"{server.url}/readyz")
        if status == 200:
            return
        if body.get("status") == "failed":
            raise ServerStartError(f"model failed to load: {body}\n{server.log()[-4000:]}")
        time.sleep(0.2)
    raise ServerStartError(f"model server not ready after {timeout} s:\n{server.log()[-4000:]}")


@contextmanager
def running_model_server(
    model_dir: str | os.PathLike,
    env: Mapping[str, str] | None = None,
    args: Sequence[str] = (),
    ready_timeout: float = 180.0,
    wait: bool = True,
    port: int = 0,
) -> Iterator[RunningServer]:
    """Start ``kubechat-server --model model_dir`` on a free port (or ``port``: a model that comes up where
    a client already waits for it); yield once ready; stop it on exit.

    ``env`` adds environment variables (the ConfigMap's, e.g. ``KUBECHAT_INSTRUCTION``); ``args`` adds CLI
    flags. With ``wait=False`` the context is entered as soon as the process runs (to watch it load).
    """
    port = port or free_port()
    log_dir = Path(tempfile.mkdtemp(prefix="kubechat-server-"))
    log_path = log_dir / "server.log"
    command = [
        sys.executable,
        "-m",
        "kubechat_server",
        "--model",
        str(model_dir),
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--torch-threads",
        "1",
        *args,
    ]
    # float32 unless a test asks otherwise: on the tiny random-weight models, greedy answers are the same
    # alone and inside a batch only in float32 (bf16 rounds differently per batch shape, and random
    # weights are full of near-ties); bf16 on real weights is covered by the real-model quality tests.
    defaults = {"POD_NAME": "test-pod", "NODE_NAME": "test-node", "KUBECHAT_DTYPE": "float32"}
    child_env = python_env(**{**defaults, **dict(env or {})})
    with open(log_path, "wb") as log_file:
        process = subprocess.Popen(
            command,
            env=child_env,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=die_with_parent(),
        )
    server = RunningServer(url=f"http://127.0.0.1:{port}", port=port, process=process, log_path=log_path)
    try:
        if wait:
            wait_ready(server, ready_timeout)
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def godel_server() -> Iterator[RunningServer]:
    """The real server on the tiny GODEL (T5) model."""
    with running_model_server(tiny_model_dir("godel")) as server:
        yield server


@pytest.fixture(scope="module")
def llama_server() -> Iterator[RunningServer]:
    """The real server on the tiny Llama model (llama-2 prompt format)."""
    with running_model_server(tiny_model_dir("llama")) as server:
        yield server


@pytest.fixture(scope="module")
def llama_chat_server() -> Iterator[RunningServer]:
    """The real server on the tiny Llama model whose tokenizer has a chat template."""
    with running_model_server(tiny_model_dir("llama-chat")) as server:
        yield server
