"""A ChatFrontend waits for its ChatModels, then comes up pointed at their Services; the examples apply."""

from __future__ import annotations

import json

import pytest
from operator_harness import EXAMPLES, Kubectl, OperatorProcess

pytestmark = [pytest.mark.controlplane, pytest.mark.slow]


def test_frontend_waits_for_a_missing_model_and_comes_up_when_it_exists(
    kubectl: Kubectl, operator: OperatorProcess
) -> None:
    godel = (EXAMPLES / "godel-chatbot.yaml").read_text().split("\n---\n")
    model_doc, frontend_doc = godel[0], godel[1]
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
