"""The OpenAI API (``/v1/chat/completions``, ``/v1/completions``, ``/v1/models``), streaming included.

Streams are server-sent events ending with ``data: [DONE]``; the first chunk carries the ``kubechat``
extension (pod, node, model); with ``stream_options.include_usage`` a last chunk carries the usage.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import AsyncIterator

from fastapi import APIRouter, Request
from fastapi.responses import StreamingResponse

from kubechat_server.engine.prompts import Message
from kubechat_server.engine.requests import Finished, GenerationRequest, TextDelta
from kubechat_server.errors import error_body
from kubechat_server.routes.waiting import check_finished, wait_finished
from kubechat_server.schemas import ChatCompletionRequest, CompletionRequest
from kubechat_server.service import ModelService, SamplingRequest

router = APIRouter(prefix="/v1", tags=["openai"])


def _service(http: Request) -> ModelService:
    return http.app.state.service


def _usage(finished: Finished) -> dict:
    return {
        "prompt_tokens": finished.prompt_tokens,
        "completion_tokens": finished.completion_tokens,
        "total_tokens": finished.prompt_tokens + finished.completion_tokens,
    }


def _sampling(body: ChatCompletionRequest | CompletionRequest, max_tokens: int | None) -> SamplingRequest:
    return SamplingRequest(
        max_new_tokens=max_tokens,
        temperature=body.temperature,
        top_p=body.top_p,
        stop=body.stop_list(),
        seed=body.seed,
    )


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
    params = service.sampling(_sampling(body, body.max_completion_tokens or body.max_tokens))
    persona = body.kubechat.persona.to_persona() if body.kubechat and body.kubechat.persona else None
    messages = [Message("system" if m.role == "developer" else m.role, m.text()) for m in body.messages]
    built = service.chat_prompt(messages, persona, params.max_new_tokens)
    request = service.submit(built.input_ids, params, body.stream)
    extension = {**service.identity(), "droppedMessages": built.dropped_messages}
    meta = _Meta("chatcmpl", "chat.completion", service.config.model_name)
    if body.stream:
        include_usage = bool(body.stream_options and body.stream_options.include_usage)
        events = _chat_chunks(request, meta, extension, include_usage)
        return _sse(events, request)
    finished = check_finished((await wait_finished([request], http))[0])
    return {
        **meta.head(),
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": finished.text},
                "finish_reason": finished.reason,
            }
        ],
        "usage": _usage(finished),
        "kubechat": extension,
    }


@router.post("/completions")
async def completions(body: CompletionRequest, http: Request):
    """Complete a text prompt; ``stream: true`` for server-sent events."""
    service = _service(http)
    service.check_model_name(body.model)
    service.require_ready()
    params = service.sampling(_sampling(body, body.max_tokens))
    request = service.submit(service.text_prompt(body.prompt, params.max_new_tokens), params, body.stream)
    meta = _Meta("cmpl", "text_completion", service.config.model_name)
    if body.stream:
        include_usage = bool(body.stream_options and body.stream_options.include_usage)
        return _sse(_completion_chunks(request, meta, service.identity(), include_usage), request)
    finished = check_finished((await wait_finished([request], http))[0])
    return {
        **meta.head(),
        "choices": [{"index": 0, "text": finished.text, "finish_reason": finished.reason, "logprobs": None}],
        "usage": _usage(finished),
        "kubechat": service.identity(),
    }


class _Meta:
    """The id, object type, creation time and model name shared by a response and its chunks."""

    def __init__(self, prefix: str, kind: str, model: str):
        self.id = f"{prefix}-{uuid.uuid4().hex[:24]}"
        self.kind, self.model, self.created = kind, model, int(time.time())

    def head(self, chunk: bool = False) -> dict:
        kind = f"{self.kind}.chunk" if chunk and self.kind == "chat.completion" else self.kind
        return {"id": self.id, "object": kind, "created": self.created, "model": self.model}


def _sse(events: AsyncIterator[dict], request: GenerationRequest) -> StreamingResponse:
    async def body() -> AsyncIterator[str]:
        try:
            async for event in events:
                yield f"data: {json.dumps(event, ensure_ascii=False)}\n\n"
            yield "data: [DONE]\n\n"
        finally:
            # Reached on normal end and when the client disconnects mid-stream: free the batch row.
            request.cancel()

    return StreamingResponse(body(), media_type="text/event-stream", headers={"Cache-Control": "no-cache"})


def _stream_error(finished: Finished) -> dict:
    messages = {
        "timeout": "the request timed out while generating",
        "error": f"generation failed: {finished.error}",
    }
    return error_body(messages.get(finished.reason, finished.reason), "server_error", finished.reason)


async def _chat_chunks(
    request: GenerationRequest, meta: _Meta, extension: dict, include_usage: bool
) -> AsyncIterator[dict]:
    def chunk(delta: dict, finish: str | None = None) -> dict:
        return {**meta.head(chunk=True), "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}

    yield {**chunk({"role": "assistant", "content": ""}), "kubechat": extension}
    async for event in request.stream():
        if isinstance(event, TextDelta):
            yield chunk({"content": event.text})
        elif event.reason in ("stop", "length"):
            yield chunk({}, event.reason)
            if include_usage:
                yield {**meta.head(chunk=True), "choices": [], "usage": _usage(event)}
        else:
            yield _stream_error(event)


async def _completion_chunks(
    request: GenerationRequest, meta: _Meta, identity: dict, include_usage: bool
) -> AsyncIterator[dict]:
    def chunk(text: str, finish: str | None = None) -> dict:
        return {
            **meta.head(),
            "choices": [{"index": 0, "text": text, "finish_reason": finish, "logprobs": None}],
        }

    first = True
    async for event in request.stream():
        if isinstance(event, TextDelta):
            yield {**chunk(event.text), "kubechat": identity} if first else chunk(event.text)
            first = False
        elif event.reason in ("stop", "length"):
            yield {**chunk("", event.reason), "kubechat": identity} if first else chunk("", event.reason)
            if include_usage:
                yield {**meta.head(), "choices": [], "usage": _usage(event)}
        else:
            yield _stream_error(event)
