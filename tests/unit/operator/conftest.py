"""Fixtures for the operator's pure unit tests: custom resources as the apiserver would hand them over."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from kubechat_operator.config import OperatorConfig
from kubechat_operator.spec import Resource


@pytest.fixture
def config() -> OperatorConfig:
    return OperatorConfig()


def make_resource(kind: str = "ChatModel", name: str = "godel", generation: int = 1) -> Resource:
    """A Resource as read from a body of the given kind in namespace chat."""
    return Resource.from_body(
        {
            "apiVersion": "kubechat.dev/v1alpha1",
            "kind": kind,
            "metadata": {"name": name, "namespace": "chat", "uid": f"uid-{name}", "generation": generation},
        }
    )


@pytest.fixture
def owner() -> Callable[[str, str], Resource]:
    """make_resource(kind, name) as a fixture, for tests that need several owners."""
    return make_resource


@pytest.fixture
def model_owner() -> Resource:
    return make_resource("ChatModel", "godel")


@pytest.fixture
def frontend_owner() -> Resource:
    return make_resource("ChatFrontend", "godel-chat")


@pytest.fixture
def by_kind() -> Callable[[list[dict[str, Any]]], dict[str, dict[str, Any]]]:
    """Children keyed by kind (ConfigMaps by name, since a ChatModel has two)."""
    return lambda children: {
        c["metadata"]["name"] if c["kind"] == "ConfigMap" else c["kind"]: c for c in children
    }
