"""A ChatFrontend's pods may read their ChatModels' status (to show a model waking) and nothing more, and get
the wake settings of the spec."""

from __future__ import annotations

from kubechat_operator.builders import build_frontend_children
from kubechat_operator.config import OperatorConfig
from kubechat_operator.spec import ChatFrontendSpec, Resource


def _children(owner: Resource, config: OperatorConfig, spec: dict) -> dict:
    children = build_frontend_children(owner, ChatFrontendSpec.model_validate(spec), config)
    return {c["kind"]: c for c in children}


def test_the_frontend_pods_run_as_an_account_that_may_only_read_chatmodels_of_its_namespace(
    frontend_owner: Resource, config: OperatorConfig
) -> None:
    kinds = _children(frontend_owner, config, {"models": [{"name": "llama"}]})
    account, role, binding = kinds["ServiceAccount"], kinds["Role"], kinds["RoleBinding"]
    assert role["rules"] == [
        {"apiGroups": ["kubechat.dev"], "resources": ["chatmodels"], "verbs": ["get", "list", "watch"]}
    ]
    assert role["metadata"]["namespace"] == frontend_owner.namespace  # a Role, not a ClusterRole
    assert binding["roleRef"]["name"] == role["metadata"]["name"]
    name = account["metadata"]["name"]
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": name, "namespace": frontend_owner.namespace}
    ]
    pod = kinds["Deployment"]["spec"]["template"]["spec"]
    assert pod["serviceAccountName"] == name and pod["automountServiceAccountToken"] is True
    assert account["automountServiceAccountToken"] is False  # other pods using it get no token by default


def test_the_wake_settings_reach_the_frontend_with_defaults(
    frontend_owner: Resource, config: OperatorConfig
) -> None:
    default = _children(frontend_owner, config, {"models": [{"name": "llama"}]})["ConfigMap"]["data"]
    assert (default["KUBECHAT_FRONTEND_WAKE_TIMEOUT_S"], default["KUBECHAT_FRONTEND_WAKE_MAX_WAITING"]) == (
        "180",
        "32",
    )
    spec = {"models": [{"name": "llama"}], "wake": {"timeoutSeconds": 30, "maxWaiting": 0}}
    data = _children(frontend_owner, config, spec)["ConfigMap"]["data"]
    assert (data["KUBECHAT_FRONTEND_WAKE_TIMEOUT_S"], data["KUBECHAT_FRONTEND_WAKE_MAX_WAITING"]) == (
        "30",
        "0",
    )
