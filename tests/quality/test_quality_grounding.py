"""The ChatModel's knowledge (prompt.knowledge → KUBECHAT_KNOWLEDGE) grounds the answers: a fact no model
can know is answered from it, and without it the model does not know."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from tests.support.model_server import RunningServer
from tests.support.real_model import running_real_model_server

pytestmark = pytest.mark.slow

KNOWLEDGE = "The Moonbeam Cafe opens at 7:15 every morning."
QUESTION = "What time does the Moonbeam Cafe open?"


@pytest.fixture(scope="module")
def grounded_server() -> Iterator[RunningServer]:
    """SmolLM2 with knowledge, named by directory + file (as a ChatModel naming a cache volume or PVC)."""
    with running_real_model_server(env={"KUBECHAT_KNOWLEDGE": KNOWLEDGE}) as server:
        yield server


def answer(server: RunningServer) -> str:
    response = httpx.post(f"{server.url}/chat", json={"message": QUESTION, "history": []}, timeout=600)
    assert response.status_code == 200, response.text
    return response.json()["response"]


def test_a_question_about_the_knowledge_is_answered_with_its_fact(grounded_server: RunningServer) -> None:
    assert "7:15" in answer(grounded_server)


def test_without_the_knowledge_the_model_does_not_know_the_fact(real_model_server: RunningServer) -> None:
    assert "7:15" not in answer(real_model_server)
