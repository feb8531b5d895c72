"""The OpenAI API (``/v1/chat/completions``, ``/v1/completions``, ``/v1/models``), streaming included.

Streams are server-sent events ending with ``data: [DONE]``; the first chunk carries the ``kubechat``
extension (pod, node, model); with ``stream_options.include_usage`` a last chunk carries the usage. ``n``
choices (and, on ``/v1/completions``, a list of prompts) are generated together, queued all or nothing;
their chunks interleave, each naming its choice ``index``. A parameter this server cannot honour is a 400
naming it (``param``), never silently ignored.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import replace

from fastapi import APIRouter, Request
from fastapi.responses import StreamingResponse

from kubechat_server.engine.engine import WorkItem
from kubechat_server.engine.prompts import Message
from kubechat_server.engine.requests import Finished, GenerationRequest, TextDelta
from kubechat_server.engine.sampling import SamplingParams, TokenLogprob
from kubechat_server.errors import APIError, error_body
from kubechat_server.routes.waiting import check_finished, wait_finished
from kubechat_server.schemas import MAX_ITEMS, ChatCompletionRequest, CompletionRequest
from kubechat_server.service import ModelService, SamplingRequest

router = APIRouter(prefix="/v1", tags=["openai"])


def _service(http: Request) -> ModelService:
    return http.app.state.service


def _refuse_unsupported(body: ChatCompletionRequest | CompletionRequest) -> None:
    problem = body.unsupported()
    if problem is not None:
        param, why = problem
        raise APIError(400, why, "unsupported_parameter", param=param)


def _sampling(
    body: ChatCompletionRequest | CompletionRequest, max_tokens: int | None, logprobs: int | None
) -> SamplingRequest:
    return SamplingRequest(
        max_new_tokens=max_tokens,
        temperature=body.temperature,
        top_p=body.top_p,
        stop=body.stop_list(),
        seed=body.seed,
        top_k=body.top_k,
        min_new_tokens=body.min_tokens,
        repetition_penalty=body.repetition_penalty,
        presence_penalty=body.presence_penalty,
        frequency_penalty=body.frequency_penalty,
        logprobs=logprobs,
    )


def _choices(prompt_ids: list[int], params: SamplingParams, n: int) -> list[WorkItem]:
    """``n`` generations of one prompt; with a seed, choice ``i`` uses ``seed + i`` (repeatable, distinct)."""
    return [
        WorkItem(prompt_ids, params if params.seed is None else replace(params, seed=params.seed + i))
        for i in range(n)
    ]


class _Tokens:
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


@router.get("/models")
async def list_models(http: Request) -> dict:
    """The one model this server serves."""
    service = _service(http)
    return {
        "object": "list",
        "data": [
            {"id": service.config.model_name, "object": "model", "created": 0, "owned_by": "kubechat"},
        ],
    }


@router.post("/chat/completions")
async def chat_completions(body: ChatCompletionRequest, http: Request):
    """Chat with the model; ``stream: true`` for server-sent events."""
    service = _service(http)
    service.check_model_name(body.model)
    service.require_ready()
    _refuse_unsupported(body)
    persona = body.kubechat.persona.to_persona() if body.kubechat and body.kubechat.persona else None
    hide = service.hides_scratchpad(persona)
    if hide and body.logprobs:
        raise APIError(
            400,
            "logprobs would show the persona's private scratchpad",
            "unsupported_parameter",
            param="logprobs",
        )
    max_tokens = body.max_completion_tokens or body.max_tokens
    params = service.sampling(_sampling(body, max_tokens, body.logprob_count()))
    messages = [Message("system" if m.role == "developer" else m.role, m.text()) for m in body.messages]
    built = service.chat_prompt(messages, persona, params.max_new_tokens)
    requests = service.submit_many(_choices(built.input_ids, params, body.n), body.stream, hide)
    extension = {**service.identity(), "droppedMessages": built.dropped_messages}
    meta = _Meta("chatcmpl", "chat.completion", service.config.model_name)
    tokens = _Tokens(service.loaded.tokenizer)
    if body.stream:
        include_usage = bool(body.stream_options and body.stream_options.include_usage)
        return _sse(_chat_chunks(requests, meta, extension, include_usage, tokens, body.n), requests)
    finished = [check_finished(f) for f in await wait_finished(requests, http)]
    choices = []
    for index, done in enumerate(finished):
        choice = {
            "index": index,
            "message": {"role": "assistant", "content": done.text},
            "logprobs": tokens.chat(done.logprobs) if body.logprobs else None,
            "finish_reason": done.reason,
        }
        choices.append(choice)
    usage = _usage_of(finished, body.n)
    return {**meta.head(), "choices": choices, "usage": usage, "kubechat": extension}


@router.post("/completions")
async def completions(body: CompletionRequest, http: Request):
    """Complete a text prompt (or a list of them); ``stream: true`` for server-sent events."""
    service = _service(http)
    service.check_model_name(body.model)
    service.require_ready()
    _refuse_unsupported(body)
    prompts = body.prompts()
    if len(prompts) * body.n > MAX_ITEMS:
        raise APIError(400, f"prompts x n may be at most {MAX_ITEMS}", "invalid_parameters", param="n")
    params = service.sampling(_sampling(body, body.max_tokens, body.logprobs))
    items = []
    for prompt in prompts:
        items += _choices(service.text_prompt(prompt, params.max_new_tokens), params, body.n)
    requests = service.submit_many(items, body.stream)
    meta = _Meta("cmpl", "text_completion", service.config.model_name)
    tokens = _Tokens(service.loaded.tokenizer)
    wants_logprobs = body.logprobs is not None
    if body.stream:
        include_usage = bool(body.stream_options and body.stream_options.include_usage)
        chunks = _completion_chunks(
            requests, meta, service.identity(), include_usage, tokens if wants_logprobs else None, body.n
        )
        return _sse(chunks, requests)
    finished = [check_finished(f) for f in await wait_finished(requests, http)]
    choices = [
        {
            "index": index,
            "text": done.text,
            "finish_reason": done.reason,
            "logprobs": tokens.completion(done.logprobs) if wants_logprobs else None,
        }
        for index, done in enumerate(finished)
    ]
    usage = _usage_of(finished, body.n)
    return {**meta.head(), "choices": choices, "usage": usage, "kubechat": service.identity()}


def _usage_of(finished: list[Finished], n: int) -> dict:
    """Usage as OpenAI counts it: each prompt once (not once per choice), every choice's completion;
    ``finished`` in choice order, ``n`` choices per prompt."""
    prompt = sum(f.prompt_tokens for f in finished[::n])
    completion = sum(f.completion_tokens for f in finished)
    return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}


class _Meta:
    """The id, object type, creation time and model name shared by a response and its chunks."""

    def __init__(self, prefix: str, kind: str, model: str):
        self.id = f"{prefix}-{uuid.uuid4().hex[:24]}"
        self.kind, self.model, self.created = kind, model, int(time.time())

    def head(self, chunk: bool = False) -> dict:
        kind = f"{self.kind}.chunk" if chunk and self.kind == "chat.completion" else self.kind
        return {"id": self.id, "object": kind, "created": self.created, "model": self.model}


def _sse(events: AsyncIterator[dict], requests: list[GenerationRequest]) -> StreamingResponse:
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


async def _chat_chunks(
    requests: list[GenerationRequest],
    meta: _Meta,
    extension: dict,
    include_usage: bool,
    tokens: _Tokens,
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
        yield {**meta.head(chunk=True), "choices": [], "usage": _usage_of([done[i] for i in sorted(done)], n)}


async def _completion_chunks(
    requests: list[GenerationRequest],
    meta: _Meta,
    identity: dict,
    include_usage: bool,
    tokens: _Tokens | None,
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
        yield {**meta.head(), "choices": [], "usage": _usage_of([done[i] for i in sorted(done)], n)}
