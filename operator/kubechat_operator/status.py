"""Status of a ChatModel/ChatFrontend derived from what the cluster reports (Deployment, Pods, progress).

Pure functions: the handlers fetch the observed objects (observe.py) and write the result.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

Manifest = dict[str, Any]

# Container waiting reasons that mean "this will not come up without a change", mapped to our reason.
_WAITING_PROBLEMS = {
    "ErrImagePull": "ImagePullBackOff",
    "ImagePullBackOff": "ImagePullBackOff",
    "InvalidImageName": "ImagePullBackOff",
    "CrashLoopBackOff": "CrashLoopBackOff",
    "CreateContainerConfigError": "CreateContainerConfigError",
    "CreateContainerError": "CreateContainerError",
    "RunContainerError": "RunContainerError",
}
_STAGE_ORDER = ["failed", "downloading", "loading", "warming", "ready"]


@dataclass(frozen=True)
class Problem:
    """Why something is not (fully) working: a CamelCase reason and the cluster's own message."""

    reason: str
    message: str


@dataclass(frozen=True)
class Blocker(Problem):
    """A problem found before any pod could help (bad input, missing dependency, a refused request): sets
    the phase outright. api_error marks a refused request, retried with the error backoff."""

    phase: str = "Failed"
    api_error: bool = False


@dataclass
class Observed:
    """What the cluster reports about one workload (a Deployment and its pods)."""

    desired: int
    deployment: Manifest | None = None
    pods: list[Manifest] = field(default_factory=list)
    progress: dict[str, str] = field(default_factory=dict)
    # Pods on a node whose volumes are not mounted yet (observe.creating_pods), and the most telling volume
    # Warning Event (FailedMount, FailedAttachVolume) of the first few.
    creating: list[str] = field(default_factory=list)
    volume_events: dict[str, Manifest] = field(default_factory=dict)


def set_condition(
    previous: list[Manifest],
    type_: str,
    status: bool,
    reason: str,
    message: str,
    generation: int,
    now: datetime,
) -> Manifest:
    """A condition in the standard shape; lastTransitionTime moves only when status flips."""
    value = "True" if status else "False"
    before = next((c for c in previous if c.get("type") == type_), None)
    moved = before is None or before.get("status") != value or not before.get("lastTransitionTime")
    return {
        "type": type_,
        "status": value,
        "reason": reason,
        "message": message,
        "observedGeneration": generation,
        "lastTransitionTime": now.strftime("%Y-%m-%dT%H:%M:%SZ") if moved else before["lastTransitionTime"],
    }


def _live(pods: list[Manifest]) -> list[Manifest]:
    return [
        p
        for p in pods
        if not p["metadata"].get("deletionTimestamp")
        and p.get("status", {}).get("phase") not in ("Succeeded", "Failed")
    ]


def _is_ready(pod: Manifest) -> bool:
    return any(
        c.get("type") == "Ready" and c.get("status") == "True"
        for c in pod.get("status", {}).get("conditions", [])
    )


def parse_progress(raw: str) -> Manifest | None:
    """One pod's progress report (docs/contracts.md), or None when it is not valid JSON."""
    try:
        report = json.loads(raw)
    except (TypeError, ValueError):
        return None
    return report if isinstance(report, dict) else None


def load_progress(observed: Observed) -> Manifest:
    """status.loadProgress: reports of live pods that are not ready yet, and a one-line summary."""
    pods = []
    for pod in _live(observed.pods):
        name = pod["metadata"]["name"]
        report = parse_progress(observed.progress.get(name, ""))
        if report is None or _is_ready(pod):
            continue
        entry = {
            "pod": name,
            "stage": str(report.get("stage", "")),
            "message": str(report.get("message", "")),
        }
        if isinstance(report.get("percent"), int | float):
            entry["percent"] = float(report["percent"])
        for key in ("bytesDone", "bytesTotal"):
            if isinstance(report.get(key), int):
                entry[key] = report[key]
        if report.get("updated"):
            entry["updated"] = str(report["updated"])
        pods.append(entry)
    pods.sort(key=lambda e: (_stage_rank(e["stage"]), e.get("percent", 0.0), e["pod"]))
    summary = ""
    if pods:
        slowest = pods[0]
        summary = slowest["stage"] + (f" {slowest['percent']:.0f}%" if "percent" in slowest else "")
        if len(pods) > 1:
            summary += f" ({len(pods)} pods)"
    return {"summary": summary, "pods": pods}


def _stage_rank(stage: str) -> int:
    return _STAGE_ORDER.index(stage) if stage in _STAGE_ORDER else len(_STAGE_ORDER)


def pod_problem(
    pod: Manifest, progress: dict[str, str], volume_event: Manifest | None = None
) -> Problem | None:
    """The most telling problem of one pod: unschedulable, a volume that will not mount or attach, image
    pull, crash loop, or a failed model load."""
    status = pod.get("status", {})
    if volume_event is not None:
        return Problem(
            volume_event["reason"], f"{pod['metadata']['name']}: {volume_event.get('message', '')}"
        )
    for cond in status.get("conditions", []):
        if (
            cond.get("type") == "PodScheduled"
            and cond.get("status") == "False"
            and cond.get("reason") == "Unschedulable"
        ):
            return Problem("Unschedulable", cond.get("message", ""))
    report = parse_progress(progress.get(pod["metadata"]["name"], "")) or {}
    if report.get("stage") == "failed":
        return Problem("ModelLoadFailed", f"{pod['metadata']['name']}: {report.get('message', '')}")
    for container in status.get("containerStatuses", []) + status.get("initContainerStatuses", []):
        waiting = container.get("state", {}).get("waiting") or {}
        reason = _WAITING_PROBLEMS.get(waiting.get("reason", ""))
        if reason:
            message = waiting.get("message") or waiting.get("reason")
            last = (container.get("lastState") or {}).get("terminated") or {}
            if last:
                message += f" (last exit code {last.get('exitCode')}, {last.get('reason', '')})"
            if last.get("reason") == "OOMKilled":
                # A crash loop whose cause is known: say what to change rather than "it keeps crashing".
                reason = "OOMKilled"
                message += "; the container exceeded its memory limit: raise spec.resources.limits.memory"
            return Problem(reason, f"{pod['metadata']['name']}: {message}")
    return None


def deployment_problem(deployment: Manifest | None) -> Problem | None:
    """Problems the Deployment controller reports (pods it cannot create, rollouts past their deadline)."""
    for cond in (deployment or {}).get("status", {}).get("conditions", []):
        if cond.get("type") == "ReplicaFailure" and cond.get("status") == "True":
            return Problem(cond.get("reason") or "ReplicaFailure", cond.get("message", ""))
        if cond.get("type") == "Progressing" and cond.get("reason") == "ProgressDeadlineExceeded":
            return Problem("ProgressDeadlineExceeded", cond.get("message", ""))
    return None


def workload_status(
    observed: Observed,
    previous: list[Manifest],
    generation: int,
    now: datetime,
    blocker: Blocker | None = None,
) -> Manifest:
    """phase, reason, message, replica counts and the Ready/Progressing/Degraded conditions of a workload."""
    dep_status = (observed.deployment or {}).get("status", {})
    ready = dep_status.get("readyReplicas", 0)
    updated = dep_status.get("updatedReplicas", 0)
    current = dep_status.get("replicas", 0)
    desired = observed.desired
    dep_meta = (observed.deployment or {}).get("metadata", {})
    rolled_out = (
        observed.deployment is not None
        and dep_status.get("observedGeneration", 0) >= dep_meta.get("generation", 1)
        and updated >= desired
        and current <= desired
    )
    live = _live(observed.pods)
    problems = [
        p
        for p in (
            pod_problem(pod, observed.progress, observed.volume_events.get(pod["metadata"]["name"]))
            for pod in live
        )
        if p is not None
    ]
    dep_problem = deployment_problem(observed.deployment)
    problem: Problem | None = blocker or (problems[0] if problems else dep_problem)
    is_ready = blocker is None and desired > 0 and ready >= desired
    progress = load_progress(observed)

    if blocker is not None:
        phase, reason, message = blocker.phase, blocker.reason, blocker.message
    elif desired == 0:
        phase, reason, message = "Pending", "ScaledToZero", "spec.replicas is 0"
    elif problem is not None:
        phase = "Pending" if problem.reason == "Unschedulable" and ready == 0 else "Degraded"
        reason, message = problem.reason, problem.message
    elif is_ready:
        phase = "Ready" if rolled_out else "Progressing"
        reason, message = (
            ("Available", f"{ready}/{desired} pods ready")
            if rolled_out
            else ("RollingOut", "rolling out a new pod template")
        )
    elif progress["summary"]:
        phase, reason, message = "Progressing", "Loading", f"model loading: {progress['summary']}"
    else:
        phase, reason = "Progressing", "PodsStarting" if observed.deployment else "Creating"
        message = f"{ready}/{desired} pods ready"

    conditions = [
        set_condition(
            previous,
            "Ready",
            is_ready,
            "Available" if is_ready else reason,
            f"{ready}/{desired} pods ready" if is_ready else message,
            generation,
            now,
        ),
        set_condition(
            previous,
            "Progressing",
            blocker is None and desired > 0 and not (is_ready and rolled_out),
            "Complete" if is_ready and rolled_out else reason,
            "rollout complete" if is_ready and rolled_out else message,
            generation,
            now,
        ),
        set_condition(
            previous,
            "Degraded",
            problem is not None,
            problem.reason if problem else "AsExpected",
            problem.message if problem else "",
            generation,
            now,
        ),
    ]
    return {
        "phase": phase,
        "reason": "" if phase == "Ready" else reason,
        "message": message,
        "ready": f"{ready}/{desired}",
        "replicas": current,
        "readyReplicas": ready,
        "desiredReplicas": desired,
        "observedGeneration": generation,
        "conditions": conditions,
        "loadProgress": progress,
    }


def failure_status(previous: Manifest, blocker: Blocker, generation: int, now: datetime) -> Manifest:
    """The last status with Ready=False and the phase, reason and message of blocker: what a reconcile that
    could not finish (its request refused) still owes the user instead of a stale Ready."""
    conditions = previous.get("conditions") or []
    return {
        **previous,
        "phase": blocker.phase,
        "reason": blocker.reason,
        "message": blocker.message,
        "observedGeneration": generation,
        "conditions": [
            set_condition(conditions, "Ready", False, blocker.reason, blocker.message, generation, now),
            *(c for c in conditions if c.get("type") != "Ready"),
        ],
    }


def without_timestamps(status: Manifest) -> Manifest:
    """A status with lastTransitionTime dropped, to tell whether anything but time changed."""
    return {
        **status,
        "conditions": [
            {k: v for k, v in c.items() if k != "lastTransitionTime"} for c in status.get("conditions", [])
        ],
    }


def transition_event(before: Manifest, after: Manifest) -> tuple[str, str, str] | None:
    """(type, reason, message) of a Kubernetes Event worth posting for a phase/reason change, else None."""
    if (before.get("phase"), before.get("reason")) == (after.get("phase"), after.get("reason")):
        return None
    troubled = after["phase"] in ("Degraded", "Failed") or after.get("reason") == "Unschedulable"
    kind = "Warning" if troubled else "Normal"
    reason = after.get("reason") or after["phase"]
    return kind, reason, f"{after['phase']}: {after.get('message', '')}"
