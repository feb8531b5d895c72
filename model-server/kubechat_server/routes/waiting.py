"""Waiting for generation results on behalf of an HTTP request (cancelling when the client goes away)."""

from __future__ import annotations

import asyncio

from fastapi import Request

from kubechat_server.engine.requests import Finished, GenerationRequest
from kubechat_server.errors import APIError

DISCONNECT_POLL_S = 0.25


async def wait_finished(requests: list[GenerationRequest], http: Request) -> list[Finished]:
    """All results, in order; if the client disconnects first, the requests are cancelled in the engine."""
    tasks = [asyncio.ensure_future(r.result()) for r in requests]
    pending = set(tasks)
    while pending:
        _, pending = await asyncio.wait(pending, timeout=DISCONNECT_POLL_S)
        if pending and await http.is_disconnected():
            for request in requests:
                request.cancel()
    return [t.result() for t in tasks]


def check_finished(finished: Finished) -> Finished:
    """Turn a generation that did not complete into the error the client sees."""
    if finished.reason == "timeout":
        raise APIError(504, "the request timed out while generating", "timeout", "timeout_error")
    if finished.reason == "error":
        raise APIError(500, f"generation failed: {finished.error}", "generation_failed", "server_error")
    if finished.reason == "cancelled":
        raise APIError(503, "the request was cancelled", "cancelled", "service_unavailable")
    return finished
