"""Helpers for tests that run kubechat's parts as real processes."""

from __future__ import annotations

import os
import socket
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
