"""A generation request as the engine sees it, and the events it sends back to the HTTP side."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field

from kubechat_server.engine.sampling import SamplingParams, TokenLogprob


@dataclass(frozen=True)
class TextDelta:
    """New text of one request (already checked against its stop strings), with the log-probabilities of
    the tokens it came from when the request asked for them."""

    text: str
    logprobs: tuple[TokenLogprob, ...] = ()


@dataclass(frozen=True)
class Finished:
    """The request is done (``reason``: stop, length, cancelled, timeout, error); ``text`` is the answer."""

    reason: str
    text: str
    prompt_tokens: int
    completion_tokens: int
    error: str = ""
    logprobs: tuple[TokenLogprob, ...] = ()


@dataclass
class GenerationRequest:
    """Token ids in, events out, handed to the asyncio loop that submitted the request. Text deltas are
    sent only with ``streams_text``: every event wakes that loop, which a non-streaming request needs not."""

    prompt_ids: list[int]
    params: SamplingParams
    loop: asyncio.AbstractEventLoop
    deadline: float
    streams_text: bool = False
    hide_scratchpad: bool = False
    submitted: float = field(default_factory=time.monotonic)
    first_token_at: float | None = None
    events: asyncio.Queue = field(default_factory=asyncio.Queue)
    cancelled: threading.Event = field(default_factory=threading.Event)
    on_finish: Callable[[GenerationRequest, Finished], None] | None = None

    def emit(self, event: TextDelta | Finished) -> None:
        """Called from the engine thread."""
        if isinstance(event, Finished) and self.on_finish is not None:
            self.on_finish(self, event)
        self.loop.call_soon_threadsafe(self.events.put_nowait, event)

    def cancel(self) -> None:
        """The client went away: the engine drops the row at its next step."""
        self.cancelled.set()

    async def stream(self) -> AsyncIterator[TextDelta | Finished]:
        """Events until (and including) ``Finished``."""
        while True:
            event = await self.events.get()
            yield event
            if isinstance(event, Finished):
                return

    async def result(self) -> Finished:
        """Wait for the whole answer."""
        async for event in self.stream():
            if isinstance(event, Finished):
                return event
        raise RuntimeError("stream ended without a result")  # pragma: no cover - stream() always finishes
