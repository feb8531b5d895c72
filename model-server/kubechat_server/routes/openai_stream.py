"""The OpenAI API's shared response pieces: ids, usage, logprobs, and the server-sent event streams.

Several requests (``n`` choices, a list of prompts) stream as one: their events interleave, each chunk naming
its choice ``index``.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import AsyncIterator

from fastapi.responses import StreamingResponse

from kubechat_server.engine.requests import Finished, GenerationRequest, TextDelta
from kubechat_server.engine.sampling import TokenLogprob
from kubechat_server.errors import error_body


class Tokens:
    """Token ids as the text pieces OpenAI's logprobs show."""

    def __init__(self, tokenizer):
        self.tokenizer = tokenizer

    def text(self, token_id: int) -> str:
        return self.tokenizer.decode([token_id])

    def chat(self, logprobs: tuple[TokenLogprob, ...]) -> dict:
        def entry(token_id: int, logprob: float) -> dict:
            text = self.text(token_id)
            return {"token": text, "logprob": logprob, "bytes": list(text.encode())}

        content = [
            {**entry(lp.token_id, lp.logprob), "top_logprobs": [entry(t, v) for t, v in lp.top]}
            for lp in logprobs
        ]
        return {"content": content, "refusal": None}

    def completion(self, logprobs: tuple[TokenLogprob, ...], offset: int = 0) -> dict:
        tokens = [self.text(lp.token_id) for lp in logprobs]
        offsets = []
        for token in tokens:
            offsets.append(offset)
            offset += len(token)
        return {
            "tokens": tokens,
            "token_logprobs": [lp.logprob for lp in logprobs],
            "top_logprobs": [{self.text(t): v for t, v in lp.top} for lp in logprobs],
            "text_offset": offsets,
        }


def usage_of(finished: list[Finished], n: int) -> dict:
    """Usage as OpenAI counts it: each prompt once (not once per choice), every choice's completion;
    ``finished`` in choice order, ``n`` choices per prompt."""
    prompt = sum(f.prompt_tokens for f in finished[::n])
    completion = sum(f.completion_tokens for f in finished)
    return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}


class Meta:
    """The id, object type, creation time and model name shared by a response and its chunks."""

    def __init__(self, prefix: str, kind: str, model: str):
        self.id = f"{prefix}-{uuid.uuid4().hex[:24]}"
        self.kind, self.model, self.created = kind, model, int(time.time())

    def head(self, chunk: bool = False) -> dict:
        kind = f"{self.kind}.chunk" if chunk and self.kind == "chat.completion" else self.kind
        return {"id": self.id, "object": kind, "created": self.created, "model": self.model}


def sse(events: AsyncIterator[dict], requests: list[GenerationRequest]) -> StreamingResponse:
    async def body() -> AsyncIterator[str]:
        try:
            async for event in events:
                yield f"data: {json.dumps(event, ensure_ascii=False)}\n\n"
            yield "data: [DONE]\n\n"
        finally:
            # Reached on normal end and when the client disconnects mid-stream: free the batch rows.
            for request in requests:
                request.cancel()

    return StreamingResponse(body(), media_type="text/event-stream", headers={"Cache-Control": "no-cache"})


async def _merged(requests: list[GenerationRequest]) -> AsyncIterator[tuple[int, TextDelta | Finished]]:
    """The events of several requests as they come, each with its request's index."""
    if len(requests) == 1:
        async for event in requests[0].stream():
            yield 0, event
        return
    queue: asyncio.Queue = asyncio.Queue()

    async def forward(index: int, request: GenerationRequest) -> None:
        async for event in request.stream():
            await queue.put((index, event))

    tasks = [asyncio.ensure_future(forward(i, r)) for i, r in enumerate(requests)]
    try:
        for _ in range(len(requests)):
            while True:
                index, event = await queue.get()
                yield index, event
                if isinstance(event, Finished):
                    break
    finally:
        for task in tasks:
            task.cancel()


def _stream_error(finished: Finished) -> dict:
    messages = {
        "timeout": "the request timed out while generating",
        "error": f"generation failed: {finished.error}",
    }
    return error_body(messages.get(finished.reason, finished.reason), "server_error", finished.reason)


async def chat_chunks(
    requests: list[GenerationRequest],
    meta: Meta,
    extension: dict,
    include_usage: bool,
    tokens: Tokens,
    n: int,
) -> AsyncIterator[dict]:
    def chunk(index: int, delta: dict, finish: str | None = None, logprobs: dict | None = None) -> dict:
        choice = {"index": index, "delta": delta, "logprobs": logprobs, "finish_reason": finish}
        return {**meta.head(chunk=True), "choices": [choice]}

    wants_logprobs = requests[0].params.logprobs is not None
    for index in range(len(requests)):
        first = chunk(index, {"role": "assistant", "content": ""})
        yield {**first, "kubechat": extension} if index == 0 else first
    done: dict[int, Finished] = {}
    async for index, event in _merged(requests):
        if isinstance(event, TextDelta):
            logprobs = tokens.chat(event.logprobs) if wants_logprobs else None
            yield chunk(index, {"content": event.text}, logprobs=logprobs)
        elif event.reason in ("stop", "length"):
            done[index] = event
            yield chunk(index, {}, event.reason)
        else:
            yield _stream_error(event)
            return
    if include_usage:
        yield {**meta.head(chunk=True), "choices": [], "usage": usage_of([done[i] for i in sorted(done)], n)}


async def completion_chunks(
    requests: list[GenerationRequest],
    meta: Meta,
    identity: dict,
    include_usage: bool,
    tokens: Tokens | None,
    n: int,
) -> AsyncIterator[dict]:
    offsets = [0] * len(requests)

    def chunk(index: int, text: str, finish: str | None = None, logprobs: dict | None = None) -> dict:
        choice = {"index": index, "text": text, "finish_reason": finish, "logprobs": logprobs}
        return {**meta.head(), "choices": [choice]}

    first = True
    done: dict[int, Finished] = {}
    async for index, event in _merged(requests):
        if isinstance(event, TextDelta):
            logprobs = None
            if tokens is not None:
                logprobs = tokens.completion(event.logprobs, offsets[index])
            offsets[index] += len(event.text)
            out = chunk(index, event.text, logprobs=logprobs)
        elif event.reason in ("stop", "length"):
            done[index] = event
            out = chunk(index, "", event.reason)
        else:
            yield _stream_error(event)
            return
        yield {**out, "kubechat": identity} if first else out
        first = False
    if include_usage:
        yield {**meta.head(), "choices": [], "usage": usage_of([done[i] for i in sorted(done)], n)}
