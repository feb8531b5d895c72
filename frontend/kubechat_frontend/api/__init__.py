"""The JSON API for programs: chat (whole or streamed), session history and ending, the model list."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, g, jsonify, request

from kubechat_frontend import budgets, conversations, ratelimit
from kubechat_frontend.auth import Identity, presented_key
from kubechat_frontend.chat import waking
from kubechat_frontend.errors import ApiError
from kubechat_frontend.logs import log_fields
from kubechat_frontend.services import services
from kubechat_frontend.store import Conversation

bp = Blueprint("api", __name__)


@bp.before_request
def authenticate() -> None:
    """Every API call: identify the caller by key (or IP when no keys are configured), then count it."""
    svc = services()
    identity = svc.keys.identify(presented_key(request), request.remote_addr or "")
    g.identity = identity
    log_fields()["caller"] = identity.id
    if not identity.admin:
        ratelimit.enforce(svc.store, identity.id, svc.settings["RATE_LIMIT"])


def meter_tokens() -> None:
    """A call that asks a model: refused when the caller's key used up its token budget, else metered.
    Budgets are per API key (the keys file's line, else `TOKEN_BUDGET`), not per address or for the admin."""
    identity: Identity = g.identity
    if identity.id.startswith("key:"):
        svc = services()
        budget = svc.settings["TOKEN_BUDGET"] if identity.token_budget is None else identity.token_budget
        budgets.enforce(svc.store, identity.id, budget, svc.settings["TOKEN_BUDGET_PERIOD_S"])


def json_body() -> dict[str, Any]:
    body = request.get_json(silent=True)
    if not isinstance(body, dict):
        raise ApiError(400, "The request body must be a JSON object.", "invalid_json")
    return body


def owned_conversation(session_id: str) -> Conversation:
    """The caller's conversation (any conversation for the admin key); 404 otherwise, so ids never leak."""
    conversation = services().store.get_conversation(session_id)
    identity: Identity = g.identity
    if conversation is None or not (identity.admin or conversation.owner == identity.id):
        raise ApiError(404, "No such session.", "session_not_found")
    log_fields()["session"] = conversation.id
    return conversation


def turn_from_request(*, stream: bool) -> conversations.Turn:
    """Validate the chat request, find or start its session, and start asking the model."""
    conversation, text = conversation_from_request()
    return conversations.Turn(services(), conversation, text, stream=stream)


def conversation_from_request() -> tuple[Conversation, str]:
    """Validate the chat request (and the caller's token budget); its session, found or started, and text."""
    svc = services()
    meter_tokens()
    body = json_body()
    text = conversations.validate_message(body.get("message"), svc.settings["MAX_MESSAGE_CHARS"])
    if body.get("session_id"):
        conversation = owned_conversation(str(body["session_id"]))
        if body.get("model") and svc.models.resolve(body["model"]) != conversation.model:
            raise ApiError(
                409, "A session keeps the model it started with; start a new session.", "model_mismatch"
            )
    else:
        conversation = conversations.start(svc, g.identity.id, body.get("model"), body.get("persona"))
        log_fields()["session"] = conversation.id
    log_fields()["model"] = conversation.model
    return conversation, text


@bp.post("/api/chat")
def chat() -> Response:
    turn = turn_from_request(stream=False)  # the whole answer is all this caller wants
    answer = conversations.collect(turn)
    o = turn.origin
    log_fields().update(pod=o.pod, node=o.node, upstream_ms=turn.upstream_ms)
    response = jsonify(
        session_id=turn.conversation.id, response=answer, pod=o.pod, node=o.node, model=o.model,
        saved=turn.saved,
    )  # fmt: skip
    # The model server's share, so that clients (and bench/frontend) can tell it from the frontend's own.
    response.headers["Server-Timing"] = f"upstream;dur={turn.upstream_ms}"
    return response


@bp.post("/api/chat/stream")
def chat_stream() -> Response:
    """As the page's send: `waking` events first while the model has no ready pod (the terminal client shows
    them), then the answer's."""
    conversation, text = conversation_from_request()
    svc = services()
    return waking.answer(
        svc, conversation.model, lambda: conversations.Turn(svc, conversation, text), log_fields()
    )


@bp.get("/api/sessions/<session_id>")
def history(session_id: str) -> Response:
    conversation = owned_conversation(session_id)
    messages = services().store.messages(conversation.id)
    return jsonify(
        session_id=conversation.id,
        owner=conversation.owner,
        model=conversation.model,
        persona=conversation.persona,
        messages=[m.to_dict() for m in messages],
    )


@bp.delete("/api/sessions/<session_id>")
def end_session(session_id: str) -> Response:
    conversation = owned_conversation(session_id)
    services().store.delete_conversation(conversation.id)
    return Response(status=204)


@bp.get("/api/models")
def models() -> Response:
    svc = services()
    return jsonify(
        models=[{"name": n, "default": n == svc.models.default} for n in svc.models.names],
        personas=[p["name"] for p in svc.settings["PERSONAS"]],
    )
