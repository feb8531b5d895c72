"""The chat page: one conversation per browser session, kept server-side, found through the session cookie."""

from __future__ import annotations

from flask import Blueprint, Response, redirect, render_template, request, session, url_for

from kubechat_frontend import conversations, ratelimit
from kubechat_frontend.chat import waking
from kubechat_frontend.errors import ApiError
from kubechat_frontend.logs import log_fields
from kubechat_frontend.services import services
from kubechat_frontend.store import Conversation

bp = Blueprint("chat", __name__)

PAGE_OWNER = "page"


def current_conversation() -> Conversation | None:
    """The conversation this browser's (signed) session cookie names, if it still exists."""
    conversation_id = session.get("conversation")
    if not conversation_id:
        return None
    conversation = services().store.get_conversation(conversation_id)
    if conversation is None or conversation.owner != PAGE_OWNER:
        session.pop("conversation", None)
        return None
    log_fields()["session"] = conversation.id
    return conversation


def remember(conversation: Conversation) -> None:
    session["conversation"] = conversation.id
    session.permanent = True  # history outlives a browser restart (PERMANENT_SESSION_LIFETIME)


def end_current() -> None:
    conversation = current_conversation()
    if conversation is not None:
        services().store.delete_conversation(conversation.id)
    session.pop("conversation", None)


@bp.get("/")
def page() -> str:
    svc = services()
    conversation = current_conversation()
    messages = svc.store.messages(conversation.id) if conversation else []
    return render_template(
        "chat.html",
        settings=svc.settings,
        models=svc.models.names,
        default_model=svc.models.default,
        personas=svc.settings["PERSONAS"],
        conversation=conversation,
        messages=messages,
    )


def limit_page_client() -> None:
    """Every page POST counts against the client's per-minute budget (sends, new chats, ends alike)."""
    svc = services()
    ratelimit.enforce(svc.store, f"ip:{request.remote_addr}", svc.settings["RATE_LIMIT"])


@bp.post("/new")
def new_conversation() -> Response:
    """Form: end this browser's conversation and start one with the picked model and persona."""
    limit_page_client()
    svc = services()
    # Start the new one first: a bad pick is refused before anything is ended.
    conversation = conversations.start(
        svc, PAGE_OWNER, request.form.get("model") or None, request.form.get("persona") or None
    )
    end_current()
    remember(conversation)
    return redirect(url_for("chat.page"), code=303)


@bp.post("/end")
def end() -> Response:
    """Form: end (delete) this browser's conversation."""
    limit_page_client()
    end_current()
    return redirect(url_for("chat.page"), code=303)


@bp.post("/chat/send")
def send() -> Response:
    """The page's script posts `{message}` here (CSRF token in a header) and reads the answer as events;
    `{regenerate: true}` answers the last question again, replacing the last answer once the new one is
    saved."""
    limit_page_client()
    svc = services()
    body = request.get_json(silent=True)
    if not isinstance(body, dict):
        raise ApiError(400, "The request body must be a JSON object.", "invalid_json")
    regenerate = body.get("regenerate") is True
    text = (
        ""
        if regenerate
        else conversations.validate_message(body.get("message"), svc.settings["MAX_MESSAGE_CHARS"])
    )
    conversation = current_conversation()
    if conversation is None:
        if regenerate:
            raise ApiError(409, "There is no answer to regenerate yet.", "nothing_to_regenerate")
        conversation = conversations.start(svc, PAGE_OWNER)
        remember(conversation)
    log_fields().update(session=conversation.id, model=conversation.model)

    def start_turn() -> conversations.Turn:
        return conversations.Turn(svc, conversation, text, regenerate=regenerate)

    return waking.answer(svc, conversation.model, start_turn, log_fields())
