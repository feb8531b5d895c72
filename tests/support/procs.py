"""Helpers for tests that run kubechat's parts as real processes."""

from __future__ import annotations

import ctypes
import os
import signal
import socket
from collections.abc import Callable
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
SOURCE_ROOTS = [REPO_ROOT / "operator", REPO_ROOT / "model-server", REPO_ROOT / "frontend", REPO_ROOT]


def python_env(**extra: str) -> dict[str, str]:
    """The environment for a child Python process that must import this checkout's source."""
    env = dict(os.environ)
    paths = [str(p) for p in SOURCE_ROOTS]
    if env.get("PYTHONPATH"):
        paths.append(env["PYTHONPATH"])
    env["PYTHONPATH"] = os.pathsep.join(paths)
    env["HF_HUB_OFFLINE"] = "1"
    env.update(extra)
    return env


def free_port() -> int:
    """A loopback TCP port nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def cache_dir(*parts: str) -> Path:
    """A directory under kubechat's cache, outside the clone (created on demand)."""
    path = Path(os.environ.get("KUBECHAT_CACHE", Path.home() / ".cache" / "kubechat")).joinpath(*parts)
    path.mkdir(parents=True, exist_ok=True)
    return path


_PR_SET_PDEATHSIG = 1


def die_with_parent() -> Callable[[], None]:
    """A ``preexec_fn`` that SIGKILLs the child when the process starting it dies, even by SIGKILL, so an
    interrupted test run leaves nothing behind. (Linux ties this to the *thread* that started the child:
    start long-lived children from the main thread.)"""
    parent_pid = os.getpid()

    def preexec() -> None:
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        # The parent may have died between fork and prctl; then nobody would ever send the signal.
        if os.getppid() != parent_pid:
            os._exit(1)

    return preexec
