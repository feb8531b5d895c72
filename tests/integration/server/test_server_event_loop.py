"""A long prompt is built off the event loop: while the tokenizer works on it, probes and other chats are
answered. The real app and tiny model in this process, so the test can hold the tokenizer inside that one
prompt (the real tokenizer, gated) and see what the server does meanwhile: an ordering, not a timing."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path

import httpx

from kubechat_server.app import create_app
from kubechat_server.config import ServerConfig

MARKER = "zebra-marker"
GATE_LIMIT_S = 60  # only bounds a failing run: a loop-blocking build holds the loop until then


class GatedTokenizer:
    """Holds the real tokenizer's encode of the marked prompt until released, noting while it is inside."""

    def __init__(self, tokenizer) -> None:
        self.real_encode = tokenizer.encode
        self.entered = threading.Event()
        self.release = threading.Event()
        self.inside = False
        tokenizer.encode = self.encode

    def encode(self, text: str, *args, **kwargs) -> list[int]:
        if MARKER in text:
            self.inside = True
            self.entered.set()
            self.release.wait(GATE_LIMIT_S)
            self.inside = False
        return self.real_encode(text, *args, **kwargs)


async def _while_a_long_prompt_is_tokenised(app, gate: GatedTokenizer) -> dict:
    seen: dict = {}
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://server", timeout=120) as client:
        huge = {"messages": [{"role": "user", "content": f"{MARKER} " + "word " * 150_000}]}
        long_request = asyncio.create_task(client.post("/v1/chat/completions", json=huge))
        await asyncio.to_thread(gate.entered.wait, GATE_LIMIT_S)
        health = await client.get("/health")
        seen["health"] = (health.status_code, gate.inside)
        short = {"messages": [{"role": "user", "content": "Hi"}], "max_tokens": 3}
        chat = await client.post("/v1/chat/completions", json=short)
        seen["chat"] = (chat.status_code, gate.inside)
        gate.release.set()
        answer = await long_request
        seen["long"] = (answer.status_code, answer.json()["error"]["code"])
    return seen


def test_probes_and_other_chats_are_answered_while_a_long_prompt_is_tokenised(
    tiny_llama_chat_dir: Path,
) -> None:
    config = ServerConfig(
        model_id=str(tiny_llama_chat_dir), torch_threads=1, dtype="float32", engine="transformers"
    )
    app = create_app(config)
    service = app.state.service
    service.start_loading().join()
    assert service.is_ready, service.failure
    gate = GatedTokenizer(service.loaded.tokenizer)
    try:
        seen = asyncio.run(_while_a_long_prompt_is_tokenised(app, gate))
    finally:
        gate.release.set()
        service.close()
    assert seen["health"] == (200, True)  # answered while the tokenizer was still inside the long prompt
    assert seen["chat"] == (200, True)  # and a whole other chat too
    assert seen["long"] == (400, "context_length_exceeded")  # the long one then got its own answer
