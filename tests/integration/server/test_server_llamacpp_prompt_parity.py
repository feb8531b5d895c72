"""The llama.cpp engine feeds the real model (SmolLM2, GGUF) exactly the prompt llama.cpp would build itself.

kubechat renders prompts with transformers' reading of the GGUF (chat template, tokenizer) and sends token
ids to llama-server; llama-server's own `/apply-template` + `/tokenize` read the same file their own way. If
they disagree (a template, a default system prompt, a BOS, special tokens parsed as text), answers on
llama.cpp suffer for reasons of ours; these tests catch that. (Why SmolLM2's Q4_1 answers still differ on
llama.cpp: its 8-bit activations, docs/model-server.md.)
"""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from kubechat_server.engine.llamacpp import LlamaCppModel, LlamaServerProcess, load_gguf_facts
from kubechat_server.engine.prompts import (
    ChatTemplateFormat,
    Message,
    PromptSettings,
    split_dialog,
    system_text,
)
from tests.support.llamacpp import llama_server_binary
from tests.support.real_model import smollm2_gguf

BUDGET = 512
DIALOGS = {
    "question only, the template's default system prompt": (
        [Message("user", "What is the capital of France?")],
        PromptSettings(),
    ),
    "instruction and knowledge as the system prompt": (
        [Message("user", "When does the shop open?")],
        PromptSettings(instruction="Answer in one sentence.", knowledge="The shop opens at 9:30 every day."),
    ),
    "three turns": (
        [
            Message("user", "My name is Ada."),
            Message("assistant", "Nice to meet you, Ada!"),
            Message("user", "What is my name?"),
        ],
        PromptSettings(),
    ),
}


@pytest.fixture(scope="module")
def smollm2_on_llama_server() -> Iterator[tuple[LlamaCppModel, str]]:
    """The engine's view of the GGUF file, and a plain llama-server on the same file."""
    gguf = smollm2_gguf()
    server = LlamaServerProcess(llama_server_binary(), gguf, slots=1, slot_context=BUDGET, threads=1)
    server.start(timeout=300)
    try:
        yield load_gguf_facts(gguf), server.url
    finally:
        server.stop()


@pytest.mark.parametrize("dialog", DIALOGS)
def test_llamacpp_engine_sends_the_prompt_ids_llama_server_builds_itself(smollm2_on_llama_server, dialog):
    model, url = smollm2_on_llama_server
    messages, settings = DIALOGS[dialog]
    ours = ChatTemplateFormat(model.tokenizer, model.model_type).build(messages, settings, BUDGET).input_ids

    split = split_dialog(messages, settings)
    system = system_text(split.instruction, settings)
    chat = ([{"role": "system", "content": system}] if system else []) + [
        {"role": m.role, "content": m.content} for m in split.turns
    ]
    with httpx.Client(base_url=url, timeout=60) as client:
        text = client.post("/apply-template", json={"messages": chat}).raise_for_status().json()["prompt"]
        # As llama-server tokenises a chat of its own: BOS where the file asks for one, special tokens parsed.
        tokenized = client.post(
            "/tokenize", json={"content": text, "add_special": True, "parse_special": True}
        )
    theirs = tokenized.raise_for_status().json()["tokens"]

    assert ours == theirs, f"kubechat: {model.tokenizer.decode(ours)!r}\nllama.cpp: {text!r}"
