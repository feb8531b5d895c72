"""What goes wrong is told truthfully: bad input rejected at apply or reported in status, scheduling and
image problems with the cluster's own words, and the model server's load progress."""

from __future__ import annotations

import json

import pytest
from operator_harness import Kubectl, OperatorProcess, chat_model, wait_until

pytestmark = [pytest.mark.controlplane, pytest.mark.slow]


@pytest.mark.parametrize(
    ("spec", "field", "message"),
    [
        ("  autoscaling: {minReplicas: 5, maxReplicas: 2}", "spec.autoscaling.minReplicas", "must be <="),
        ("  resources: {gpu: {count: -1}}", "spec.resources.gpu.count", "greater than or equal to 0"),
        ("  replicas: -2", "spec.replicas", "greater than or equal to 0"),
        ("  startupBudget: soon", "spec.startupBudget", "should match"),
        (
            "  prompt: {knowledge: a, knowledgeFrom: {configMapKeyRef: {name: kb, key: k}}}",
            "spec.prompt",
            "not both",
        ),
    ],
)
def test_schema_and_cel_reject_bad_chatmodels_naming_the_field(
    kubectl: Kubectl, spec: str, field: str, message: str
) -> None:
    result = kubectl("apply", "-f", "-", input=chat_model("bad", spec), check=False)
    assert result.returncode != 0
    assert field in result.stderr and message in result.stderr, result.stderr


def test_unknown_architecture_is_rejected_at_apply(kubectl: Kubectl) -> None:
    bad = chat_model("bad", "").replace(
        "{id: microsoft/GODEL-v1_1-base-seq2seq}", "{id: x, architecture: bert}"
    )
    result = kubectl("apply", "-f", "-", input=bad, check=False)
    assert "spec.model.architecture" in result.stderr and "Unsupported value" in result.stderr, result.stderr


def test_node_port_without_node_port_type_is_rejected(kubectl: Kubectl) -> None:
    frontend = """
apiVersion: kubechat.dev/v1alpha1
kind: ChatFrontend
metadata: {name: bad}
spec:
  models: [{name: godel}]
  service: {type: ClusterIP, nodePort: 30080}
"""
    result = kubectl("apply", "-f", "-", input=frontend, check=False)
    assert (
        "spec.service.nodePort" in result.stderr
        and "only allowed with service.type NodePort" in result.stderr
    )


def test_a_token_secret_is_referenced_but_never_read_by_the_operator(
    kubectl: Kubectl, operator: OperatorProcess
) -> None:
    """The operator holds no Secret permission: the Deployment points at the Secret and the kubelet reports a
    missing one (CreateContainerConfigError, read into status by the pod-problem path)."""
    kubectl.apply(
        chat_model("gated", "  model: {id: meta-llama/Llama-2-7b-chat-hf, tokenSecretRef: {name: hf}}")
    )
    kubectl.wait_phase("chatmodel", "gated", "Ready")
    container = kubectl.get("deployment", "gated")["spec"]["template"]["spec"]["containers"][0]
    env = {e["name"]: e for e in container["env"]}
    assert env["HF_TOKEN"]["valueFrom"]["secretKeyRef"] == {"name": "hf", "key": "token"}
    assert "secrets" not in operator.log()


def test_missing_knowledge_config_map_is_reported(kubectl: Kubectl, operator: OperatorProcess) -> None:
    kubectl.apply(chat_model("kb", "  prompt: {knowledgeFrom: {configMapKeyRef: {name: facts, key: text}}}"))
    status = kubectl.wait_phase("chatmodel", "kb", "Failed")
    assert status["reason"] == "ConfigMapNotFound"


def test_unschedulable_gpu_request_is_reported_with_the_schedulers_message(
    kubectl: Kubectl, operator: OperatorProcess
) -> None:
    kubectl.apply(chat_model("huge", "  resources: {gpu: {count: 3}}"))
    status = wait_until(
        lambda: (s := kubectl.status("chatmodel", "huge")).get("reason") == "Unschedulable" and s,
        60,
        "Unschedulable",
    )
    assert status["phase"] == "Pending"
    assert "Insufficient nvidia.com/gpu" in status["message"]
    assert status["message"].startswith("0/3 nodes are available")
    row = kubectl("get", "chatmodel", "huge").stdout.splitlines()[1].split()
    assert row[1:5] == ["microsoft/GODEL-v1_1-base-seq2seq", "0/1", "3", "Pending"]
    assert "Unschedulable" in row
    events = kubectl.items("events", None)
    assert any(
        e["involvedObject"]["name"] == "huge" and e["reason"] == "Unschedulable" and e["type"] == "Warning"
        for e in events
    )


@pytest.mark.parametrize(
    ("fault", "reason"), [("image-pull-failure", "ImagePullBackOff"), ("crash-loop", "CrashLoopBackOff")]
)
def test_pod_faults_surface_as_degraded(
    kubectl: Kubectl, operator: OperatorProcess, fault: str, reason: str
) -> None:
    kubectl.apply(chat_model("faulty", f"  podAnnotations: {{kubechat.dev/simulate-fault: {fault}}}"))
    status = wait_until(
        lambda: (s := kubectl.status("chatmodel", "faulty")).get("reason") == reason and s, 60, reason
    )
    assert status["phase"] == "Degraded"
    assert {c["type"]: c for c in status["conditions"]}["Degraded"]["status"] == "True"


def _report(stage: str, **extra: object) -> str:
    return json.dumps({"stage": stage, "updated": "2026-11-21T22:30:05Z", **extra})


def test_load_progress_reported_by_the_pods_service_account_reaches_status(
    kubectl: Kubectl, operator: OperatorProcess
) -> None:
    # The pod stays unready (crash-loop fault) so that its progress is still of interest.
    kubectl.apply(chat_model("loading", "  podAnnotations: {kubechat.dev/simulate-fault: crash-loop}"))
    (pod,) = wait_until(lambda: kubectl.items("pods", "kubechat.dev/chatmodel=loading"), 30, "the pod")
    pod_name = pod["metadata"]["name"]
    as_pod = f"--as=system:serviceaccount:{kubectl.namespace}:loading-model-server"
    report = _report("downloading", percent=41.5, bytesDone=415, bytesTotal=1000, message="model.safetensors")
    patch = json.dumps({"data": {pod_name: report}})
    wait_until(
        lambda: (
            kubectl("auth", "can-i", "patch", "configmap/loading-progress", as_pod, check=False).returncode
            == 0
        ),
        30,
        "RBAC",
    )
    kubectl("patch", "configmap", "loading-progress", as_pod, "--type=merge", "-p", patch)
    assert kubectl("auth", "can-i", "patch", "configmap/loading-config", as_pod, check=False).returncode != 0
    assert kubectl("auth", "can-i", "get", "secrets", as_pod, check=False).returncode != 0

    progress = wait_until(
        lambda: kubectl.status("chatmodel", "loading").get("loadProgress", {}).get("pods"), 30, "loadProgress"
    )
    assert progress == [
        {
            "pod": pod_name,
            "stage": "downloading",
            "percent": 41.5,
            "bytesDone": 415,
            "bytesTotal": 1000,
            "message": "model.safetensors",
            "updated": "2026-11-21T22:30:05Z",
        }
    ]
    assert "downloading 42%" in kubectl("get", "chatmodel", "loading").stdout

    failed = json.dumps({"data": {pod_name: _report("failed", message="unknown model family 'bert'")}})
    kubectl("patch", "configmap", "loading-progress", as_pod, "--type=merge", "-p", failed)
    status = wait_until(
        lambda: (s := kubectl.status("chatmodel", "loading")).get("reason") == "ModelLoadFailed" and s,
        30,
        "failure",
    )
    assert "unknown model family 'bert'" in status["message"]
