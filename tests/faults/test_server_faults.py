"""Model-server faults beyond the server's own lifecycle tests (queue full -> 429, timeout -> 504, SIGTERM
drain are in tests/integration/server/test_server_lifecycle.py): clients that walk away mid-generation, and
a server that stays healthy after a flood, timeouts and walk-aways together."""

from __future__ import annotations

import re
import socket
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from tests.support.model_server import RunningServer, running_model_server
from tests.support.tiny_models import tiny_model_dir

pytestmark = pytest.mark.slow

# Greedy, so the tiny model's answer is the same every time: without cancellation it runs the full length.
LONG = {
    "messages": [{"role": "user", "content": "Tell me a long story"}],
    "max_tokens": 1500,
    "temperature": 0,
}
SHORT = {"messages": [{"role": "user", "content": "Hello"}], "max_tokens": 4}


@pytest.fixture(scope="module")
def one_slot_server() -> Iterator[RunningServer]:
    """One generation at a time, so a slot still held by an abandoned request would block the next one."""
    args = ["--max-batch-size", "1", "--max-queue", "4", "--request-timeout-s", "300"]
    with running_model_server(tiny_model_dir("llama"), args=args) as server:
        yield server


def generated_tokens(server: RunningServer) -> float:
    text = requests.get(f"{server.url}/metrics", timeout=10).text
    return float(re.search(r"^kubechat_generated_tokens_total (\S+)$", text, re.M).group(1))


def queue_depth(server: RunningServer) -> float:
    text = requests.get(f"{server.url}/metrics", timeout=10).text
    return float(re.search(r"^kubechat_queue_depth (\S+)$", text, re.M).group(1))


def chat(server: RunningServer, body: dict, timeout: float = 120) -> requests.Response:
    return requests.post(f"{server.url}/v1/chat/completions", json=body, timeout=timeout)


def settle(server: RunningServer) -> float:
    """The token counter once it has stopped moving (the abandoned row has left the batch)."""
    last = generated_tokens(server)
    while True:
        time.sleep(0.5)
        now = generated_tokens(server)
        if now == last:
            return now
        last = now


@pytest.fixture(scope="module")
def full_answer_s(one_slot_server) -> float:
    """How long the uncancelled answer takes: what a slot held by a walked-away client would cost."""
    started = time.monotonic()
    response = chat(one_slot_server, LONG)
    assert response.json()["usage"]["completion_tokens"] == LONG["max_tokens"], response.text
    print(f"full {LONG['max_tokens']}-token answer: {time.monotonic() - started:.2f} s")
    return time.monotonic() - started


def test_client_that_drops_a_stream_frees_its_slot_and_generation_stops(
    one_slot_server, full_answer_s
) -> None:
    full_s = full_answer_s
    before = generated_tokens(one_slot_server)
    stream = requests.post(
        f"{one_slot_server.url}/v1/chat/completions", json={**LONG, "stream": True}, stream=True, timeout=60
    )
    lines = stream.iter_lines(decode_unicode=True)
    assert next(line for line in lines if line.startswith("data: ") and '"content"' in line)
    dropped_at = time.monotonic()
    stream.close()  # the client goes away mid-answer

    answer = chat(one_slot_server, SHORT)
    waited_s = time.monotonic() - dropped_at
    assert answer.status_code == 200, answer.text
    spent = settle(one_slot_server) - before - answer.json()["usage"]["completion_tokens"]
    print(f"slot free {waited_s:.2f} s after the drop (full answer {full_s:.2f} s); {spent:.0f} tokens spent")
    assert waited_s < full_s / 2
    assert spent < LONG["max_tokens"] / 2


def test_client_that_hangs_up_on_a_plain_request_cancels_it(one_slot_server, full_answer_s) -> None:
    full_s = full_answer_s
    before = generated_tokens(one_slot_server)
    host, port = "127.0.0.1", one_slot_server.port
    body = requests.Request("POST", f"{one_slot_server.url}/v1/chat/completions", json=LONG).prepare()
    with socket.create_connection((host, port), timeout=10) as sock:
        head = "".join(f"{k}: {v}\r\n" for k, v in body.headers.items())
        sock.sendall(f"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\n{head}\r\n".encode() + body.body)
        # Wait until the server is generating this answer, then hang up without reading it.
        started = time.monotonic()
        while generated_tokens(one_slot_server) == before and time.monotonic() - started < 10:
            time.sleep(0.05)
    dropped_at = time.monotonic()
    answer = chat(one_slot_server, SHORT)
    waited_s = time.monotonic() - dropped_at
    assert answer.status_code == 200, answer.text
    spent = settle(one_slot_server) - before - answer.json()["usage"]["completion_tokens"]
    print(
        f"slot free {waited_s:.2f} s after the hang-up (full answer {full_s:.2f} s); {spent:.0f} tokens spent"
    )
    assert waited_s < full_s / 2
    assert spent < LONG["max_tokens"] / 2


def test_after_a_flood_of_timeouts_and_walk_aways_the_queue_is_empty_and_answers_are_right(
    one_slot_server,
) -> None:
    def impatient(i: int) -> int:
        try:
            return chat(one_slot_server, {**LONG, "seed": i}, timeout=0.5).status_code
        except requests.exceptions.ReadTimeout:
            return 0  # walked away

    with ThreadPoolExecutor(12) as pool:
        outcomes = list(pool.map(impatient, range(24)))
    assert set(outcomes) <= {0, 429}, outcomes  # nothing but walk-aways and queue-full refusals
    deadline = time.monotonic() + 30
    while queue_depth(one_slot_server) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert queue_depth(one_slot_server) == 0
    first, again = (
        chat(one_slot_server, {**SHORT, "temperature": 0}),
        chat(one_slot_server, {**SHORT, "temperature": 0}),
    )
    assert first.status_code == again.status_code == 200
    assert first.json()["choices"][0]["message"] == again.json()["choices"][0]["message"]
    assert requests.get(f"{one_slot_server.url}/readyz", timeout=5).status_code == 200
