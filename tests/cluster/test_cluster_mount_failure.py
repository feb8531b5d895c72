"""A volume the kubelet will not mount, on the real node: the quick start's ChatModel with its weights'
PersistentVolume (hostPath, `type: Directory`, as hack/quickstart makes it) pointing at a directory that is
not there yet — the weights not copied to the node, or a typo in the path. The kubelet refuses the mount
("hostPath type check failed") and says so only in an Event; `kubectl get chatmodel` must say it too, and
the model must come up on its own once the directory with the weights exists."""

from __future__ import annotations

import json
import time

import pytest
import yaml

from hack import quickstart as steps
from tests.support.node import Cluster
from tests.support.pods import announce, wait_for

# As long as the other modules': the first test to need the node waits for the node lock (up to 30 min).
pytestmark = [pytest.mark.cluster, pytest.mark.controlplane, pytest.mark.slow, pytest.mark.timeout(2700)]


def _status(cluster: Cluster, namespace: str) -> dict:
    model = cluster.plane.kubectl("-n", namespace, "get", "chatmodel", steps.MODEL, "-o", "json").stdout
    return json.loads(model).get("status") or {}


def _condition(status: dict, type_: str) -> dict:
    return next(c for c in status["conditions"] if c["type"] == type_)


def test_a_weights_directory_missing_on_the_node_is_the_models_status_until_it_exists(
    real_cluster: Cluster, operator: str, pytestconfig: pytest.Config
) -> None:
    plane = real_cluster.plane
    namespace = f"mountfail-{int(time.time())}"
    plane.kubectl("create", "namespace", namespace)
    weights = real_cluster.state_dir / "volumes" / namespace / "model-cache"  # not made
    volume = steps.host_path_volume(plane, weights, namespace, f"{steps.MODEL}-cache", "ReadWriteMany")
    model = next(d for d in steps.example_documents() if d["kind"] == "ChatModel")
    try:
        applied = time.monotonic()
        plane.kubectl("-n", namespace, "apply", "-f", "-", input=yaml.safe_dump(model))
        status = wait_for(
            lambda: (s := _status(real_cluster, namespace)).get("reason") == "FailedMount" and s,
            180,
            2,
            "the kubelet's FailedMount never reached the ChatModel's status",
        )
        reported = time.monotonic() - applied
        table = plane.kubectl("-n", namespace, "get", "chatmodel", steps.MODEL).stdout
        assert "Degraded" in table and "FailedMount" in table, table
        assert f"hostPath type check failed: {weights} is not a directory" in status["message"], status
        assert status["phase"] == "Degraded"
        ready = _condition(status, "Ready")
        assert (ready["status"], ready["reason"]) == ("False", "FailedMount")
        assert _condition(status, "Degraded")["status"] == "True"

        # The fix a user makes: the weights in place, owned by the pods' user, in one rename so the
        # kubelet's next attempt finds the directory complete.
        staging = weights.with_name("model-cache.new")
        steps.seed_model(staging / steps.MODEL_IN_CACHE)
        steps.give_to_pods(staging)
        staging.rename(weights)
        fixed = time.monotonic()
        status = wait_for(
            lambda: (s := _status(real_cluster, namespace)).get("phase") == "Ready" and s,
            600,
            2,
            "the model did not come up after its weights' directory was made",
        )
        assert _condition(status, "Degraded")["status"] == "False"
        assert _condition(status, "Ready")["status"] == "True"
        announce(
            pytestconfig,
            f"mount failure: FailedMount in the ChatModel's status {reported:.0f} s after apply; Ready "
            f"{time.monotonic() - fixed:.0f} s after the weights' directory was made",
        )
    finally:
        plane.kubectl("delete", "namespace", namespace, "--timeout=180s", check=False, timeout=200)
        plane.kubectl("delete", "persistentvolume", volume, "--wait=false", check=False)
