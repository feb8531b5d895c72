"""Status tells the truth: a model whose pods crash-loop, cannot pull their image, are OOM-killed or ask for
more GPUs than any node has is Ready=False with a reason a user can act on, and becomes Ready again once the
ChatModel is fixed.

How the faults are made: kwok pod stages (hack/controlplane/kwok/fault-stages.yaml) give a pod carrying the
annotation `kubechat.dev/simulate-fault` the container statuses a kubelet would report (waiting in
ImagePullBackOff / CrashLoopBackOff, last state OOMKilled exit 137); the GPU fault is real scheduling on kwok
nodes with 2 GPUs each. The fix is what a user would do: change the ChatModel."""

from __future__ import annotations

import pytest
from operator_harness import Kubectl, OperatorProcess, wait_until

pytestmark = [pytest.mark.controlplane, pytest.mark.slow]


def chat_model(name: str, extra: str = "", replicas: int = 1) -> str:
    return f"""apiVersion: kubechat.dev/v1alpha1
kind: ChatModel
metadata: {{name: {name}}}
spec:
  model: {{id: microsoft/GODEL-v1_1-base-seq2seq}}
  replicas: {replicas}
{extra}"""


def ready_condition(kubectl: Kubectl, name: str) -> dict:
    status = kubectl.status("chatmodel", name)
    return {
        **{c["type"]: c for c in status.get("conditions", [])}.get("Ready", {}),
        "phase": status.get("phase"),
    }


def wait_ready_is(kubectl: Kubectl, name: str, value: str, timeout: float = 60) -> dict:
    return wait_until(
        lambda: (c := ready_condition(kubectl, name)).get("status") == value and c,
        timeout,
        f"{name} Ready={value}",
    )


def wait_recovered(kubectl: Kubectl, name: str, timeout: float = 90) -> dict:
    """Ready=True and phase Ready: while the surge pod is up and the broken one not yet gone, Ready is
    already True (the model answers) but the phase still says Progressing or Degraded."""
    return wait_until(
        lambda: (c := ready_condition(kubectl, name)).get("status") == "True" and c["phase"] == "Ready" and c,
        timeout,
        f"{name} Ready=True, phase Ready",
    )


@pytest.mark.parametrize(
    ("fault", "reason", "says"),
    [
        ("image-pull-failure", "ImagePullBackOff", "kubechat/model-server"),  # names the image
        ("crash-loop", "CrashLoopBackOff", "exit code 1"),
        ("oom-killed", "OOMKilled", "limits.memory"),  # says what to raise
    ],
)
def test_pod_fault_is_ready_false_with_an_actionable_reason_and_recovers_when_fixed(
    kubectl: Kubectl, operator: OperatorProcess, fault: str, reason: str, says: str
) -> None:
    kubectl.apply(chat_model("faulty", f"  podAnnotations: {{kubechat.dev/simulate-fault: {fault}}}\n"))
    ready = wait_until(
        lambda: (c := ready_condition(kubectl, "faulty")).get("reason") == reason and c, 60, reason
    )
    assert ready["status"] == "False" and ready["phase"] != "Ready"
    assert says in ready["message"], ready["message"]
    assert "faulty-" in ready["message"]  # names the pod to `kubectl describe`

    kubectl.apply(chat_model("faulty"))  # the fix: no fault on the new pods
    try:
        fixed = wait_recovered(kubectl, "faulty")
    except AssertionError:
        print(kubectl("get", "deployments,replicasets,pods", "-o", "yaml").stdout[-6000:])
        raise
    assert fixed["phase"] == "Ready"
    assert operator.process.poll() is None


def test_gpu_request_nothing_can_satisfy_is_ready_false_and_recovers_when_lowered(
    kubectl: Kubectl, operator: OperatorProcess
) -> None:
    kubectl.apply(chat_model("greedy", "  resources: {gpu: {count: 3}}\n"))
    ready = wait_until(
        lambda: (c := ready_condition(kubectl, "greedy")).get("reason") == "Unschedulable" and c,
        60,
        "Unschedulable",
    )
    assert ready["status"] == "False"
    assert "Insufficient nvidia.com/gpu" in ready["message"], ready["message"]

    kubectl.apply(chat_model("greedy", "  resources: {gpu: {count: 1}}\n"))
    assert wait_recovered(kubectl, "greedy")["phase"] == "Ready"


def test_one_crash_looping_replica_of_two_is_not_reported_ready(
    kubectl: Kubectl, operator: OperatorProcess
) -> None:
    kubectl.apply(chat_model("pair", replicas=2))
    wait_ready_is(kubectl, "pair", "True", 60)
    pods = kubectl.items("pods", "kubechat.dev/chatmodel=pair")
    victim = pods[0]["metadata"]["name"]
    # As if this pod's container started crashing: kwok gives it CrashLoopBackOff statuses.
    kubectl("annotate", "pod", victim, "kubechat.dev/simulate-fault=crash-loop")
    ready = wait_ready_is(kubectl, "pair", "False", 60)
    assert ready["reason"] == "CrashLoopBackOff" and victim in ready["message"], ready
    assert kubectl.status("chatmodel", "pair")["readyReplicas"] == 1

    kubectl("delete", "pod", victim, "--wait=false")  # what a user (or a fixed image) does
    assert wait_ready_is(kubectl, "pair", "True", 90)["phase"] == "Ready"
