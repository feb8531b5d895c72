"""The chat page: a browser's conversations, kept server-side, found through its signed session cookie.

Each browser gets a random id in its session (`page:<id>` owns its conversations), so it can keep several;
the session also names the conversation last opened, where `GET /` lands. Conversations made before
browsers had their own lists were all owned by `page`: the browser whose cookie names one adopts it.
"""

from __future__ import annotations

import secrets

from flask import Blueprint, Response, redirect, render_template, request, session, url_for

from kubechat_frontend import conversations, ratelimit
from kubechat_frontend.chat import waking
from kubechat_frontend.errors import ApiError
from kubechat_frontend.logs import log_fields
from kubechat_frontend.services import services
from kubechat_frontend.store import Conversation

bp = Blueprint("chat", __name__)

LEGACY_PAGE_OWNER = "page"


def page_owner() -> str:
    """This browser's owner name, made (and kept in its session) on its first visit."""
    if "browser" not in session:
        session["browser"] = secrets.token_urlsafe(18)
        session.permanent = True  # history outlives a browser restart (PERMANENT_SESSION_LIFETIME)
    return f"page:{session['browser']}"


def owned(conversation_id: str | None) -> Conversation | None:
    """The conversation if it is this browser's (adopting one from before lists that its cookie named)."""
    if not conversation_id:
        return None
    store = services().store
    conversation = store.get_conversation(conversation_id)
    if conversation is None:
        return None
    owner = page_owner()
    legacy = conversation.owner == LEGACY_PAGE_OWNER and session.get("conversation") == conversation_id
    if legacy and store.change_owner(conversation_id, LEGACY_PAGE_OWNER, owner):
        conversation = store.get_conversation(conversation_id)
    if conversation is None or conversation.owner != owner:
        return None
    log_fields()["session"] = conversation.id
    return conversation


def current_conversation() -> Conversation | None:
    """The conversation this browser opened last, if it still exists."""
    conversation = owned(session.get("conversation"))
    if conversation is None:
        session.pop("conversation", None)
    return conversation


def remember(conversation: Conversation) -> None:
    session["conversation"] = conversation.id
    session.permanent = True


def start_new(model: str | None, persona: str | None) -> Conversation:
    """A new conversation for this browser, opened. The one open before stays in the list unless it has
    no messages (an empty conversation is not worth a line)."""
    svc = services()
    # Start the new one first: a bad pick is refused before anything changes.
    conversation = conversations.start(svc, page_owner(), model, persona)
    previous = current_conversation()
    if previous is not None and not svc.store.messages(previous.id, last=1):
        svc.store.delete_conversation(previous.id)
    remember(conversation)
    return conversation


def render_page(conversation: Conversation | None) -> str:
    svc = services()
    return render_template(
        "chat.html",
        settings=svc.settings,
        models=svc.models.names,
        default_model=svc.models.default,
        personas=svc.settings["PERSONAS"],
        conversation=conversation,
        messages=svc.store.messages(conversation.id) if conversation else [],
    )


@bp.get("/")
def page() -> str:
    return render_page(current_conversation())


@bp.get("/c/<conversation_id>")
def open_conversation(conversation_id: str) -> str | Response:
    """One of this browser's conversations (a link of the list); it becomes the one `/` shows."""
    conversation = owned(conversation_id)
    if conversation is None:  # deleted meanwhile, or another browser's: the page as it is
        return redirect(url_for("chat.page"), code=303)
    remember(conversation)
    return render_page(conversation)


def limit_page_client() -> None:
    """Every page POST counts against the client's per-minute budget (sends, new chats, ends alike)."""
    svc = services()
    ratelimit.enforce(svc.store, f"ip:{request.remote_addr}", svc.settings["RATE_LIMIT"])


@bp.post("/new")
def new_conversation() -> Response:
    """Form: start a conversation with the picked model and persona (the open one stays in the list)."""
    limit_page_client()
    start_new(request.form.get("model") or None, request.form.get("persona") or None)
    return redirect(url_for("chat.page"), code=303)


@bp.post("/end")
def end() -> Response:
    """Form: end (delete) the conversation this browser has open."""
    limit_page_client()
    conversation = current_conversation()
    if conversation is not None:
        services().store.delete_conversation(conversation.id)
    session.pop("conversation", None)
    return redirect(url_for("chat.page"), code=303)


@bp.post("/chat/send")
def send() -> Response:
    """The page's script posts `{message, conversation_id}` here (CSRF token in a header) and reads the
    answer as events; `{regenerate: true}` answers the last question again, replacing the last answer once
    the new one is saved. Without `conversation_id`, the conversation open last (or a new one)."""
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
    if body.get("conversation_id"):
        conversation = owned(str(body["conversation_id"]))
        if conversation is None:
            raise ApiError(404, "This conversation was deleted.", "conversation_not_found")
    else:
        conversation = current_conversation()
    if conversation is None:
        if regenerate:
            raise ApiError(409, "There is no answer to regenerate yet.", "nothing_to_regenerate")
        conversation = conversations.start(svc, page_owner())
    remember(conversation)
    log_fields().update(session=conversation.id, model=conversation.model)

    def start_turn() -> conversations.Turn:
        return conversations.Turn(svc, conversation, text, regenerate=regenerate)

    return waking.answer(svc, conversation.model, start_turn, log_fields())


from kubechat_frontend.chat import manage  # noqa: E402, F401 - adds the list's JSON routes to `bp`
