"""Which pods are still creating (their volumes not mounted) and which of their Events says why."""

from __future__ import annotations

from kubechat_operator.observe import creating_pods, telling_volume_event


def _pod(name: str, node: str | None, phase: str, sandbox: str | None = None, going: bool = False) -> dict:
    conditions = [{"type": "PodScheduled", "status": "True" if node else "False"}]
    if sandbox is not None:
        conditions.append({"type": "PodReadyToStartContainers", "status": sandbox})
    return {
        "metadata": {"name": name, **({"deletionTimestamp": "2026-12-01T00:00:00Z"} if going else {})},
        "spec": {"nodeName": node} if node else {},
        "status": {"phase": phase, "conditions": conditions},
    }


def test_only_pods_on_a_node_without_their_sandbox_are_creating() -> None:
    pods = [
        _pod("mounting", "node-1", "Pending", sandbox="False"),
        _pod("no-condition-yet", "node-1", "Pending"),
        _pod("pulling-its-image", "node-1", "Pending", sandbox="True"),  # volumes are mounted by then
        _pod("unscheduled", None, "Pending"),
        _pod("running", "node-1", "Running", sandbox="True"),
        _pod("deleted", "node-1", "Pending", sandbox="False", going=True),
    ]
    assert creating_pods(pods) == ["mounting", "no-condition-yet"]


def _event(reason: str, message: str, at: str, type_: str = "Warning") -> dict:
    return {"type": type_, "reason": reason, "message": message, "lastTimestamp": at}


SETUP_FAILED = (
    'MountVolume.SetUp failed for volume "models" : hostPath type check failed: /srv/models is not a '
    "directory"
)
SUMMARY = (
    "Unable to attach or mount volumes: unmounted volumes=[cache], unattached volumes=[cache], failed to "
    "process volumes=[]: timed out waiting for the condition"
)


def test_the_event_naming_the_cause_wins_over_the_kubelets_later_summary() -> None:
    events = [
        _event("FailedMount", SETUP_FAILED, "2026-12-01T00:00:10Z"),
        _event("FailedMount", SUMMARY, "2026-12-01T00:02:05Z"),
        _event("BackOff", "Back-off restarting failed container", "2026-12-01T00:03:00Z"),
    ]
    assert telling_volume_event(events)["message"] == SETUP_FAILED


def test_the_latest_cause_is_shown_and_the_summary_only_when_alone() -> None:
    newer = 'MountVolume.SetUp failed for volume "kube-api-access" : configmap "kube-root-ca.crt" not found'
    events = [
        _event("FailedMount", SETUP_FAILED, "2026-12-01T00:00:10Z"),
        _event("FailedMount", newer, "2026-12-01T00:00:40Z"),
    ]
    assert telling_volume_event(events)["message"] == newer
    assert (
        telling_volume_event([_event("FailedMount", SUMMARY, "2026-12-01T00:02:05Z")])["message"] == SUMMARY
    )
    assert telling_volume_event([_event("FailedScheduling", "0/1 nodes", "2026-12-01T00:00:01Z")]) is None
