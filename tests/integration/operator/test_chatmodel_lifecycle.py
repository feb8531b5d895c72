"""A ChatModel on the real control plane: children, status, scaling, rollouts, drift repair, deletion."""

from __future__ import annotations

import pytest
from operator_harness import EXAMPLES, Kubectl, OperatorProcess, wait_until

pytestmark = [pytest.mark.controlplane, pytest.mark.slow]

CPU_MODEL = """
apiVersion: kubechat.dev/v1alpha1
kind: ChatModel
metadata: {name: tiny}
spec:
  model: {id: microsoft/GODEL-v1_1-base-seq2seq}
  prompt: {instruction: be kind}
  replicas: 1
"""
# PersistentVolumes for the Llama example's per-pod 30Gi cache claims (the control plane has no provisioner).
CACHE_VOLUME = """
apiVersion: v1
kind: PersistentVolume
metadata: {name: %(name)s}
spec:
  capacity: {storage: 30Gi}
  accessModes: [ReadWriteOnce]
  hostPath: {path: /tmp/%(name)s}
"""
CACHE_VOLUMES = 3  # the example's pod, a scaled-out second one, one spare


def _pod_names(kubectl: Kubectl, model: str) -> set[str]:
    pods = kubectl.items("pods", f"kubechat.dev/chatmodel={model}")
    return {p["metadata"]["name"] for p in pods if not p["metadata"].get("deletionTimestamp")}


@pytest.fixture
def llama(kubectl: Kubectl, operator: OperatorProcess) -> dict:
    """The Llama-2 example applied as it is, with its token Secret and volumes for its pods' cache claims."""
    kubectl("create", "secret", "generic", "hf-token", "--from-literal=token=hf_test")
    volumes = [f"cache-{kubectl.namespace}-{i}" for i in range(CACHE_VOLUMES)]
    for volume in volumes:
        kubectl.plane.kubectl("apply", "-f", "-", input=CACHE_VOLUME % {"name": volume})
    kubectl.apply(EXAMPLES / "llama-2-7b-chat.yaml")
    yield kubectl.wait_phase("chatmodel", "llama-2-7b-chat", "Ready", timeout=90)
    kubectl.plane.kubectl("delete", "pv", *volumes, "--wait=false", check=False)


def test_example_llama_gets_children_with_gpu_probes_env_owner_refs_and_labels(
    kubectl: Kubectl, llama: dict
) -> None:
    model = kubectl.get("chatmodel", "llama-2-7b-chat")
    uid = model["metadata"]["uid"]
    deployment = kubectl.get("deployment", "llama-2-7b-chat")
    pod_spec = deployment["spec"]["template"]["spec"]
    container = pod_spec["containers"][0]
    assert container["resources"]["limits"]["nvidia.com/gpu"] == "1"
    assert container["resources"]["requests"]["nvidia.com/gpu"] == "1"
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert container["livenessProbe"]["httpGet"]["path"] == "/health"
    assert (
        container["startupProbe"]["failureThreshold"] * container["startupProbe"]["periodSeconds"] == 45 * 60
    )
    env = {e["name"]: e for e in container["env"]}
    assert env["HF_TOKEN"]["valueFrom"]["secretKeyRef"] == {"name": "hf-token", "key": "token"}
    assert env["NODE_NAME"]["valueFrom"]["fieldRef"]["fieldPath"] == "spec.nodeName"
    config = kubectl.get("configmap", "llama-2-7b-chat-config")["data"]
    assert config["KUBECHAT_MODEL_ID"] == "meta-llama/Llama-2-7b-chat-hf"
    assert config["KUBECHAT_PROMPT_FORMAT"] == "llama-2"
    for resource, name in [
        ("deployment", "llama-2-7b-chat"),
        ("service", "llama-2-7b-chat"),
        ("configmap", "llama-2-7b-chat-config"),
        ("configmap", "llama-2-7b-chat-progress"),
        ("serviceaccount", "llama-2-7b-chat-model-server"),
        ("role", "llama-2-7b-chat-model-server"),
        ("rolebinding", "llama-2-7b-chat-model-server"),
    ]:
        meta = kubectl.get(resource, name)["metadata"]
        assert [(r["kind"], r["uid"], r["controller"]) for r in meta["ownerReferences"]] == [
            ("ChatModel", uid, True)
        ]
        assert meta["labels"]["kubechat.dev/chatmodel"] == "llama-2-7b-chat"
        assert meta["labels"]["app.kubernetes.io/managed-by"] == "kubechat-operator"
    (pod,) = kubectl.items("pods", "kubechat.dev/chatmodel=llama-2-7b-chat")
    assert pod["spec"]["nodeName"].startswith("kwok-gpu-")
    # A ReadWriteOnce cache is a claim per pod (the pod's own, deleted with it), never one shared claim.
    assert kubectl.get("pvc", "llama-2-7b-chat-cache") is None
    claim = kubectl.get("pvc", f"{pod['metadata']['name']}-cache")
    assert claim["spec"]["resources"]["requests"]["storage"] == "30Gi"
    assert [r["kind"] for r in claim["metadata"]["ownerReferences"]] == ["Pod"]


def test_status_is_ready_with_conditions_and_printer_columns(kubectl: Kubectl, llama: dict) -> None:
    assert llama["ready"] == "1/1"
    assert llama["endpoint"] == f"http://llama-2-7b-chat.{kubectl.namespace}.svc:8080"
    conditions = {c["type"]: c for c in llama["conditions"]}
    assert conditions["Ready"]["status"] == "True"
    assert conditions["Degraded"]["status"] == "False"
    generation = kubectl.get("chatmodel", "llama-2-7b-chat")["metadata"]["generation"]
    assert llama["observedGeneration"] == generation == conditions["Ready"]["observedGeneration"]
    table = kubectl("get", "chatmodels", "-o", "wide").stdout.splitlines()
    assert table[0].split() == [
        "NAME",
        "MODEL",
        "READY",
        "GPUS",
        "PHASE",
        "PROGRESS",
        "DESIRED",
        "CURRENT",
        "LASTSCALE",
        "REASON",
        "ENDPOINT",
        "AGE",
    ]
    assert table[1].split()[:5] == ["llama-2-7b-chat", "meta-llama/Llama-2-7b-chat-hf", "1/1", "1", "Ready"]
    assert "llama-2-7b-chat" in kubectl("get", "kubechat").stdout
    assert "llama-2-7b-chat" in kubectl("get", "cmodel").stdout


def test_kubectl_scale_adds_pods_without_restarting_existing_ones(kubectl: Kubectl, llama: dict) -> None:
    before = _pod_names(kubectl, "llama-2-7b-chat")
    kubectl("scale", "chatmodel", "llama-2-7b-chat", "--replicas=2")
    status = wait_until(
        lambda: (s := kubectl.status("chatmodel", "llama-2-7b-chat")).get("ready") == "2/2" and s,
        60,
        "2/2 ready",
    )
    assert status["phase"] == "Ready"
    assert kubectl.get("deployment", "llama-2-7b-chat")["spec"]["replicas"] == 2
    assert before < _pod_names(kubectl, "llama-2-7b-chat")
    scale = kubectl.get("chatmodel", "llama-2-7b-chat", "--subresource=scale")
    assert scale["status"]["replicas"] == 2
    assert (
        scale["status"]["selector"]
        == "app.kubernetes.io/component=model-server,kubechat.dev/chatmodel=llama-2-7b-chat"
    )


def test_config_change_rolls_pods_but_replica_change_does_not(
    kubectl: Kubectl, operator: OperatorProcess
) -> None:
    kubectl.apply(CPU_MODEL)
    kubectl.wait_phase("chatmodel", "tiny", "Ready")
    first = _pod_names(kubectl, "tiny")
    kubectl("patch", "chatmodel", "tiny", "--type=merge", "-p", '{"spec": {"replicas": 2}}')
    wait_until(lambda: kubectl.status("chatmodel", "tiny").get("ready") == "2/2", 60, "2/2 ready")
    assert first < _pod_names(kubectl, "tiny")
    scaled = _pod_names(kubectl, "tiny")
    checksum = kubectl.get("deployment", "tiny")["spec"]["template"]["metadata"]["annotations"][
        "kubechat.dev/config-checksum"
    ]

    kubectl(
        "patch", "chatmodel", "tiny", "--type=merge", "-p", '{"spec": {"generation": {"temperature": 0.2}}}'
    )
    wait_until(
        lambda: kubectl.get("configmap", "tiny-config")["data"].get("KUBECHAT_TEMPERATURE") == "0.2",
        30,
        "new config",
    )
    template = kubectl.get("deployment", "tiny")["spec"]["template"]
    assert template["metadata"]["annotations"]["kubechat.dev/config-checksum"] != checksum
    wait_until(
        lambda: (names := _pod_names(kubectl, "tiny")) and len(names) == 2 and not names & scaled,
        90,
        "every pod replaced",
    )
    kubectl.wait_phase("chatmodel", "tiny", "Ready", timeout=60)


@pytest.mark.parametrize(
    ("action", "resource", "name"),
    [
        ("delete", "service", "tiny"),
        ("delete", "deployment", "tiny"),
        ("delete", "role", "tiny-model-server"),
        ("edit-config", "configmap", "tiny-config"),
        ("edit-image", "deployment", "tiny"),
    ],
)
def test_drift_is_repaired_within_seconds(
    kubectl: Kubectl, operator: OperatorProcess, action: str, resource: str, name: str
) -> None:
    kubectl.apply(CPU_MODEL)
    kubectl.wait_phase("chatmodel", "tiny", "Ready")
    original = kubectl.get(resource, name)
    if action == "delete":
        kubectl("delete", resource, name, "--wait=true")
    elif action == "edit-config":
        kubectl(
            "patch", resource, name, "--type=merge", "-p", '{"data": {"KUBECHAT_INSTRUCTION": "be rude"}}'
        )
    else:
        kubectl("set", "image", f"deployment/{name}", "model-server=evil/image:latest")

    def repaired() -> bool:
        current = kubectl.get(resource, name)
        if current is None:
            return False
        if action == "delete":
            return current["metadata"]["uid"] != original["metadata"]["uid"]
        if action == "edit-config":
            return current["data"]["KUBECHAT_INSTRUCTION"] == "be kind"
        return current["spec"]["template"]["spec"]["containers"][0]["image"] == "kubechat/model-server:0.1.0"

    wait_until(repaired, 10, f"{resource}/{name} repaired after {action}")


def test_deleting_the_chatmodel_removes_every_child(kubectl: Kubectl, operator: OperatorProcess) -> None:
    kubectl.apply(CPU_MODEL)
    kubectl.wait_phase("chatmodel", "tiny", "Ready")
    kubectl("delete", "chatmodel", "tiny", "--wait=true", "--timeout=30s")
    kinds = "deployments,services,configmaps,serviceaccounts,roles,rolebindings,pods,replicasets"
    wait_until(
        lambda: not kubectl.items(kinds, "kubechat.dev/chatmodel=tiny"), 60, "every child garbage-collected"
    )


def test_cpu_autoscaling_creates_an_hpa_on_the_chatmodel_and_removing_it_deletes_the_hpa(
    kubectl: Kubectl, operator: OperatorProcess
) -> None:
    autoscaling = "autoscaling: {metric: cpu, minReplicas: 1, maxReplicas: 3}"
    resources = "resources: {requests: {cpu: 500m}}"
    kubectl.apply(CPU_MODEL.replace("replicas: 1", f"replicas: 1\n  {autoscaling}\n  {resources}"))
    hpa = wait_until(lambda: kubectl.get("hpa", "tiny"), 30, "the HPA")
    assert hpa["spec"]["scaleTargetRef"] == {
        "apiVersion": "kubechat.dev/v1alpha1",
        "kind": "ChatModel",
        "name": "tiny",
    }
    assert (hpa["spec"]["minReplicas"], hpa["spec"]["maxReplicas"]) == (1, 3)
    # The ChatModel's default windows, stored beside the policies the apiserver fills in.
    assert hpa["spec"]["behavior"]["scaleDown"]["stabilizationWindowSeconds"] == 300
    assert hpa["spec"]["behavior"]["scaleUp"]["policies"]
    kubectl(
        "patch", "chatmodel", "tiny", "--type=json", "-p", '[{"op": "remove", "path": "/spec/autoscaling"}]'
    )
    wait_until(lambda: kubectl.get("hpa", "tiny") is None, 30, "the HPA pruned")
    assert kubectl.get("deployment", "tiny") is not None
