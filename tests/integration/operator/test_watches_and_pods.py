"""Light on big clusters and honest about pods: the apiserver filters the child watches, load progress
updates status without a full reconcile, and a pod stuck on a volume shows the volume's Event in status
(on the real node: tests/cluster/test_cluster_mount_failure.py)."""

from __future__ import annotations

import json

import pytest
from operator_harness import Kubectl, OperatorProcess, wait_until

pytestmark = [pytest.mark.controlplane, pytest.mark.slow]

MODEL = """
apiVersion: kubechat.dev/v1alpha1
kind: ChatModel
metadata: {name: %(name)s}
spec:
  model: {id: microsoft/GODEL-v1_1-base-seq2seq}
"""
CONFIG_MAP_EVENTS = 'kubechat_operator_child_events_total{kind="ConfigMap"}'


def test_unrelated_config_maps_never_reach_the_operator(kubectl: Kubectl, operator: OperatorProcess) -> None:
    kubectl.apply(MODEL % {"name": "godel"})
    kubectl.wait_phase("chatmodel", "godel", "Ready")
    before = operator.metric(CONFIG_MAP_EVENTS)
    unrelated = {
        "apiVersion": "v1",
        "kind": "List",
        "items": [
            {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": f"user-{i}"}, "data": {"k": "v"}}
            for i in range(200)
        ],
    }
    kubectl.apply(json.dumps(unrelated))
    # A labelled ConfigMap made after them: once its event arrived, theirs would have too (one ordered watch).
    kubectl.apply(
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: marker\n"
        "  labels: {app.kubernetes.io/managed-by: kubechat-operator}\n"
    )
    wait_until(lambda: operator.metric(CONFIG_MAP_EVENTS) > before, 30, "the marker's event")
    assert operator.metric(CONFIG_MAP_EVENTS) == before + 1


def _pending_pod(kubectl: Kubectl, model: str) -> dict:
    return wait_until(
        lambda: next(
            (
                p
                for p in kubectl.items("pods", f"kubechat.dev/chatmodel={model}")
                if p["spec"].get("nodeName")
            ),
            None,
        ),
        30,
        "a scheduled pod",
    )


def test_progress_reports_update_status_without_a_full_reconcile(
    kubectl: Kubectl, operator: OperatorProcess, kwok_paused: None
) -> None:
    kubectl.apply(MODEL % {"name": "loading"})
    pod = _pending_pod(kubectl, "loading")["metadata"]["name"]

    def report(percent: float) -> None:
        data = {pod: json.dumps({"stage": "downloading", "percent": percent, "message": "weights"})}
        kubectl("patch", "configmap", "loading-progress", "--type=merge", "-p", json.dumps({"data": data}))

    report(5)
    wait_until(lambda: kubectl.status("chatmodel", "loading").get("reason") == "Loading", 30, "Loading")
    refreshes = operator.metric("kubechat_operator_progress_refreshes_total")
    for percent in (20, 40, 60):
        report(percent)
        wait_until(
            lambda p=percent: (
                kubectl.status("chatmodel", "loading")["loadProgress"]["pods"][0]["percent"] == p
            ),
            30,
            f"{percent}% in status",
        )
    status = kubectl.status("chatmodel", "loading")
    assert status["message"] == "model loading: downloading 60%"
    assert operator.metric("kubechat_operator_progress_refreshes_total") >= refreshes + 3


def _volume_event(kubectl: Kubectl, pod: dict, name: str, reason: str, message: str, at: str) -> None:
    """A volume Warning about `pod` as the kubelet or the attach/detach controller writes it."""
    kubectl.apply(
        json.dumps(
            {
                "apiVersion": "v1",
                "kind": "Event",
                "metadata": {"name": f"{pod['metadata']['name']}.{name}"},
                "involvedObject": {
                    "apiVersion": "v1",
                    "kind": "Pod",
                    "name": pod["metadata"]["name"],
                    "namespace": kubectl.namespace,
                    "uid": pod["metadata"]["uid"],
                },
                "type": "Warning",
                "reason": reason,
                "message": message,
                "firstTimestamp": at,
                "lastTimestamp": at,
                "count": 1,
            }
        )
    )


def test_a_pod_stuck_on_a_volume_reports_the_kubelets_event_in_status(
    kubectl: Kubectl, operator: OperatorProcess, kwok_paused: None
) -> None:
    kubectl.apply(MODEL % {"name": "stuck"})
    pod = _pending_pod(kubectl, "stuck")
    kubectl.wait_phase("chatmodel", "stuck", "Progressing")
    multi_attach = (
        'Multi-Attach error for volume "pvc-7" Volume is already used by pod(s) stuck-0 and is attached to '
        "another node"
    )
    _volume_event(kubectl, pod, "attach", "FailedAttachVolume", multi_attach, "2026-11-30T20:00:00Z")
    status = wait_until(
        lambda: (s := kubectl.status("chatmodel", "stuck")).get("reason") == "FailedAttachVolume" and s,
        90,
        "FailedAttachVolume in status",
    )
    assert status["phase"] == "Degraded"
    assert "Multi-Attach error" in status["message"]

    # Later Events change no pod and no Deployment (no kubelet here; on a real node the kubelet only adds
    # Events while it retries): the operator looks at a pod still creating again by itself (5 s doubling
    # to 60 s). The kubelet's summary after two minutes does not hide the cause; a newer cause replaces it.
    summary = (
        "Unable to attach or mount volumes: unmounted volumes=[cache]: timed out waiting for the condition"
    )
    _volume_event(kubectl, pod, "summary", "FailedMount", summary, "2026-11-30T20:02:00Z")
    setup = 'MountVolume.SetUp failed for volume "pvc-7" : mount failed: exit status 32'
    _volume_event(kubectl, pod, "setup", "FailedMount", setup, "2026-11-30T20:01:00Z")
    status = wait_until(
        lambda: (s := kubectl.status("chatmodel", "stuck")).get("reason") == "FailedMount" and s,
        150,
        "the newer FailedMount in status",
    )
    assert status["message"] == f"{pod['metadata']['name']}: {setup}"
