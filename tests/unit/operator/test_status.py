"""Status is derived from what the cluster reports: Deployment, Pods and the pods' progress reports."""

from __future__ import annotations

import json
from datetime import UTC, datetime

from kubechat_operator.status import (
    Blocker,
    Observed,
    load_progress,
    set_condition,
    transition_event,
    workload_status,
)

T0 = datetime(2026, 11, 21, 22, 0, tzinfo=UTC)
T1 = datetime(2026, 11, 21, 22, 5, tzinfo=UTC)


def _deployment(replicas: int, ready: int, updated: int | None = None) -> dict:
    return {
        "metadata": {"generation": 2},
        "status": {
            "observedGeneration": 2,
            "replicas": replicas,
            "readyReplicas": ready,
            "updatedReplicas": replicas if updated is None else updated,
        },
    }


def _pod(name: str, ready: bool = False, **status: object) -> dict:
    conditions = [{"type": "Ready", "status": "True" if ready else "False"}]
    return {"metadata": {"name": name}, "status": {"phase": "Running", "conditions": conditions, **status}}


def _conditions(status: dict) -> dict[str, dict]:
    return {c["type"]: c for c in status["conditions"]}


def test_all_pods_ready_is_phase_ready_with_ready_true() -> None:
    status = workload_status(Observed(2, _deployment(2, 2), [_pod("a", True), _pod("b", True)]), [], 3, T0)
    assert status["phase"] == "Ready"
    assert status["ready"] == "2/2"
    assert status["reason"] == ""
    conditions = _conditions(status)
    assert conditions["Ready"]["status"] == "True"
    assert conditions["Progressing"]["status"] == "False"
    assert conditions["Degraded"]["status"] == "False"
    assert all(c["observedGeneration"] == 3 for c in status["conditions"])


def test_unschedulable_pod_reports_the_schedulers_message() -> None:
    message = "0/3 nodes are available: 3 Insufficient nvidia.com/gpu."
    pod = _pod("a")
    pod["status"] = {
        "phase": "Pending",
        "conditions": [
            {"type": "PodScheduled", "status": "False", "reason": "Unschedulable", "message": message}
        ],
    }
    status = workload_status(Observed(1, _deployment(1, 0), [pod]), [], 1, T0)
    assert (status["phase"], status["reason"], status["message"]) == ("Pending", "Unschedulable", message)
    assert _conditions(status)["Ready"]["reason"] == "Unschedulable"
    assert _conditions(status)["Degraded"]["status"] == "True"


def test_image_pull_and_crash_loop_are_degraded() -> None:
    waiting = {"waiting": {"reason": "ImagePullBackOff", "message": "Back-off pulling image x"}}
    pulling = _pod("a", containerStatuses=[{"state": waiting}])
    status = workload_status(Observed(1, _deployment(1, 0), [pulling]), [], 1, T0)
    assert (status["phase"], status["reason"]) == ("Degraded", "ImagePullBackOff")
    crashing = _pod(
        "b",
        containerStatuses=[
            {
                "state": {"waiting": {"reason": "CrashLoopBackOff", "message": "back-off 5m0s"}},
                "lastState": {"terminated": {"exitCode": 1, "reason": "Error"}},
            }
        ],
    )
    status = workload_status(Observed(1, _deployment(1, 0), [crashing]), [], 1, T0)
    assert status["reason"] == "CrashLoopBackOff"
    assert "last exit code 1" in status["message"]


def test_a_crash_loop_of_oom_kills_is_reported_as_oomkilled_naming_the_memory_limit() -> None:
    oom = _pod(
        "c",
        containerStatuses=[
            {
                "state": {"waiting": {"reason": "CrashLoopBackOff", "message": "back-off 40s"}},
                "lastState": {"terminated": {"exitCode": 137, "reason": "OOMKilled"}},
            }
        ],
    )
    status = workload_status(Observed(1, _deployment(1, 0), [oom]), [], 1, T0)
    assert (status["phase"], status["reason"]) == ("Degraded", "OOMKilled")
    assert "exit code 137" in status["message"] and "limits.memory" in status["message"]


def test_loading_pod_shows_progress_in_status_and_summary() -> None:
    report = {
        "stage": "downloading",
        "percent": 41.5,
        "bytesDone": 415,
        "bytesTotal": 1000,
        "message": "model.safetensors",
    }
    observed = Observed(1, _deployment(1, 0), [_pod("a")], {"a": json.dumps(report), "gone": "{}"})
    status = workload_status(observed, [], 1, T0)
    assert (status["phase"], status["reason"]) == ("Progressing", "Loading")
    assert status["loadProgress"]["summary"] == "downloading 42%"
    assert status["loadProgress"]["pods"] == [
        {
            "pod": "a",
            "stage": "downloading",
            "message": "model.safetensors",
            "percent": 41.5,
            "bytesDone": 415,
            "bytesTotal": 1000,
        }
    ]


def test_failed_model_load_is_degraded_with_the_servers_message() -> None:
    observed = Observed(
        1,
        _deployment(1, 0),
        [_pod("a")],
        {"a": json.dumps({"stage": "failed", "message": "unknown architecture 'bert'"})},
    )
    status = workload_status(observed, [], 1, T0)
    assert (status["phase"], status["reason"]) == ("Degraded", "ModelLoadFailed")
    assert "unknown architecture 'bert'" in status["message"]


def test_progress_summary_names_the_slowest_pod_and_counts_pods() -> None:
    observed = Observed(
        2,
        None,
        [_pod("a"), _pod("b"), _pod("c", True)],
        {
            "a": json.dumps({"stage": "warming"}),
            "b": json.dumps({"stage": "downloading", "percent": 10}),
            "c": json.dumps({"stage": "ready"}),
        },
    )
    assert load_progress(observed)["summary"] == "downloading 10% (2 pods)"


def test_blocker_sets_failed_without_looking_at_pods() -> None:
    blocker = Blocker("ConfigMapNotFound", "spec.prompt.knowledgeFrom: ConfigMap 'kb' not found")
    status = workload_status(Observed(1, None, []), [], 1, T0, blocker)
    assert (status["phase"], status["reason"]) == ("Failed", "ConfigMapNotFound")
    assert _conditions(status)["Ready"]["message"] == blocker.message


def test_last_transition_time_moves_only_when_status_flips() -> None:
    first = set_condition([], "Ready", False, "Loading", "a", 1, T0)
    same = set_condition([first], "Ready", False, "PodsStarting", "b", 2, T1)
    flipped = set_condition([same], "Ready", True, "Available", "c", 2, T1)
    assert same["lastTransitionTime"] == first["lastTransitionTime"] == "2026-11-21T22:00:00Z"
    assert flipped["lastTransitionTime"] == "2026-11-21T22:05:00Z"


def test_transitions_become_events_warnings_for_trouble() -> None:
    assert transition_event(
        {"phase": "Progressing", "reason": "Loading"}, {"phase": "Ready", "reason": "", "message": "1/1"}
    ) == (
        "Normal",
        "Ready",
        "Ready: 1/1",
    )
    assert (
        transition_event({}, {"phase": "Pending", "reason": "Unschedulable", "message": "m"})[0] == "Warning"
    )
    assert transition_event({"phase": "Ready", "reason": ""}, {"phase": "Ready", "reason": ""}) is None


def test_a_pod_stuck_on_a_volume_reports_the_events_reason_not_pods_starting() -> None:
    pod = {
        "metadata": {"name": "godel-abc"},
        "spec": {"nodeName": "node-1"},
        "status": {"phase": "Pending", "conditions": [{"type": "PodScheduled", "status": "True"}]},
    }
    event = {
        "reason": "FailedAttachVolume",
        "message": 'Multi-Attach error for volume "pvc-1" Volume is already used by pod(s) godel-xyz',
    }
    status = workload_status(
        Observed(desired=1, pods=[pod], volume_events={"godel-abc": event}),
        [],
        1,
        datetime(2026, 1, 1, tzinfo=UTC),
    )
    assert (status["phase"], status["reason"]) == ("Degraded", "FailedAttachVolume")
    assert "Multi-Attach" in status["message"]
