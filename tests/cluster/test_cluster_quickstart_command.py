"""The README's first command, run as a user runs it: `hack/quickstart --check` starts a control plane and a
real node, runs the operator, model server and frontend as pods from kubechat's images, ends with SmolLM2's
answer through the frontend, and leaves nothing of the node behind."""

from __future__ import annotations

import re
import subprocess
import time

import pytest

from tests.support.node import NODE_NAME
from tests.support.pods import announce
from tests.support.procs import REPO_ROOT

pytestmark = [pytest.mark.cluster, pytest.mark.controlplane, pytest.mark.slow, pytest.mark.timeout(3000)]

# hack/quickstart takes the machine's node lock itself: tests/cluster/conftest.py runs this module before the
# session's `real_cluster` takes it.
STARTS_ITS_OWN_NODE = True


def test_quickstart_answers_from_pods_on_the_real_node_and_removes_everything(
    pytestconfig: pytest.Config,
) -> None:
    start = time.monotonic()
    try:
        done = subprocess.run(
            [REPO_ROOT / "hack" / "quickstart", "--check"],
            capture_output=True,
            text=True,
            timeout=2700,  # a cold machine builds the images first (~20 min)
            stdin=subprocess.DEVNULL,
        )
    except subprocess.TimeoutExpired:
        # A killed run's leftovers go (`hack/quickstart down`); a run that ended cleaned up itself.
        subprocess.run([REPO_ROOT / "hack" / "quickstart", "down"], capture_output=True, timeout=300)
        raise
    announce(pytestconfig, f"hack/quickstart --check took {time.monotonic() - start:.0f} s")
    output = done.stdout + done.stderr
    assert done.returncode == 0, output[-4000:]
    assert re.search(r"chat page\s+http://127\.0\.0\.1:\d+", output), output[-4000:]
    answer = re.search(r"^Model: '(?P<text>.+)'\s+\(pod (?P<pod>\S+), node (?P<node>\S+)\)$", output, re.M)
    assert answer, f"no answer from the frontend:\n{output[-4000:]}"
    # The model-server pod of the example's Deployment answered, on the real node.
    assert re.fullmatch(r"quickstart-[a-z0-9]+-[a-z0-9]+", answer["pod"]) and answer["node"] == NODE_NAME
    assert "Paris" in answer["text"], output[-4000:]  # a real model's real answer
    # Checked by hack/quickstart itself under the node lock (another run may take the machine right after).
    assert "stopped; nothing of the node is left" in output, output[-4000:]
