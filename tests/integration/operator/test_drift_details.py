"""Drift as the apiserver stores things: canonical quantities are not drift, fields others add to the pod
template are; repeated Events are folded into one; a CPU model shows 0 GPUs."""

from __future__ import annotations

import pytest
from operator_harness import Kubectl, OperatorProcess, chat_model, wait_until

pytestmark = [pytest.mark.controlplane, pytest.mark.slow]

APPLIES = 'kubechat_operator_applies_total{kind="%s"}'


def test_quantities_the_apiserver_rewrites_are_not_reapplied(
    kubectl: Kubectl, operator: OperatorProcess
) -> None:
    kubectl.apply(chat_model("half", "  resources: {requests: {cpu: '0.5', memory: 1024Mi}}"))
    kubectl.wait_phase("chatmodel", "half", "Ready")
    stored = kubectl.get("deployment", "half")["spec"]["template"]["spec"]["containers"][0]["resources"]
    assert stored["requests"] == {"cpu": "500m", "memory": "1Gi"}
    deployments = operator.metric(APPLIES % "Deployment")
    config_maps = operator.metric(APPLIES % "ConfigMap")
    # A change to the Deployment that is not drift, then one that is: once the second is repaired, the first
    # has been checked too (one resource's events are handled in order).
    kubectl("annotate", "deployment", "half", "team=search")
    kubectl("delete", "configmap", "half-config")
    wait_until(lambda: kubectl.get("configmap", "half-config"), 30, "the deleted ConfigMap re-applied")
    assert operator.metric(APPLIES % "ConfigMap") == config_maps + 1
    assert operator.metric(APPLIES % "Deployment") == deployments


def test_a_field_someone_else_adds_to_the_pod_template_is_removed(
    kubectl: Kubectl, operator: OperatorProcess
) -> None:
    kubectl.apply(chat_model("plain"))
    kubectl.wait_phase("chatmodel", "plain", "Ready")
    kubectl(
        "patch",
        "deployment",
        "plain",
        "--type=merge",
        "-p",
        '{"spec": {"template": {"spec": {"hostNetwork": true}}}}',
    )
    wait_until(
        lambda: "hostNetwork" not in kubectl.get("deployment", "plain")["spec"]["template"]["spec"],
        30,
        "hostNetwork removed",
    )
    kubectl.wait_phase("chatmodel", "plain", "Ready")


def test_a_cpu_model_shows_0_in_the_gpus_column(kubectl: Kubectl, operator: OperatorProcess) -> None:
    kubectl.apply(chat_model("cpu"))
    kubectl.wait_phase("chatmodel", "cpu", "Ready")
    header, row = kubectl("get", "chatmodel", "cpu").stdout.splitlines()
    assert dict(zip(header.split(), row.split(), strict=False))["GPUS"] == "0"


def test_a_repeated_event_is_counted_not_posted_again(kubectl: Kubectl, operator: OperatorProcess) -> None:
    knowledge = "  prompt: {instruction: %s, knowledgeFrom: {configMapKeyRef: {name: facts, key: text}}}"
    kubectl.apply(chat_model("kb", knowledge % "one"))
    kubectl.wait_phase("chatmodel", "kb", "Failed")
    kubectl("create", "configmap", "facts", "--from-literal=text=sky is blue")
    kubectl.apply(chat_model("kb", knowledge % "two"))
    kubectl.wait_phase("chatmodel", "kb", "Ready")
    kubectl("delete", "configmap", "facts")
    kubectl.apply(chat_model("kb", knowledge % "three"))
    kubectl.wait_phase("chatmodel", "kb", "Failed")

    def missing_events() -> list[dict]:
        return [
            e
            for e in kubectl.items("events")
            if e["involvedObject"]["name"] == "kb" and e["reason"] == "ConfigMapNotFound"
        ]

    (event,) = wait_until(lambda: (e := missing_events()) and e[0].get("count") == 2 and e, 30, "count 2")
    assert event["type"] == "Warning"
