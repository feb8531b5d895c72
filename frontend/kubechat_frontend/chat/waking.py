"""The page's (and `/api/chat/stream`'s) answer while its model wakes: `waking` events with what the model
is doing (phase, download %), then the answer streamed in the same response, so the user sees one message go
from "waking" to the answer without a reload."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from flask import Response, stream_with_context

from kubechat_frontend import conversations
from kubechat_frontend.errors import ApiError
from kubechat_frontend.services import Services
from kubechat_frontend.wake import Hold


def answer(
    svc: Services, model: str, start_turn: Callable[[], conversations.Turn], log: dict[str, Any]
) -> Response:
    """The turn's events; when the model has no ready pod, first the waking events while it is waited for."""
    room = svc.models.waiting_room
    if room is None or room.states.current(model) is None:
        return conversations.sse_response(start_turn(), log)
    hold = room.enter(model)  # a full queue is a plain 503, before anything is streamed
    log["waited_for_model"] = True
    response = Response(
        stream_with_context(_wake_then_answer(hold, start_turn, log)),
        mimetype="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )
    response.call_on_close(hold.close)  # a client gone before the first byte gives its place back too
    return response


def _wake_then_answer(
    hold: Hold, start_turn: Callable[[], conversations.Turn], log: dict[str, Any]
) -> Iterator[str]:
    try:
        with hold:
            for waking in hold.progress():
                yield conversations.sse({"type": "waking", "model": hold.model, **waking.to_dict()})
        turn = start_turn()
    except ApiError as error:
        log["stream_error"] = error.code
        yield conversations.sse(conversations.error_event(error))
        return
    try:
        yield from conversations.sse_events(turn, log)
    finally:
        turn.close()
