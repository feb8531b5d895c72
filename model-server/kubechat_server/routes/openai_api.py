"""The OpenAI API (``/v1/chat/completions``, ``/v1/completions``, ``/v1/models``), streaming included.

Streams are server-sent events ending with ``data: [DONE]``; the first chunk carries the ``kubechat``
extension (pod, node, model); with ``stream_options.include_usage`` a last chunk carries the usage. ``n``
choices (and, on ``/v1/completions``, a list of prompts) are generated together, queued all or nothing;
their chunks interleave, each naming its choice ``index``. A parameter this server cannot honour is a 400
naming it (``param``), never silently ignored.
"""

from __future__ import annotations

from dataclasses import replace

from fastapi import APIRouter, Request

from kubechat_server.engine.engine import WorkItem
from kubechat_server.engine.prompts import Message
from kubechat_server.engine.sampling import SamplingParams
from kubechat_server.errors import APIError
from kubechat_server.routes.openai_stream import (
    Meta,
    Tokens,
    chat_chunks,
    completion_chunks,
    sse,
    usage_of,
)
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
    built = await service.chat_prompt(messages, persona, params.max_new_tokens)
    requests = service.submit_many(_choices(built.input_ids, params, body.n), body.stream, hide)
    extension = {**service.identity(), "droppedMessages": built.dropped_messages}
    meta = Meta("chatcmpl", "chat.completion", service.config.model_name)
    tokens = Tokens(service.loaded.tokenizer)
    if body.stream:
        include_usage = bool(body.stream_options and body.stream_options.include_usage)
        return sse(chat_chunks(requests, meta, extension, include_usage, tokens, body.n), requests)
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
    usage = usage_of(finished, body.n)
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
        items += _choices(await service.text_prompt(prompt, params.max_new_tokens), params, body.n)
    requests = service.submit_many(items, body.stream)
    meta = Meta("cmpl", "text_completion", service.config.model_name)
    tokens = Tokens(service.loaded.tokenizer)
    wants_logprobs = body.logprobs is not None
    if body.stream:
        include_usage = bool(body.stream_options and body.stream_options.include_usage)
        chunks = completion_chunks(
            requests, meta, service.identity(), include_usage, tokens if wants_logprobs else None, body.n
        )
        return sse(chunks, requests)
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
    usage = usage_of(finished, body.n)
    return {**meta.head(), "choices": choices, "usage": usage, "kubechat": service.identity()}
