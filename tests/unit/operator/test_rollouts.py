"""Rollouts and disruptions drop no chat: grace period, drain, preStop, progress deadline and budget."""

from __future__ import annotations

from kubechat_operator.builders import build_model_children
from kubechat_operator.builders.chatmodel import build_deployment, server_env
from kubechat_operator.config import OperatorConfig
from kubechat_operator.spec import ChatModelSpec, Resource

GODEL = {"model": {"id": "microsoft/GODEL-v1_1-base-seq2seq"}}


def test_grace_period_outlasts_the_prestop_pause_the_drain_and_the_longest_request(
    config: OperatorConfig, model_owner: Resource
) -> None:
    spec = ChatModelSpec.model_validate({**GODEL, "serving": {"requestTimeoutSeconds": 900}})
    pod = build_deployment(model_owner, spec, config)["spec"]["template"]["spec"]
    container = pod["containers"][0]
    pre_stop = container["lifecycle"]["preStop"]["sleep"]["seconds"]
    drain = int(server_env(model_owner, spec)["KUBECHAT_DRAIN_SECONDS"])
    assert pre_stop > 0 and drain > 0
    assert pod["terminationGracePeriodSeconds"] > pre_stop + drain + 900


def test_progress_deadline_outlasts_the_startup_budget(config: OperatorConfig, model_owner: Resource) -> None:
    spec = ChatModelSpec.model_validate({**GODEL, "startupBudget": "45m"})
    deployment = build_deployment(model_owner, spec, config)
    assert deployment["spec"]["progressDeadlineSeconds"] > 45 * 60


def _budget(model_owner: Resource, config: OperatorConfig, extra: dict) -> dict | None:
    children = build_model_children(model_owner, ChatModelSpec.model_validate({**GODEL, **extra}), config)
    return next((c for c in children if c["kind"] == "PodDisruptionBudget"), None)


def test_several_replicas_get_a_budget_of_one_eviction_at_a_time(
    config: OperatorConfig, model_owner: Resource
) -> None:
    budget = _budget(model_owner, config, {"replicas": 3})
    assert budget is not None
    assert budget["spec"]["maxUnavailable"] == 1
    assert budget["spec"]["selector"]["matchLabels"]["kubechat.dev/chatmodel"] == "godel"
    assert budget["spec"]["unhealthyPodEvictionPolicy"] == "AlwaysAllow"
    assert _budget(model_owner, config, {"autoscaling": {"maxReplicas": 4}}) is not None


def test_a_single_replica_gets_no_budget_that_would_block_node_drains(
    config: OperatorConfig, model_owner: Resource
) -> None:
    assert _budget(model_owner, config, {"replicas": 1}) is None
