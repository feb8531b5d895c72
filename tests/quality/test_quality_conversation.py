"""What reaches the prompt besides the question changes the answer: the dialog's history and a persona."""

from __future__ import annotations

import openai
import pytest

from tests.support.model_server import RunningServer
from tests.support.real_model import SERVED_NAME

pytestmark = pytest.mark.slow

NAME = "Zorbatron"  # no model guesses this name: only the history can tell it


def ask(server: RunningServer, messages: list[dict], **extra) -> str:
    client = openai.OpenAI(base_url=f"{server.url}/v1", api_key="unused", timeout=600)
    completion = client.chat.completions.create(
        model=SERVED_NAME, messages=messages, temperature=0, max_tokens=12, **extra
    )
    return completion.choices[0].message.content


def test_a_fact_from_the_first_turn_is_used_in_the_third(real_model_server: RunningServer) -> None:
    dialog = [
        {"role": "user", "content": f"Hi! My name is {NAME}."},
        {"role": "assistant", "content": "Nice to meet you! How can I help you today?"},
        {"role": "user", "content": "What is my name?"},
    ]
    assert NAME in ask(real_model_server, dialog)


def test_a_persona_makes_the_model_answer_as_that_character(real_model_server: RunningServer) -> None:
    question = [{"role": "user", "content": "What is your name?"}]
    persona = {"character": "Captain Blackbeard, a pirate", "world": "the Caribbean sea"}
    assert "Blackbeard" in ask(real_model_server, question, extra_body={"kubechat": {"persona": persona}})
    assert "Blackbeard" not in ask(real_model_server, question)
