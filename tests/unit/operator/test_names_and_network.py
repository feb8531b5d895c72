"""Child names never collide across kinds; the model's NetworkPolicy admits only its frontends and the
operator."""

from __future__ import annotations

from kubechat_operator.builders import build_frontend_children, build_model_children
from kubechat_operator.builders.chatmodel import model_client_label
from kubechat_operator.config import OperatorConfig
from kubechat_operator.spec import ChatFrontendSpec, ChatModelSpec

MODEL = {
    "model": {"id": "m"},
    "replicas": 2,
    "autoscaling": {"maxReplicas": 3},
    "cache": {"size": "1Gi", "accessMode": "ReadWriteMany"},
}
FRONTEND = {"models": [{"name": "foo"}], "autoscaling": {"maxReplicas": 3}}


def _names(children: list[dict]) -> set[tuple[str, str]]:
    return {(c["kind"], c["metadata"]["name"]) for c in children}


def test_a_chatmodel_and_a_chatfrontend_of_the_same_name_share_no_child(
    config: OperatorConfig, owner
) -> None:
    model = build_model_children(owner("ChatModel", "foo"), ChatModelSpec.model_validate(MODEL), config)
    frontend = build_frontend_children(
        owner("ChatFrontend", "foo"), ChatFrontendSpec.model_validate(FRONTEND), config
    )
    assert _names(model) & _names(frontend) == set()


def test_no_names_of_either_kind_collide_for_names_the_crds_admit(config: OperatorConfig, owner) -> None:
    # Names built from the suffixes themselves are the likeliest to collide (the CRD forbids ChatModel
    # names ending in -frontend).
    stems = ["a", "a-config", "a-cache", "a-progress", "a-model-server", "a-frontend-config", "config"]
    owners = [("ChatModel", s) for s in stems] + [("ChatFrontend", s) for s in stems + ["a-frontend"]]
    seen: dict[tuple[str, str], tuple[str, str]] = {}
    for kind, name in owners:
        resource = owner(kind, name)
        children = (
            build_model_children(resource, ChatModelSpec.model_validate(MODEL), config)
            if kind == "ChatModel"
            else build_frontend_children(resource, ChatFrontendSpec.model_validate(FRONTEND), config)
        )
        for child in _names(children):
            assert child not in seen, f"{kind} {name} and {seen[child]} both make {child}"
            seen[child] = (kind, name)


def test_the_network_policy_admits_the_models_frontends_and_the_operator_only(owner) -> None:
    config = OperatorConfig(operator_namespace="kubechat-system")
    children = build_model_children(
        owner("ChatModel", "foo"), ChatModelSpec.model_validate({"model": {"id": "m"}}), config
    )
    policy = next(c for c in children if c["kind"] == "NetworkPolicy")
    assert policy["spec"]["podSelector"]["matchLabels"]["kubechat.dev/chatmodel"] == "foo"
    (rule,) = policy["spec"]["ingress"]
    frontends, operator = rule["from"]
    assert frontends == {"podSelector": {"matchLabels": {model_client_label("foo"): "true"}}}
    assert operator["namespaceSelector"]["matchLabels"] == {"kubernetes.io/metadata.name": "kubechat-system"}
    assert operator["podSelector"]["matchLabels"]["app.kubernetes.io/component"] == "operator"
    frontend = build_frontend_children(
        owner("ChatFrontend", "chat"),
        ChatFrontendSpec.model_validate({"models": [{"name": "foo"}, {"name": "bar"}]}),
        config,
    )
    deployment = next(c for c in frontend if c["kind"] == "Deployment")
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert labels[model_client_label("foo")] == labels[model_client_label("bar")] == "true"


def test_the_network_policy_can_be_turned_off(config: OperatorConfig, owner) -> None:
    spec = ChatModelSpec.model_validate({"model": {"id": "m"}, "networkPolicy": {"enabled": False}})
    children = build_model_children(owner("ChatModel", "foo"), spec, config)
    assert "NetworkPolicy" not in {c["kind"] for c in children}
