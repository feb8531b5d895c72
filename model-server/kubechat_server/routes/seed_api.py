"""The seeds' own API, so their clients keep working.

- GODEL seed: ``POST /chat`` ``{message, history}`` -> ``{response, pod, node, model}``.
- Llama-2 seed: ``POST /chat`` ``{input_data: {input_string: [dialog, ...]}, parameters}`` -> one conversation
  per dialog (a dialog with control tags gets an error entry; the others are still answered, batched
  together), and ``POST /generate`` ``{prompts, parameters}`` -> one completion per prompt.
"""

from __future__ import annotations

from fastapi import APIRouter, Request

from kubechat_server.engine.engine import WorkItem
from kubechat_server.engine.prompts import UNSAFE_ERROR, Message, PromptError
from kubechat_server.routes.waiting import check_finished, wait_finished
from kubechat_server.schemas import (
    GenerateRequest,
    GodelChatRequest,
    LlamaChatRequest,
    LlamaParameters,
    SeedMessage,
)
from kubechat_server.service import ModelService, SamplingRequest

router = APIRouter(tags=["seed"])


def _service(http: Request) -> ModelService:
    return http.app.state.service


def _llama_sampling(parameters: LlamaParameters | None) -> SamplingRequest:
    p = parameters or LlamaParameters()
    return SamplingRequest(max_new_tokens=p.max_gen_len, temperature=p.temperature, top_p=p.top_p)


def godel_messages(body: GodelChatRequest) -> list[Message]:
    """History strings alternate user and assistant, counted back from the new user message."""
    messages = []
    for back, turn in enumerate(reversed(body.history)):
        if isinstance(turn, SeedMessage):
            messages.append(Message(turn.role, turn.content))
        else:
            messages.append(Message("assistant" if back % 2 == 0 else "user", turn))
    return [*reversed(messages), Message("user", body.message)]


@router.post("/chat")
async def chat(body: GodelChatRequest | LlamaChatRequest, http: Request) -> dict:
    """GODEL seed's chat (``message``/``history``) or Llama-2 seed's batched chat (``input_data``)."""
    service = _service(http)
    service.require_ready()
    if isinstance(body, GodelChatRequest):
        params = service.sampling(SamplingRequest())
        built = await service.chat_prompt(godel_messages(body), max_new_tokens=params.max_new_tokens)
        request = service.submit(built.input_ids, params, hide_scratchpad=service.hides_scratchpad(None))
        finished = check_finished((await wait_finished([request], http))[0])
        return {"response": finished.text, **service.identity()}
    return await _llama_chat(service, body, http)


async def _llama_chat(service: ModelService, body: LlamaChatRequest, http: Request) -> dict:
    params = service.sampling(_llama_sampling(body.parameters or body.input_data.parameters))
    dialogs = body.input_data.input_string
    outcomes: list[str | PromptError] = []
    items, positions = [], []
    for index, dialog in enumerate(dialogs):
        try:
            built = await service.chat_prompt(
                [Message(m.role, m.content) for m in dialog], None, params.max_new_tokens
            )
        except PromptError as exc:
            outcomes.append(exc)
            continue
        outcomes.append("")
        items.append(WorkItem(built.input_ids, params))
        positions.append(index)
    requests = service.submit_many(items, hide_scratchpad=service.hides_scratchpad(None)) if items else []
    for index, finished in zip(positions, await wait_finished(requests, http), strict=True):
        outcomes[index] = check_finished(finished).text
    results = []
    for dialog, outcome in zip(dialogs, outcomes, strict=True):
        conversation = [{"role": m.role.capitalize(), "content": m.content} for m in dialog]
        if isinstance(outcome, PromptError):
            # Meta's reference answers an unsafe dialog with its error text; the reason is alongside.
            content = UNSAFE_ERROR if outcome.code == "unsafe_prompt" else f"Error: {outcome}"
            error = {"message": str(outcome), "type": "invalid_request_error", "code": outcome.code}
            conversation.append({"role": "Assistant", "content": content, "error": error})
        else:
            conversation.append({"role": "Assistant", "content": outcome})
        results.append(conversation)
    return {"results": results, **service.identity()}


@router.post("/generate")
async def generate(body: GenerateRequest, http: Request) -> dict:
    """Plain text completion of every prompt, batched together."""
    service = _service(http)
    service.require_ready()
    params = service.sampling(_llama_sampling(body.parameters))
    prompt_ids = [await service.text_prompt(p, params.max_new_tokens) for p in body.prompts]
    requests = service.submit_many([WorkItem(ids, params) for ids in prompt_ids])
    answers = [check_finished(f).text for f in await wait_finished(requests, http)]
    return {
        "results": [{"prompt": p, "response": a} for p, a in zip(body.prompts, answers, strict=True)],
        **service.identity(),
    }
