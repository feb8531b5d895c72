"""The llama.cpp engine in tests: the ``llama-server`` binary (built by ``hack/llama-server``, cached) and
servers running the tiny GGUF models on it."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from functools import cache

from tests.support.model_server import RunningServer, running_model_server
from tests.support.procs import REPO_ROOT
from tests.support.tiny_gguf import tiny_gguf_dir


@cache
def llama_server_binary() -> str:
    """``KUBECHAT_LLAMA_SERVER`` (hack/test sets it), else what ``hack/llama-server`` builds or has cached."""
    configured = os.environ.get("KUBECHAT_LLAMA_SERVER")
    if configured:
        return configured
    built = subprocess.run(
        [str(REPO_ROOT / "hack" / "llama-server")], check=True, capture_output=True, text=True, timeout=3600
    )
    return built.stdout.strip().splitlines()[-1]


@contextmanager
def running_llamacpp_server(name: str = "llama", **kwargs) -> Iterator[RunningServer]:
    """The real model server on the llama.cpp engine, serving the tiny model ``name`` as GGUF."""
    env = {
        "KUBECHAT_ENGINE": "llama.cpp",
        "KUBECHAT_LLAMA_SERVER": llama_server_binary(),
        **kwargs.pop("env", {}),
    }
    with running_model_server(tiny_gguf_dir(name), env=env, **kwargs) as server:
        yield server
