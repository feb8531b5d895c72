"""The LLM Chat Project seed's gateway API, as its README's curl lines call it.

Keys arrive in a raw `Authorization: <key>` header (a `Bearer ` prefix is accepted too). Users (username,
scrypt password hash, SHA-256 of the API key) and NPCs live in the store; the admin key (the ChatFrontend's
adminKeySecretRef) creates users and reads any user's chat history. A chat is named by the caller's own
`chat_id`, kept apart per user; each message names its model among the ChatFrontend's models.
"""

from __future__ import annotations

import hashlib
import uuid
from dataclasses import dataclass
from typing import Any

from flask import Blueprint, Response, jsonify, request

from kubechat_frontend import budgets, conversations, ratelimit
from kubechat_frontend.auth import digest
from kubechat_frontend.errors import ApiError
from kubechat_frontend.gateway.fields import boolean, text
from kubechat_frontend.logs import log_fields
from kubechat_frontend.services import services
from kubechat_frontend.store import Conversation, Npc

bp = Blueprint("gateway", __name__)


@dataclass(frozen=True)
class Caller:
    username: str
    admin: bool = False
    token_budget: int = 0  # model tokens per budget period; 0 = none (the admin's)


def raw_key() -> str:
    header = request.headers.get("Authorization", "").strip()
    return header[7:].strip() if header.lower().startswith("bearer ") else header


def caller() -> Caller:
    """The admin or the user whose API key is in `Authorization`; 401 without one, 403 for a wrong one."""
    key = raw_key()
    if not key:
        raise ApiError(401, "An API key is required in the Authorization header.", "missing_api_key")
    svc = services()
    if svc.keys.is_admin(key):
        log_fields()["caller"] = "admin"
        return Caller("admin", admin=True)
    user = svc.store.user_by_key(digest(key).hex())
    if user is None:
        raise ApiError(403, "The API key is not valid.", "invalid_api_key")
    log_fields()["caller"] = f"user:{user.username}"
    ratelimit.enforce(svc.store, f"user:{user.username}", svc.settings["RATE_LIMIT"])
    budget = svc.settings["TOKEN_BUDGET"] if user.token_budget is None else user.token_budget
    return Caller(user.username, token_budget=budget)


def admin() -> Caller:
    who = caller()
    if not who.admin:
        raise ApiError(403, "This call needs the admin key.", "admin_only")
    return who


def body() -> dict[str, Any]:
    payload = request.get_json(silent=True)
    if not isinstance(payload, dict):
        raise ApiError(400, "The request body must be a JSON object.", "invalid_json")
    return payload


def chat_conversation_id(username: str, chat_id: str) -> str:
    """The store's id of a user's chat: users pick their own chat ids, so one user's never meets another's."""
    return "npc-" + hashlib.sha256(f"{username}\0{chat_id}".encode()).hexdigest()[:40]


@bp.post("/create_npc/")
def create_npc() -> Response:
    caller()
    payload = body()
    npc = Npc(
        id=str(uuid.uuid4()),
        char_descr=text(payload, "char_descr", 8192),
        world_descr=text(payload, "world_descr", 8192),
        has_scratchpad=boolean(payload, "has_scratchpad"),
    )
    services().store.save_npc(npc)
    return jsonify(status="NPC successfully saved", npc_id=npc.id)


@bp.post("/chat_npc/")
def chat_npc() -> Response:
    who = caller()
    svc = services()
    budgets.enforce(
        svc.store, f"user:{who.username}", who.token_budget, svc.settings["TOKEN_BUDGET_PERIOD_S"]
    )
    payload = body()
    chat_id = text(payload, "chat_id", 256)
    npc = svc.store.get_npc(text(payload, "npc_id", 256))
    if npc is None:
        raise ApiError(404, "No such NPC; create it with POST /create_npc/.", "npc_not_found")
    message = conversations.validate_message(payload.get("message"), svc.settings["MAX_MESSAGE_CHARS"])
    model = svc.models.resolve(payload.get("model"))
    conversation_id = chat_conversation_id(who.username, chat_id)
    conversation = svc.store.get_conversation(conversation_id)
    if conversation is None:
        conversation = Conversation(conversation_id, f"user:{who.username}", model, persona=f"npc:{npc.id}")
        svc.store.create_conversation(conversation)
    elif conversation.persona != f"npc:{npc.id}":
        raise ApiError(409, "This chat_id is a chat with another NPC; use a new chat_id.", "npc_mismatch")
    log_fields().update(session=conversation.id, model=model)
    persona = {"character": npc.char_descr, "world": npc.world_descr, "scratchpad": npc.has_scratchpad}
    turn = conversations.Turn(svc, conversation, message, model=model, persona=persona)
    answer = conversations.collect(turn)
    o = turn.origin
    log_fields().update(pod=o.pod, node=o.node, upstream_ms=turn.upstream_ms)
    return jsonify(
        chat_id=chat_id, npc_id=npc.id, model=model, response=answer, pod=o.pod, node=o.node, saved=turn.saved
    )


@bp.post("/end_chat_session/")
def end_chat_session() -> Response:
    who = caller()
    chat_id = request.args.get("chat_id", "")
    if not chat_id:
        raise ApiError(400, "Name the chat: POST /end_chat_session/?chat_id=...", "missing_chat_id")
    if not services().store.delete_conversation(chat_conversation_id(who.username, chat_id)):
        raise ApiError(404, "No such chat session.", "session_not_found")
    return jsonify(status="Chat session ended", chat_id=chat_id)


@bp.get("/chat/<user_token>/<chat_id>/history")
def chat_history(user_token: str, chat_id: str) -> Response:
    admin()
    store = services().store
    user = store.user_by_key(digest(user_token).hex())
    conversation = store.get_conversation(chat_conversation_id(user.username, chat_id)) if user else None
    if user is None or conversation is None:
        raise ApiError(404, "No such chat for that user.", "session_not_found")
    return jsonify(
        chat_id=chat_id,
        username=user.username,
        npc_id=conversation.persona.removeprefix("npc:"),
        history=[
            {"role": m.role, "content": m.content, "model": m.model, "created": m.created}
            for m in store.messages(conversation.id)
        ],
    )
