"""The README's first command, run as a user runs it: `hack/quickstart --check` ends with a chat answer."""

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
            timeout=900,
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
    assert "gibberish" in output and "microsoft/GODEL-v1_1-base-seq2seq" in output
    left = quickstart_processes()
    assert not left, f"the quick start left processes behind: {left}"
    # The frontend's sqlite:////data/history.db lives in the local stand-in for its /data volume.
    assert (
        cache_dir("quickstart") / "pods" / "quickstart-chat-frontend" / "volumes" / "data" / "history.db"
    ).is_file()
