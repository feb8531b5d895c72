"""The page's list of conversations as JSON, for its script: list, start, rename, delete.

Page routes, so the session cookie says whose list it is and changes carry the CSRF token (header
`X-CSRFToken`), as `/chat/send` does. Opening one is a plain link, `GET /c/<id>` (chat/__init__.py).
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from flask import Response, jsonify, request, session

from kubechat_frontend.chat import bp, limit_page_client, owned, page_owner, start_new
from kubechat_frontend.errors import ApiError
from kubechat_frontend.services import services
from kubechat_frontend.store import Conversation
from kubechat_frontend.text import clean_text

# A renamed title may be longer than a made one (the first question, cut at 60), but stays one line.
MAX_TITLE_CHARS = 120


def as_json(conversation: Conversation) -> dict[str, Any]:
    return {
        "id": conversation.id,
        "title": conversation.title,
        "model": conversation.model,
        "persona": conversation.persona,
        "created": conversation.created,
        "updated": conversation.last_active,
        "open": conversation.id == session.get("conversation"),
    }


def json_body() -> dict[str, Any]:
    body = request.get_json(silent=True)
    if not isinstance(body, dict):
        raise ApiError(400, "The request body must be a JSON object.", "invalid_json")
    return body


def this_browsers(conversation_id: str) -> Conversation:
    conversation = owned(conversation_id)
    if conversation is None:
        raise ApiError(404, "No such conversation.", "conversation_not_found")
    return conversation


@bp.get("/chat/conversations")
def list_conversations() -> Response:
    """`{conversations: [{id, title, model, persona, created, updated, open}]}`, most recent first."""
    found = services().store.list_conversations(page_owner())
    return jsonify(conversations=[as_json(c) for c in found])


@bp.post("/chat/conversations")
def create() -> tuple[Response, int]:
    """`{model?, persona?}` → 201 and the new conversation, now the open one."""
    limit_page_client()
    body = json_body()
    conversation = start_new(body.get("model") or None, body.get("persona") or None)
    return jsonify(as_json(conversation)), 201


@bp.patch("/chat/conversations/<conversation_id>")
def rename(conversation_id: str) -> Response:
    """`{title}` → the renamed conversation; 400 for an empty title, 413 for one too long."""
    limit_page_client()
    title = json_body().get("title")
    title = " ".join(clean_text(title).split()) if isinstance(title, str) else ""
    if not title:
        raise ApiError(400, "The title is empty.", "empty_title")
    if len(title) > MAX_TITLE_CHARS:
        raise ApiError(413, f"The title is longer than {MAX_TITLE_CHARS} characters.", "title_too_long")
    conversation = this_browsers(conversation_id)
    if not services().store.rename_conversation(conversation.id, title):
        raise ApiError(404, "No such conversation.", "conversation_not_found")
    return jsonify(as_json(replace(conversation, title=title)))


@bp.delete("/chat/conversations/<conversation_id>")
def delete(conversation_id: str) -> Response:
    """Delete the conversation and its messages for good: 204."""
    limit_page_client()
    conversation = this_browsers(conversation_id)
    services().store.delete_conversation(conversation.id)
    if session.get("conversation") == conversation.id:
        session.pop("conversation", None)
    return Response(status=204)
