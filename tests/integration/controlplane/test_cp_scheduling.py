"""The real scheduler places pods on kwok's simulated GPU nodes, and kwok drives their status."""

from __future__ import annotations

import json
import time

import pytest

pytestmark = pytest.mark.controlplane


def gpu_deployment(name: str, gpus: int, annotations: dict[str, str] | None = None) -> str:
    """A one-replica Deployment whose container asks for `gpus` nvidia.com/gpu, as JSON for kubectl."""
    labels = {"app": name}
    container = {
        "name": "server",
        "image": "registry.invalid/kubechat/model-server:test",
        "resources": {"limits": {"nvidia.com/gpu": str(gpus)}, "requests": {"cpu": "1", "memory": "1Gi"}},
    }
    return json.dumps(
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": name},
            "spec": {
                "replicas": 1,
                "selector": {"matchLabels": labels},
                "template": {
                    "metadata": {"labels": labels, "annotations": annotations or {}},
                    "spec": {"containers": [container]},
                },
            },
        }
    )


def only_pod(control_plane, namespace: str, app: str) -> dict:
    pods = json.loads(
        control_plane.kubectl("get", "pods", "-n", namespace, "-l", f"app={app}", "-o", "json").stdout
    )
    assert len(pods["items"]) == 1, pods["items"]
    return pods["items"][0]


def test_gpu_deployment_becomes_available_on_a_kwok_gpu_node(control_plane, namespace):
    control_plane.kubectl("apply", "-n", namespace, "-f", "-", input=gpu_deployment("one-gpu", 1))

    control_plane.kubectl(
        "wait", "-n", namespace, "--for=condition=Available", "deployment/one-gpu", "--timeout=60s"
    )
    pod = only_pod(control_plane, namespace, "one-gpu")
    assert pod["spec"]["nodeName"] in {"kwok-gpu-0", "kwok-gpu-1"}
    assert pod["status"]["phase"] == "Running"
    assert pod["status"]["podIP"]


def test_deployment_asking_for_more_gpus_than_any_node_has_stays_unschedulable(control_plane, namespace):
    control_plane.kubectl("apply", "-n", namespace, "-f", "-", input=gpu_deployment("eight-gpus", 8))

    control_plane.kubectl(
        "wait", "-n", namespace, "--for=condition=PodScheduled=False", "pod", "-l", "app=eight-gpus",
        "--timeout=60s",
    )  # fmt: skip
    pod = only_pod(control_plane, namespace, "eight-gpus")
    scheduled = next(c for c in pod["status"]["conditions"] if c["type"] == "PodScheduled")
    assert pod["status"]["phase"] == "Pending"
    assert scheduled["reason"] == "Unschedulable"
    assert "0/3 nodes are available" in scheduled["message"]
    assert "3 Insufficient nvidia.com/gpu" in scheduled["message"]


@pytest.mark.parametrize(
    ("fault", "phase", "waiting_reason", "last_termination"),
    [
        ("image-pull-failure", "Pending", "ImagePullBackOff", None),
        ("crash-loop", "Running", "CrashLoopBackOff", "Error"),
        ("oom-killed", "Running", "CrashLoopBackOff", "OOMKilled"),
    ],
)
def test_fault_annotation_makes_kwok_report_a_failing_container(
    control_plane, namespace, fault, phase, waiting_reason, last_termination
):
    annotations = {"kubechat.dev/simulate-fault": fault}
    control_plane.kubectl("apply", "-n", namespace, "-f", "-", input=gpu_deployment("faulty", 1, annotations))

    control_plane.kubectl(
        "wait", "-n", namespace, "pod", "-l", "app=faulty", "--timeout=60s",
        f"--for=jsonpath={{.status.containerStatuses[0].state.waiting.reason}}={waiting_reason}",
    )  # fmt: skip
    pod = only_pod(control_plane, namespace, "faulty")
    status = pod["status"]["containerStatuses"][0]
    assert pod["status"]["phase"] == phase
    assert status["ready"] is False
    assert status.get("lastState", {}).get("terminated", {}).get("reason") == last_termination
    deployment = json.loads(
        control_plane.kubectl("get", "-n", namespace, "deployment/faulty", "-o", "json").stdout
    )
    assert deployment["status"].get("availableReplicas", 0) == 0
    # The status settles: kwok does not keep rewriting it (which would load the apiserver for good).
    time.sleep(2)
    settled = only_pod(control_plane, namespace, "faulty")
    assert settled["metadata"]["resourceVersion"] == pod["metadata"]["resourceVersion"]
