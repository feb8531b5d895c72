"""A ChatFrontend's `spec.tokenBudget` becomes its frontend's default token budget per API key."""

from __future__ import annotations

from kubechat_frontend.config import load_settings
from kubechat_operator.builders import build_frontend_children
from kubechat_operator.config import OperatorConfig
from kubechat_operator.spec import ChatFrontendSpec, Resource


def _frontend_settings(owner: Resource, config: OperatorConfig, spec: dict) -> dict:
    """The settings the frontend reads from the ConfigMap the operator makes for it."""
    children = build_frontend_children(owner, ChatFrontendSpec.model_validate(spec), config)
    data = next(c for c in children if c["kind"] == "ConfigMap")["data"]
    return load_settings(environ=data)


def test_without_a_token_budget_the_frontend_counts_none(
    frontend_owner: Resource, config: OperatorConfig
) -> None:
    settings = _frontend_settings(frontend_owner, config, {"models": [{"name": "llama"}]})
    assert (settings["TOKEN_BUDGET"], settings["TOKEN_BUDGET_PERIOD_S"]) == (0, 86400)


def test_the_token_budget_and_its_period_reach_the_frontend(
    frontend_owner: Resource, config: OperatorConfig
) -> None:
    spec = {"models": [{"name": "llama"}], "tokenBudget": {"tokens": 50000, "periodSeconds": 3600}}
    settings = _frontend_settings(frontend_owner, config, spec)
    assert (settings["TOKEN_BUDGET"], settings["TOKEN_BUDGET_PERIOD_S"]) == (50000, 3600)
