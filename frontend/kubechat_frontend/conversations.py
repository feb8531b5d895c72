"""A chat turn, the same for the page and the API: read history, ask the model, stream, then save the turn."""

from __future__ import annotations

import json
import logging
import secrets
import time
from collections.abc import Iterator
from contextlib import closing
from dataclasses import dataclass
from typing import Any

from flask import Response

from kubechat_frontend import metrics
from kubechat_frontend.errors import ApiError
from kubechat_frontend.scratchpad import ScratchpadFilter
from kubechat_frontend.services import Services
from kubechat_frontend.store import Conversation, Message
from kubechat_frontend.store.base import title_from
from kubechat_frontend.text import clean_text
from kubechat_frontend.upstream import ChatStream, Delta, Origin

log = logging.getLogger("kubechat_frontend")

# Waits between tries of saving a finished turn: a store restart or a pool reconnect is over in about this
# long, and the user is still looking at the answer meanwhile.
SAVE_BACKOFF_S = (0.5, 1.0, 2.0, 4.0)

UNSAVED_MESSAGE = (
    "This answer could not be saved (the history store did not answer); it stays on this page but will be "
    "missing after a reload."
)


@dataclass(frozen=True)
class Unsaved:
    """The answer was given in full but could not be saved after retries; the client should say so."""

    message: str = UNSAVED_MESSAGE


def validate_message(text: Any, max_chars: int) -> str:
    """The user's message (cleaned of control characters), or 400 when it is missing or empty and 413 when
    it is longer than allowed."""
    if isinstance(text, str):
        text = clean_text(text)
    if not isinstance(text, str) or not text.strip():
        raise ApiError(400, "The message is empty.", "empty_message")
    if len(text) > max_chars:
        raise ApiError(413, f"The message is longer than {max_chars} characters.", "message_too_long")
    return text


def start(
    services: Services, owner: str, model: str | None = None, persona: str | None = None
) -> Conversation:
    """A new conversation with the chosen (or default) model and persona ("" = the model's own)."""
    persona = persona or ""
    # Any JSON may arrive as the name (a list, an object): only a string can name a persona.
    if not isinstance(persona, str) or (persona and persona not in services.personas):
        raise ApiError(400, f"Unknown persona {persona!r}.", "unknown_persona")
    conversation = Conversation(
        id=secrets.token_urlsafe(18), owner=owner, model=services.models.resolve(model), persona=persona
    )
    services.store.create_conversation(conversation)
    return conversation


class Turn:
    """One question being answered. Iterate `events()`; the turn is saved when the answer ends, or with what
    was said so far when the client stops listening. A model error saves nothing: the history stays as it was
    and the client can send the same message again."""

    def __init__(
        self,
        services: Services,
        conversation: Conversation,
        text: str,
        *,
        stream: bool = True,
        model: str | None = None,
        persona: dict[str, Any] | None = None,
        regenerate: bool = False,
    ) -> None:
        """`model` and `persona` override the conversation's (the seed gateway names them per request).
        `regenerate`: answer the last question again (`text` is ignored); the new answer replaces the old
        turn when it is saved, so a failed regeneration loses nothing."""
        self.conversation = conversation
        self._store = services.store
        self._save_retries = services.settings["SAVE_RETRIES"]
        self.saved = True
        self._replace_last = 2 if regenerate else 0
        history = self._store.messages(
            conversation.id, last=services.settings["MAX_HISTORY_TURNS"] * 2 + self._replace_last
        )
        if regenerate:
            if len(history) < 2 or (history[-2].role, history[-1].role) != ("user", "assistant"):
                raise ApiError(409, "There is no answer to regenerate yet.", "nothing_to_regenerate")
            text, history = history[-2].content, history[:-2]
        self._text = text
        prompt = [{"role": m.role, "content": m.content} for m in history] + [
            {"role": "user", "content": text}
        ]
        persona = persona or services.personas.get(conversation.persona)
        # A scratchpad persona (the frontend's, or its ChatModel's own) thinks in the open: what it thinks is
        # cut before anyone sees or saves it.
        self._pad = ScratchpadFilter()
        model = model or conversation.model
        self.started = time.perf_counter()
        self._stream: ChatStream = services.models.chat(model, prompt, persona, stream=stream)
        self.origin = Origin("", "", model)
        # The model server's own share of the turn: from sending the request to its last byte.
        self.upstream_ms: float | None = None

    def events(self) -> Iterator[Delta | Origin | Unsaved]:
        parts: list[str] = []
        stopped = False
        try:
            for event in self._stream:
                if isinstance(event, Origin):
                    self.origin = Origin(event.pod, event.node, event.model or self.origin.model)
                    yield self.origin
                else:
                    shown = self._pad.feed(event.text)
                    if shown:
                        parts.append(shown)
                        yield Delta(shown)
            tail = self._pad.end()
            if tail:
                parts.append(tail)
                yield Delta(tail)
        except GeneratorExit:
            stopped = True  # by the user: keep what they saw
            raise
        finally:
            self.upstream_ms = round((time.perf_counter() - self.started) * 1000, 2)
            metrics.UPSTREAM.observe(self.upstream_ms / 1000)
            self._stream.close()
            if stopped and parts:
                self._save("".join(parts))
        # The whole answer has been read: save it, and if the store keeps failing say so, keeping the answer.
        if not self._save("".join(parts)):
            yield Unsaved()

    def close(self) -> None:
        """Let go of the model's answer if `events()` never ran (the client left before the first byte)."""
        self._stream.close()

    def _save(self, answer: str) -> bool:
        """Save the turn, retrying while the store blips; False (and logged) if it never took it."""
        o = self.origin
        turn = [
            Message("user", self._text),
            Message("assistant", answer, pod=o.pod, node=o.node, model=o.model),
        ]
        failure = ""
        for pause in (*SAVE_BACKOFF_S[: self._save_retries], None):
            try:
                kept = self._store.add_messages(
                    self.conversation.id, turn, replace_last=self._replace_last, title=title_from(self._text)
                )
                if not kept:  # the user deleted the conversation while it was answered: nothing to keep
                    log.info("turn of %s dropped: the conversation was deleted", self.conversation.id)
                return True
            except Exception as error:  # any driver's error: the store is down, the answer must not be
                failure = f"{type(error).__name__}: {error}"
                if pause is not None:
                    time.sleep(pause)
        log.error("turn of %s not saved after retries: %s", self.conversation.id, failure)
        self.saved = False
        return False


def sse(event: dict[str, Any]) -> str:
    return f"data: {json.dumps(event)}\n\n"


def error_event(error: ApiError) -> dict[str, Any]:
    """A stream's `error` event: the JSON error's message and code, under the event's own `type` (the error's
    `type` field, invalid_request_error or server_error, would otherwise hide that it is an error)."""
    return {
        **error.to_dict()["error"],
        "type": "error",
        "status": error.status,
        "retry_after": error.retry_after,
    }


def sse_response(turn: Turn, log: dict[str, Any]) -> Response:
    """The streamed answer as an HTTP response; the model's stream is released however the response ends."""
    response = Response(
        sse_events(turn, log),
        mimetype="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )
    response.call_on_close(turn.close)
    return response


def sse_events(turn: Turn, log: dict[str, Any]) -> Iterator[str]:
    """The turn as server-sent events: `meta` (conversation, pod, node, model), `delta`s, then `done` or
    `error`. `log` is the request's log entry, which learns the answering pod."""
    events = turn.events()
    metrics.OPEN_STREAMS.inc()
    first = True
    try:
        for event in events:
            if isinstance(event, Origin):
                log.update(pod=event.pod, node=event.node)
                yield sse(
                    {"type": "meta", "session_id": turn.conversation.id, "pod": event.pod, "node": event.node,
                     "model": event.model}
                )  # fmt: skip
            elif isinstance(event, Unsaved):
                log["saved"] = False
                yield sse({"type": "notice", "code": "history_not_saved", "message": event.message})
            else:
                if first:
                    first = False
                    metrics.FIRST_TOKEN.observe(time.perf_counter() - turn.started)
                yield sse({"type": "delta", "text": event.text})
        yield sse({"type": "done"})
    except ApiError as error:
        log["stream_error"] = error.code
        yield sse(error_event(error))
    finally:
        metrics.OPEN_STREAMS.dec()
        events.close()  # at once, not when garbage is collected: a stopped answer is saved right away
        log["upstream_ms"] = turn.upstream_ms


def collect(turn: Turn) -> str:
    """The whole answer, for callers that do not stream."""
    with closing(turn.events()) as events:
        return "".join(event.text for event in events if isinstance(event, Delta))
