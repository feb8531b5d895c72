"""Many long streams at once through one frontend in its default gunicorn configuration (2 gthread workers x
512 threads): 300 chats whose answers stream slowly are all held open together, and every one ends well.

The upstream is `tests.support.fake_upstream.hostile_model` pausing between pieces, so each answer stays open
for tens of seconds whatever the machine's speed (a real tiny model answers in a fraction of a second, and
300 of them would not overlap). How fast the frontend relays is measured in bench/frontend/streams.py.
"""

from __future__ import annotations

import asyncio
import json

import httpx
import pytest

from tests.support.fake_upstream import hostile_model
from tests.support.frontend import run_frontend

pytestmark = pytest.mark.slow

STREAMS = 300
PIECES = [f"part {i} " for i in range(6)]
PAUSE_S = 6.0  # the whole answer takes 30 s: far longer than 300 clients need to connect


async def chat(client: httpx.AsyncClient, url: str, first_pieces: list[int], finished: list[int]) -> str:
    """One streamed chat; records when its first piece came (how many had finished then) and its end."""
    text = ""
    async with client.stream(
        "POST", url + "/api/chat/stream", json={"message": "tell me slowly"}
    ) as response:
        if response.status_code != 200:
            await response.aread()
            return f"HTTP {response.status_code}: {response.text[:200]}"
        async for line in response.aiter_lines():
            if not line.startswith("data:"):
                continue
            event = json.loads(line[5:])
            if event["type"] == "delta":
                if not text:
                    first_pieces.append(len(finished))
                text += event["text"]
            elif event["type"] == "error":
                return f"error event {event}"
            elif event["type"] == "done":
                finished.append(1)
                return "" if text == "".join(PIECES) else f"answer cut: {text!r}"
    return "stream ended without done"


async def all_at_once(url: str) -> tuple[list[str], list[int]]:
    first_pieces: list[int] = []
    finished: list[int] = []
    limits = httpx.Limits(max_connections=STREAMS + 10)
    async with httpx.AsyncClient(limits=limits, timeout=httpx.Timeout(120, connect=60)) as client:
        problems = await asyncio.gather(*(chat(client, url, first_pieces, finished) for _ in range(STREAMS)))
    return [p for p in problems if p], first_pieces


def test_three_hundred_slow_streams_are_held_open_together_by_the_default_configuration(tmp_path):
    with (
        hostile_model(PIECES, pause_s=PAUSE_S) as upstream,
        run_frontend(
            {"STORE": f"sqlite:///{tmp_path}/history.db", "MODELS": [{"name": "slow", "url": upstream}],
             "SECRET_KEY": "test-secret", "RATE_LIMIT": 0},
            tmp_path / "frontend.log", workers=None, threads=None,  # gunicorn as a pod runs it
        ) as frontend,
    ):  # fmt: skip
        problems, first_pieces = asyncio.run(all_at_once(frontend.url))
        assert problems == []
        # Every chat had its first piece before any had finished: all 300 were open at once, none waited
        # for another's thread (with 2 x 64 threads, 172 of them waited a whole answer for one).
        assert len(first_pieces) == STREAMS and max(first_pieces) == 0
        errors = [line for line in frontend.log_lines() if line.get("level") == "error"]
        assert errors == []
