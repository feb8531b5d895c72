"""A ChatFrontend's pod settings and Ingress on the real apiserver: applied to its children, bad values
refused at `kubectl apply` with a message naming the field, and a removed Ingress pruned."""

from __future__ import annotations

import json

import pytest
from operator_harness import Kubectl, OperatorProcess, wait_until

pytestmark = [pytest.mark.controlplane, pytest.mark.slow]

MODEL = {
    "apiVersion": "kubechat.dev/v1alpha1",
    "kind": "ChatModel",
    "metadata": {"name": "godel"},
    "spec": {"model": {"id": "microsoft/GODEL-v1_1-base-seq2seq"}},
}


def frontend(**spec: object) -> dict:
    return {
        "apiVersion": "kubechat.dev/v1alpha1",
        "kind": "ChatFrontend",
        "metadata": {"name": "web"},
        # EmptyDir: this control plane has no storage provisioner for the history claim.
        "spec": {"models": [{"name": "godel"}], "store": {"volume": "EmptyDir"}, **spec},
    }


KNOBS = {
    "resources": {"requests": {"cpu": "100m", "memory": "128Mi"}, "limits": {"memory": "256Mi"}},
    "nodeSelector": {"kubernetes.io/os": "linux"},
    "tolerations": [{"key": "dedicated", "operator": "Equal", "value": "web", "effect": "NoSchedule"}],
    "affinity": {
        "podAntiAffinity": {
            "preferredDuringSchedulingIgnoredDuringExecution": [
                {
                    "weight": 50,
                    "podAffinityTerm": {
                        "topologyKey": "kubernetes.io/hostname",
                        "labelSelector": {"matchLabels": {"team": "chat"}},
                    },
                }
            ]
        }
    },
    "topologySpreadConstraints": [
        {"maxSkew": 1, "topologyKey": "kubernetes.io/hostname", "whenUnsatisfiable": "ScheduleAnyway"}
    ],
    "imagePullSecrets": [{"name": "regcred"}],
    "env": [{"name": "EXTRA", "value": "1"}],
    "podLabels": {"team": "chat"},
    "service": {"annotations": {"example.com/lb": "internal"}},
    "ingress": {
        "className": "nginx",
        "host": "chat.example.com",
        "annotations": {"example.com/timeout": "300"},
        "tls": {"secretName": "chat-tls"},
    },
}


def _apply(kubectl: Kubectl, manifest: dict, check: bool = True):  # noqa: ANN202 (CompletedProcess)
    return kubectl("apply", "-f", "-", input=json.dumps(manifest), check=check)


def test_pod_settings_and_ingress_reach_the_children_and_a_removed_ingress_is_pruned(
    kubectl: Kubectl, operator: OperatorProcess
) -> None:
    _apply(kubectl, MODEL)
    _apply(kubectl, frontend(**KNOBS))
    ingress = wait_until(lambda: kubectl.get("ingress", "web-frontend"), 60, "the Ingress")
    assert ingress["metadata"]["ownerReferences"][0]["name"] == "web"
    assert ingress["metadata"]["annotations"]["example.com/timeout"] == "300"
    assert ingress["spec"]["ingressClassName"] == "nginx"
    assert ingress["spec"]["tls"] == [{"hosts": ["chat.example.com"], "secretName": "chat-tls"}]
    rule = ingress["spec"]["rules"][0]
    assert rule["host"] == "chat.example.com"
    assert rule["http"]["paths"][0]["backend"]["service"] == {
        "name": "web-frontend",
        "port": {"name": "http"},
    }
    wait_until(lambda: kubectl.status("chatfrontend", "web").get("url") == "https://chat.example.com/", 30)

    template = kubectl.get("deployment", "web-frontend")["spec"]["template"]
    pod = template["spec"]
    assert pod["nodeSelector"] == KNOBS["nodeSelector"]
    assert pod["tolerations"] == KNOBS["tolerations"]
    assert pod["affinity"] == KNOBS["affinity"]
    assert pod["imagePullSecrets"] == [{"name": "regcred"}]
    (spread,) = pod["topologySpreadConstraints"]
    assert spread["labelSelector"]["matchLabels"]["kubechat.dev/chatfrontend"] == "web"
    container = pod["containers"][0]
    assert container["resources"] == KNOBS["resources"]
    assert {"name": "EXTRA", "value": "1"} in container["env"]
    assert template["metadata"]["labels"]["team"] == "chat"
    service = kubectl.get("service", "web-frontend")
    assert service["metadata"]["annotations"]["example.com/lb"] == "internal"
    config = kubectl.get("configmap", "web-frontend-config")["data"]
    assert config["KUBECHAT_FRONTEND_TRUSTED_PROXIES"] == "1"  # the Ingress controller's hop

    kubectl(
        "patch", "chatfrontend", "web", "--type=json", "-p", '[{"op": "remove", "path": "/spec/ingress"}]'
    )
    wait_until(lambda: kubectl.get("ingress", "web-frontend") is None, 60, "the Ingress pruned")
    wait_until(
        lambda: (
            kubectl.status("chatfrontend", "web").get("url")
            == f"http://web-frontend.{kubectl.namespace}.svc:80"
        ),
        30,
        "status.url back to the Service",
    )
    config = kubectl.get("configmap", "web-frontend-config")["data"]
    assert config["KUBECHAT_FRONTEND_TRUSTED_PROXIES"] == "0"


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({"podLabels": {"app.kubernetes.io/component": "x"}}, "podLabels must not set app.kubernetes.io/*"),
        ({"podLabels": {"kubechat.dev/chatfrontend": "other"}}, "kubechat.dev/* labels"),
        ({"podLabels": {"bad key!": "x"}}, "podLabels keys must be label keys"),
        ({"ingress": {"host": "https://chat.example.com"}}, "ingress.host must be a lowercase DNS name"),
        ({"ingress": {"tls": {"secretName": "t"}}}, "ingress.tls needs ingress.host"),
        ({"tolerations": [{"operator": "Sometimes"}]}, 'Unsupported value: "Sometimes"'),
        (
            {"topologySpreadConstraints": [{"maxSkew": 1, "topologyKey": "zone"}]},
            "whenUnsatisfiable: Required value",
        ),
    ],
)
def test_bad_pod_settings_are_refused_at_apply_with_a_message(
    kubectl: Kubectl, spec: dict, message: str
) -> None:
    refused = _apply(kubectl, frontend(**spec), check=False)
    assert refused.returncode != 0
    assert message in refused.stderr
    assert kubectl.get("chatfrontend", "web") is None
