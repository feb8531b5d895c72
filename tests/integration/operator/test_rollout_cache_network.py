"""What the model's pods get from the apiserver for rollouts, disruptions, caches and the network: a progress
deadline past the startup budget, a grace period past the longest request, a disruption budget the
eviction API enforces, claims that follow spec.cache, and a NetworkPolicy for its frontends only."""

from __future__ import annotations

import json

import pytest
from operator_harness import Kubectl, OperatorProcess, chat_model, wait_until

from tests.support.controlplane import ControlPlane

pytestmark = [pytest.mark.controlplane, pytest.mark.slow]


def test_a_long_startup_budget_and_request_timeout_shape_the_rollout(
    kubectl: Kubectl, operator: OperatorProcess
) -> None:
    kubectl.apply(chat_model("slow", "  startupBudget: 45m\n  serving: {requestTimeoutSeconds: 600}"))
    kubectl.wait_phase("chatmodel", "slow", "Ready")
    deployment = kubectl.get("deployment", "slow")
    # The Deployment controller would call the rollout stuck at minute 10 by default.
    assert deployment["spec"]["progressDeadlineSeconds"] > 45 * 60
    pod = deployment["spec"]["template"]["spec"]
    pre_stop = pod["containers"][0]["lifecycle"]["preStop"]["sleep"]["seconds"]
    drain = int(kubectl.get("configmap", "slow-config")["data"]["KUBECHAT_DRAIN_SECONDS"])
    assert pod["terminationGracePeriodSeconds"] >= pre_stop + drain + 600


def _evict(kubectl: Kubectl, pod: str) -> tuple[int, str]:
    eviction = {
        "apiVersion": "policy/v1",
        "kind": "Eviction",
        "metadata": {"name": pod, "namespace": kubectl.namespace},
    }
    result = kubectl(
        "create",
        "--raw",
        f"/api/v1/namespaces/{kubectl.namespace}/pods/{pod}/eviction",
        "-f",
        "-",
        input=json.dumps(eviction),
        check=False,
    )
    return result.returncode, result.stderr


def test_the_disruption_budget_lets_a_node_drain_take_one_model_pod_at_a_time(
    kubectl: Kubectl, operator: OperatorProcess, control_plane: ControlPlane
) -> None:
    kubectl.apply(chat_model("pair", "  replicas: 2"))
    kubectl.wait_phase("chatmodel", "pair", "Ready")
    wait_until(
        lambda: (kubectl.get("pdb", "pair") or {}).get("status", {}).get("disruptionsAllowed") == 1,
        30,
        "the disruption controller to allow one disruption",
    )
    first, second = (p["metadata"]["name"] for p in kubectl.items("pods", "kubechat.dev/chatmodel=pair"))
    # As on a real node, the evicted pod stays Terminating (its grace period) and its replacement is not
    # ready at once; kwok would otherwise replace it within milliseconds and rightly allow a second eviction.
    control_plane.stop_components("kwok")
    try:
        assert _evict(kubectl, first)[0] == 0
        code, message = _evict(kubectl, second)
        assert code != 0 and "disruption budget" in message, message
    finally:
        control_plane.start_components("kwok")

    kubectl("scale", "chatmodel", "pair", "--replicas=1")
    wait_until(lambda: kubectl.get("pdb", "pair") is None, 30, "the budget pruned at one replica")


def test_cache_claims_follow_the_spec_and_cannot_change_class_or_mode(
    kubectl: Kubectl, operator: OperatorProcess
) -> None:
    shared = "  cache: {size: 1Gi, accessMode: ReadWriteMany, storageClassName: shared}"
    kubectl.apply(chat_model("cached", shared))
    claim = wait_until(lambda: kubectl.get("pvc", "cached-cache"), 30, "the shared cache claim")
    assert claim["spec"]["accessModes"] == ["ReadWriteMany"]

    for change in (
        "  cache: {size: 1Gi, accessMode: ReadWriteOnce, storageClassName: shared}",
        "  cache: {size: 1Gi, accessMode: ReadWriteMany, storageClassName: fast}",
    ):
        refused = kubectl("apply", "-f", "-", input=chat_model("cached", change), check=False)
        assert refused.returncode != 0 and "cannot change" in refused.stderr, refused.stderr

    kubectl.apply(chat_model("cached"))  # cache removed: the claim goes (once no pod uses it)
    wait_until(
        lambda: (c := kubectl.get("pvc", "cached-cache")) is None or c["metadata"].get("deletionTimestamp"),
        30,
        "the claim deleted",
    )
    kubectl.wait_phase("chatmodel", "cached", "Ready", timeout=60)


def test_only_the_models_frontends_are_admitted_by_its_network_policy(
    kubectl: Kubectl, operator: OperatorProcess
) -> None:
    kubectl.apply(chat_model("guarded"))
    kubectl.apply(
        "apiVersion: kubechat.dev/v1alpha1\nkind: ChatFrontend\nmetadata: {name: shop}\n"
        "spec: {models: [{name: guarded}], store: {volume: EmptyDir}}\n"
    )
    kubectl.wait_phase("chatfrontend", "shop", "Ready", timeout=60)
    policy = kubectl.get("networkpolicy", "guarded")
    assert policy["spec"]["policyTypes"] == ["Ingress"]
    selected = ",".join(f"{k}={v}" for k, v in policy["spec"]["podSelector"]["matchLabels"].items())
    assert {p["metadata"]["name"] for p in kubectl.items("pods", selected)} == {
        p["metadata"]["name"] for p in kubectl.items("pods", "kubechat.dev/chatmodel=guarded")
    }
    (rule,) = policy["spec"]["ingress"]
    admitted = rule["from"][0]["podSelector"]["matchLabels"]
    admitted_pods = kubectl.items("pods", ",".join(f"{k}={v}" for k, v in admitted.items()))
    frontend_pods = kubectl.items("pods", "kubechat.dev/chatfrontend=shop")
    assert frontend_pods and {p["metadata"]["name"] for p in admitted_pods} == {
        p["metadata"]["name"] for p in frontend_pods
    }

    kubectl.apply(chat_model("guarded", "  networkPolicy: {enabled: false}"))
    wait_until(lambda: kubectl.get("networkpolicy", "guarded") is None, 30, "the policy removed on opt-out")
