"""A persona's private scratchpad never reaches the user, streamed or not.

The tiny Llama is first taught (a few seconds of overfitting on CPU) to answer the test's prompt with a
scratchpad and then the answer, so the server strips text a real model wrote.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from kubechat_server.config import Persona
from kubechat_server.engine.prompts import Message, PromptSettings, make_format
from tests.support.model_server import RunningServer, running_model_server
from tests.support.procs import cache_dir
from tests.support.tiny_models import tiny_model_dir

PERSONA = {"character": "a wizard", "world": "a tower", "scratchpad": True}
QUESTION = "Hello, how are you today?"
TARGET = "<scratchpad>the secret plan</scratchpad>\nHello friend, I am fine."


def scratchpad_model_dir() -> Path:
    """The tiny Llama, trained to answer QUESTION (under PERSONA, llama-2 format) with TARGET."""
    import torch
    from transformers import AutoTokenizer, LlamaForCausalLM

    source = tiny_model_dir("llama")
    key = hashlib.sha256(f"{source.name}{PERSONA}{QUESTION}{TARGET}v1".encode()).hexdigest()[:12]
    target_dir = cache_dir("models") / f"tiny-llama-scratchpad-{key}"
    if (target_dir / "config.json").exists():
        return target_dir
    tokenizer = AutoTokenizer.from_pretrained(source)
    settings = PromptSettings(persona=Persona(**PERSONA))
    prompt = make_format("llama-2", tokenizer, "llama").build([Message("user", QUESTION)], settings, 2048)
    answer = tokenizer.encode(TARGET, add_special_tokens=False) + [tokenizer.eos_token_id]
    ids = torch.tensor([prompt.input_ids + answer])
    labels = ids.clone()
    labels[0, : len(prompt.input_ids)] = -100
    torch.manual_seed(0)
    model = LlamaForCausalLM.from_pretrained(source)
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    for _ in range(300):
        loss = model(input_ids=ids, labels=labels).loss
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        if loss.item() < 0.01:
            break
    staging = target_dir.with_name(target_dir.name + ".tmp")
    shutil.rmtree(staging, ignore_errors=True)
    model.save_pretrained(staging)
    tokenizer.save_pretrained(staging)
    staging.rename(target_dir)
    return target_dir


@pytest.fixture(scope="module")
def scratchpad_server() -> Iterator[RunningServer]:
    with running_model_server(scratchpad_model_dir(), args=["--prompt-format", "llama-2"]) as server:
        yield server


def ask(server: RunningServer, persona: dict, **extra) -> requests.Response:
    body = {
        "messages": [{"role": "user", "content": QUESTION}],
        "temperature": 0,
        "max_tokens": 60,
        "kubechat": {"persona": persona},
        **extra,
    }
    return requests.post(
        f"{server.url}/v1/chat/completions", json=body, timeout=60, stream=extra.get("stream")
    )


def test_the_model_really_writes_a_scratchpad(scratchpad_server):
    # Without the scratchpad flag the server shows everything: the model does write one.
    answer = ask(scratchpad_server, {**PERSONA, "scratchpad": False}).json()["choices"][0]["message"]
    assert "<scratchpad>" in answer["content"]


def test_the_scratchpad_is_stripped_from_the_answer(scratchpad_server):
    answer = ask(scratchpad_server, PERSONA).json()["choices"][0]["message"]["content"]
    assert answer == "Hello friend, I am fine."


def test_no_chunk_of_a_stream_shows_any_of_the_scratchpad(scratchpad_server):
    response = ask(scratchpad_server, PERSONA, stream=True)
    deltas = []
    for line in response.iter_lines(decode_unicode=True):
        if line.startswith("data: {"):
            for choice in json.loads(line[6:])["choices"]:
                deltas.append(choice["delta"].get("content") or "")
    assert "".join(deltas) == "Hello friend, I am fine."
    assert not any("secret" in d or "scratch" in d or "<" in d for d in deltas)


def test_logprobs_are_refused_when_they_would_show_the_scratchpad(scratchpad_server):
    response = ask(scratchpad_server, PERSONA, logprobs=True)
    assert response.status_code == 400
    assert response.json()["error"]["param"] == "logprobs"
