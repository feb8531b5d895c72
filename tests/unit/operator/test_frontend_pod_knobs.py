"""A ChatFrontend's pod settings reach its pods, and its optional Ingress routes its host to its Service."""

from __future__ import annotations

from kubechat_operator.builders import build_frontend_children, build_model_children
from kubechat_operator.builders.chatfrontend import optional_frontend_children
from kubechat_operator.builders.frontend_ingress import ingress_url
from kubechat_operator.config import OperatorConfig
from kubechat_operator.spec import ChatFrontendSpec, ChatModelSpec, FrontendIngress, Resource

BASE = {"models": [{"name": "godel"}], "store": {"url": "redis://redis:6379/0"}}
KNOBS = {
    **BASE,
    "resources": {"requests": {"cpu": "250m", "memory": "256Mi"}, "limits": {"memory": "512Mi"}},
    "nodeSelector": {"pool": "web"},
    "tolerations": [{"key": "dedicated", "operator": "Equal", "value": "web", "effect": "NoSchedule"}],
    "affinity": {
        "nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": []}}
    },
    "topologySpreadConstraints": [
        {"maxSkew": 1, "topologyKey": "topology.kubernetes.io/zone", "whenUnsatisfiable": "ScheduleAnyway"}
    ],
    "priorityClassName": "web-critical",
    "imagePullSecrets": [{"name": "regcred"}],
    "env": [{"name": "EXTRA", "value": "1"}, {"name": "POD_NAME", "value": "override"}],
    "podLabels": {"team": "chat"},
    "podAnnotations": {"sidecar.istio.io/inject": "true"},
    "service": {"annotations": {"service.beta.kubernetes.io/aws-load-balancer-internal": "true"}},
}


def _children(owner: Resource, config: OperatorConfig, spec: dict) -> dict:
    children = build_frontend_children(owner, ChatFrontendSpec.model_validate(spec), config)
    return {c["kind"]: c for c in children}


def test_pod_settings_reach_the_frontend_pods(frontend_owner: Resource, config: OperatorConfig) -> None:
    template = _children(frontend_owner, config, KNOBS)["Deployment"]["spec"]["template"]
    pod = template["spec"]
    assert pod["nodeSelector"] == {"pool": "web"}
    assert pod["tolerations"] == KNOBS["tolerations"]
    assert pod["affinity"] == KNOBS["affinity"]
    assert pod["priorityClassName"] == "web-critical"
    assert pod["imagePullSecrets"] == [{"name": "regcred"}]
    container = pod["containers"][0]
    assert container["resources"] == {
        "requests": {"cpu": "250m", "memory": "256Mi"},
        "limits": {"memory": "512Mi"},
    }
    env = {e["name"]: e for e in container["env"]}
    assert env["EXTRA"] == {"name": "EXTRA", "value": "1"}
    assert env["POD_NAME"] == {"name": "POD_NAME", "value": "override"}  # the user's replaces ours
    assert template["metadata"]["labels"]["team"] == "chat"
    assert template["metadata"]["annotations"]["sidecar.istio.io/inject"] == "true"


def test_a_spread_constraint_without_a_selector_spreads_the_frontends_own_pods(
    frontend_owner: Resource, config: OperatorConfig
) -> None:
    deployment = _children(frontend_owner, config, KNOBS)["Deployment"]["spec"]
    (constraint,) = deployment["template"]["spec"]["topologySpreadConstraints"]
    assert constraint["labelSelector"] == {"matchLabels": deployment["selector"]["matchLabels"]}
    assert constraint["topologyKey"] == "topology.kubernetes.io/zone"


def test_pod_labels_never_replace_the_selector_labels(
    frontend_owner: Resource, config: OperatorConfig
) -> None:
    # The CRD refuses these keys; a spec that got past it still cannot orphan the pods from their Deployment.
    spec = {**BASE, "podLabels": {"app.kubernetes.io/component": "mine", "kubechat.dev/chatfrontend": "x"}}
    deployment = _children(frontend_owner, config, spec)["Deployment"]["spec"]
    labels = deployment["template"]["metadata"]["labels"]
    assert deployment["selector"]["matchLabels"].items() <= labels.items()


def test_unset_pod_settings_leave_the_pod_spec_as_before(
    frontend_owner: Resource, config: OperatorConfig
) -> None:
    pod = _children(frontend_owner, config, BASE)["Deployment"]["spec"]["template"]["spec"]
    for field in ("nodeSelector", "tolerations", "affinity", "topologySpreadConstraints", "imagePullSecrets"):
        assert field not in pod


def test_service_annotations_land_on_the_service(frontend_owner: Resource, config: OperatorConfig) -> None:
    service = _children(frontend_owner, config, KNOBS)["Service"]
    assert service["metadata"]["annotations"] == KNOBS["service"]["annotations"]
    assert "annotations" not in _children(frontend_owner, config, BASE)["Service"]["metadata"]


def test_ingress_routes_the_host_to_the_frontend_service_with_tls(
    frontend_owner: Resource, config: OperatorConfig
) -> None:
    ingress_spec = {
        "className": "nginx",
        "host": "chat.example.com",
        "annotations": {"cert-manager.io/cluster-issuer": "letsencrypt"},
        "tls": {"secretName": "chat-tls"},
    }
    children = _children(frontend_owner, config, {**BASE, "ingress": ingress_spec})
    ingress = children["Ingress"]
    assert ingress["apiVersion"] == "networking.k8s.io/v1"
    assert ingress["metadata"]["name"] == children["Service"]["metadata"]["name"]
    assert ingress["metadata"]["ownerReferences"][0]["uid"] == frontend_owner.uid
    assert ingress["metadata"]["annotations"] == ingress_spec["annotations"]
    spec = ingress["spec"]
    assert spec["ingressClassName"] == "nginx"
    assert spec["tls"] == [{"hosts": ["chat.example.com"], "secretName": "chat-tls"}]
    (rule,) = spec["rules"]
    assert rule["host"] == "chat.example.com"
    (path,) = rule["http"]["paths"]
    assert (path["path"], path["pathType"]) == ("/", "Prefix")
    assert path["backend"]["service"] == {
        "name": children["Service"]["metadata"]["name"],
        "port": {"name": "http"},
    }


def test_no_ingress_unless_asked_and_enabled_and_it_is_pruned_otherwise(
    frontend_owner: Resource, config: OperatorConfig
) -> None:
    assert "Ingress" not in _children(frontend_owner, config, BASE)
    disabled = {**BASE, "ingress": {"enabled": False, "host": "chat.example.com"}}
    assert "Ingress" not in _children(frontend_owner, config, disabled)
    assert ("Ingress", f"{frontend_owner.name}-frontend") in optional_frontend_children(frontend_owner)


def test_behind_an_ingress_the_frontend_trusts_one_proxy_hop_unless_told(
    frontend_owner: Resource, config: OperatorConfig
) -> None:
    def hops(spec: dict) -> str:
        return _children(frontend_owner, config, spec)["ConfigMap"]["data"][
            "KUBECHAT_FRONTEND_TRUSTED_PROXIES"
        ]

    with_ingress = {**BASE, "ingress": {"host": "chat.example.com"}}
    assert hops(BASE) == "0"
    assert hops(with_ingress) == "1"  # else every user behind the controller shares one rate limit
    assert hops({**with_ingress, "trustedProxies": 2}) == "2"
    assert hops({**with_ingress, "trustedProxies": 0}) == "0"


def test_ingress_url_is_the_host_else_the_published_address() -> None:
    assert ingress_url(FrontendIngress(host="chat.example.com"), None) == "http://chat.example.com/"
    tls = FrontendIngress.model_validate({"host": "chat.example.com", "tls": {"secretName": "t"}})
    assert ingress_url(tls, None) == "https://chat.example.com/"
    published = {"status": {"loadBalancer": {"ingress": [{"ip": "198.18.0.9"}]}}}
    assert ingress_url(FrontendIngress(), published) == "http://198.18.0.9/"
    assert ingress_url(FrontendIngress(), {"status": {}}) == "<pending ingress address>"


def test_a_chatmodel_spreads_its_own_pods_through_the_same_builder(
    model_owner: Resource, config: OperatorConfig
) -> None:
    spread = [{"maxSkew": 1, "topologyKey": "kubernetes.io/hostname", "whenUnsatisfiable": "DoNotSchedule"}]
    spec = ChatModelSpec.model_validate({"model": {"id": "m"}, "topologySpreadConstraints": spread})
    deployment = next(c for c in build_model_children(model_owner, spec, config) if c["kind"] == "Deployment")
    (constraint,) = deployment["spec"]["template"]["spec"]["topologySpreadConstraints"]
    assert constraint == {
        "labelSelector": {"matchLabels": deployment["spec"]["selector"]["matchLabels"]},
        **spread[0],
    }
