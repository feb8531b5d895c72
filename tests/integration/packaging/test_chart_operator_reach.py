"""The operator the chart installs may reach the model pods' /metrics through their NetworkPolicy."""

from __future__ import annotations

from chart_harness import Helm

from kubechat_operator.builders import build_model_children
from kubechat_operator.config import OperatorConfig
from kubechat_operator.spec import ChatModelSpec, Resource


def test_model_network_policy_admits_the_charts_operator_pods_on_the_metrics_port(chart_tool: Helm) -> None:
    (deployment,) = [m for m in chart_tool.template() if m["kind"] == "Deployment"]
    operator_labels = deployment["spec"]["template"]["metadata"]["labels"]
    owner = Resource(
        api_version="kubechat.dev/v1alpha1", kind="ChatModel", name="m", namespace="chat", uid="u"
    )
    spec = ChatModelSpec.model_validate({"model": {"id": "m"}})
    children = build_model_children(owner, spec, OperatorConfig(operator_namespace="ops"))
    (policy,) = [c for c in children if c["kind"] == "NetworkPolicy"]
    (rule,) = policy["spec"]["ingress"]
    (operator,) = [peer for peer in rule["from"] if "namespaceSelector" in peer]
    assert operator["namespaceSelector"]["matchLabels"] == {"kubernetes.io/metadata.name": "ops"}
    assert operator["podSelector"]["matchLabels"].items() <= operator_labels.items()
    assert rule["ports"] == [{"protocol": "TCP", "port": 8080}]  # the only port: serving and /metrics
