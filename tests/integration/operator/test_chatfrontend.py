"""A ChatFrontend waits for its ChatModels, then comes up pointed at their Services; the examples apply."""

from __future__ import annotations

import base64
import json

import pytest
from operator_harness import EXAMPLES, Kubectl, OperatorProcess, wait_until

pytestmark = [pytest.mark.controlplane, pytest.mark.slow]


def provide_history_volume(kubectl: Kubectl, frontend: str) -> None:
    """A PersistentVolume bound ahead to the frontend's `<name>-history` claim: this control plane has no
    provisioner, and a SQLite frontend's pod waits for its claim as on any cluster."""
    volume = f"{kubectl.namespace}-{frontend}-history"
    kubectl.apply(
        json.dumps(
            {
                "apiVersion": "v1",
                "kind": "PersistentVolume",
                "metadata": {"name": volume},
                "spec": {
                    "capacity": {"storage": "1Gi"},
                    "accessModes": ["ReadWriteOnce"],
                    "hostPath": {"path": f"/tmp/{volume}"},
                    "claimRef": {"namespace": kubectl.namespace, "name": f"{frontend}-history"},
                },
            }
        )
    )


def test_frontend_waits_for_a_missing_model_and_comes_up_when_it_exists(
    kubectl: Kubectl, operator: OperatorProcess
) -> None:
    godel = (EXAMPLES / "godel-chatbot.yaml").read_text().split("\n---\n")
    model_doc, frontend_doc = godel[0], godel[1]
    provide_history_volume(kubectl, "godel-chat")
    kubectl.apply(frontend_doc)
    status = kubectl.wait_phase("chatfrontend", "godel-chat", "Pending")
    conditions = {c["type"]: c for c in status["conditions"]}
    assert (conditions["ModelsAvailable"]["status"], conditions["ModelsAvailable"]["reason"]) == (
        "False",
        "ModelNotFound",
    )
    assert "waiting for ChatModel 'godel'" in conditions["ModelsAvailable"]["message"]
    assert kubectl.get("deployment", "godel-chat-frontend") is None

    kubectl.apply(model_doc)
    status = kubectl.wait_phase("chatfrontend", "godel-chat", "Ready", timeout=60)
    assert status["url"] == f"http://godel-chat-frontend.{kubectl.namespace}.svc:80"
    config = kubectl.get("configmap", "godel-chat-frontend-config")["data"]
    models = json.loads(config["KUBECHAT_FRONTEND_MODELS"])
    assert models == [{"name": "godel", "url": f"http://godel.{kubectl.namespace}.svc:8080", "default": True}]
    kubectl.wait_phase("chatmodel", "godel", "Ready", timeout=60)
    assert kubectl.status("chatmodel", "godel")["ready"] == "2/2"


def test_npc_example_applies_as_is_with_personas_and_a_node_port(
    kubectl: Kubectl, operator: OperatorProcess
) -> None:
    provide_history_volume(kubectl, "oakvale")
    kubectl.apply(EXAMPLES / "npc-persona.yaml")
    kubectl.wait_phase("chatmodel", "npc", "Ready", timeout=60)
    status = kubectl.wait_phase("chatfrontend", "oakvale", "Ready", timeout=60)
    node_port = kubectl.get("service", "oakvale-frontend")["spec"]["ports"][0]["nodePort"]
    assert status["url"].endswith(f":{node_port}")
    config = kubectl.get("configmap", "npc-config")["data"]
    assert config["KUBECHAT_PERSONA_SCRATCHPAD"] == "true"
    assert config["KUBECHAT_PERSONA_CHARACTER"].startswith("Mira")
    personas = json.loads(
        kubectl.get("configmap", "oakvale-frontend-config")["data"]["KUBECHAT_FRONTEND_PERSONAS"]
    )
    assert [p["name"] for p in personas] == ["Mira", "Tobin"]
    assert "oakvale" in kubectl("get", "kubechat").stdout


def test_every_frontend_pod_signs_sessions_with_one_operator_made_key_that_is_kept(
    kubectl: Kubectl, operator: OperatorProcess
) -> None:
    provide_history_volume(kubectl, "godel-chat")
    kubectl.apply(EXAMPLES / "godel-chatbot.yaml")
    kubectl.wait_phase("chatfrontend", "godel-chat", "Ready", timeout=90)
    secret = kubectl.get("secret", "godel-chat-session")
    key = base64.b64decode(secret["data"]["secret-key"])
    assert len(key) >= 32
    assert secret["metadata"]["ownerReferences"][0]["name"] == "godel-chat"
    pod = kubectl.get("deployment", "godel-chat-frontend")["spec"]["template"]["spec"]
    env = {e["name"]: e.get("valueFrom") for e in pod["containers"][0]["env"]}
    assert env["KUBECHAT_FRONTEND_SECRET_KEY"] == {
        "secretKeyRef": {"name": "godel-chat-session", "key": "secret-key"}
    }
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert volumes["data"]["persistentVolumeClaim"] == {"claimName": "godel-chat-history"}

    # A new generation (the pods roll) keeps the key: nobody is logged out by an edit.
    kubectl("patch", "chatfrontend", "godel-chat", "--type=merge", "-p", '{"spec": {"title": "Edited"}}')
    wait_until(
        lambda: kubectl.status("chatfrontend", "godel-chat").get("observedGeneration") == 2, 60, "gen 2"
    )
    assert base64.b64decode(kubectl.get("secret", "godel-chat-session")["data"]["secret-key"]) == key


def test_sqlite_history_with_more_than_one_pod_is_refused_at_apply(
    kubectl: Kubectl, operator: OperatorProcess
) -> None:
    frontend = {
        "apiVersion": "kubechat.dev/v1alpha1",
        "kind": "ChatFrontend",
        "metadata": {"name": "many"},
        "spec": {"models": [{"name": "godel"}], "replicas": 2},
    }
    refused = kubectl("apply", "-f", "-", input=json.dumps(frontend), check=False)
    assert refused.returncode != 0
    assert "replicas > 1 or autoscaling needs store.url postgresql" in refused.stderr
    frontend["spec"]["store"] = {"url": "postgresql://chat@pg/chat"}
    assert kubectl("apply", "-f", "-", input=json.dumps(frontend), check=False).returncode == 0


def test_a_token_budget_gets_its_defaults_and_a_period_under_a_minute_is_refused_at_apply(
    kubectl: Kubectl,
) -> None:
    frontend = {
        "apiVersion": "kubechat.dev/v1alpha1",
        "kind": "ChatFrontend",
        "metadata": {"name": "budgeted"},
        "spec": {"models": [{"name": "godel"}], "tokenBudget": {"tokens": 1000, "periodSeconds": 30}},
    }
    refused = kubectl("apply", "-f", "-", input=json.dumps(frontend), check=False)
    assert refused.returncode != 0 and "spec.tokenBudget.periodSeconds" in refused.stderr, refused.stderr
    frontend["spec"]["tokenBudget"] = {"tokens": 1000}
    kubectl("apply", "-f", "-", input=json.dumps(frontend))
    assert kubectl.get("chatfrontend", "budgeted")["spec"]["tokenBudget"] == {
        "tokens": 1000,
        "periodSeconds": 86400,
    }
