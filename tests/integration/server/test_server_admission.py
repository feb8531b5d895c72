"""Admission control over real HTTP: multi-item requests are queued all or nothing, requests that expired
while queued cost no prefill, list sizes are capped (the caps' 400s are in test_server_bad_input.py)."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator

import pytest
import requests

from tests.support.llamacpp import running_llamacpp_server
from tests.support.model_server import RunningServer, running_model_server
from tests.support.tiny_models import tiny_model_dir

LONG = {
    "messages": [{"role": "user", "content": "Tell me a long story"}],
    "max_tokens": 1500,
    "temperature": 0,
}


def metric(server: RunningServer, name: str, labels: str = "") -> float:
    text = requests.get(f"{server.url}/metrics", timeout=10).text
    found = re.search(rf"^{re.escape(name)}{re.escape(labels)} (\S+)$", text, re.M)
    return float(found.group(1)) if found else 0.0


# A deadline well inside the first long answer: the tiny model writes its 1,500 tokens in ~3 s here, and a
# deadline of 2 s (as before) let a quiet machine finish it and prefill the second prompt after all.
ONE_SLOT = ["--max-batch-size", "1", "--max-queue", "4", "--request-timeout-s", "0.75"]


@pytest.fixture(scope="module")
def one_slot_server() -> Iterator[RunningServer]:
    with running_model_server(tiny_model_dir("llama"), args=ONE_SLOT) as server:
        yield server


@pytest.fixture(scope="module", params=["transformers", "llama.cpp"])
def one_slot_server_on(request) -> Iterator[RunningServer]:
    """``one_slot_server`` on either engine (a llama.cpp slot holds 256 prompt + 1500 answer tokens)."""
    if request.param == "transformers":
        yield request.getfixturevalue("one_slot_server")
        return
    args = [*ONE_SLOT, "--max-input-tokens", "256", "--max-new-tokens", "1500"]
    with running_llamacpp_server("llama", args=args) as server:
        yield server


def wait_generating(server: RunningServer) -> None:
    before = metric(server, "kubechat_generated_tokens_total")
    deadline = time.monotonic() + 10
    while metric(server, "kubechat_generated_tokens_total") == before and time.monotonic() < deadline:
        time.sleep(0.05)


def test_a_request_with_more_items_than_the_queue_takes_is_refused_whole(one_slot_server_on):
    one_slot_server = one_slot_server_on
    stream = requests.post(
        f"{one_slot_server.url}/v1/chat/completions", json={**LONG, "stream": True}, stream=True, timeout=30
    )
    try:
        wait_generating(one_slot_server)
        prompt_tokens = metric(one_slot_server, "kubechat_prompt_tokens_total")
        response = requests.post(
            f"{one_slot_server.url}/generate",
            json={"prompts": ["Hello"] * 5, "parameters": {"max_gen_len": 2}},
            timeout=30,
        )
        assert response.status_code == 429, response.text
        assert response.headers["Retry-After"]
        # Nothing of it was queued: no orphaned work runs on behalf of a refused request.
        assert metric(one_slot_server, "kubechat_queue_depth") == 0
        assert metric(one_slot_server, "kubechat_prompt_tokens_total") == prompt_tokens
        assert (
            metric(
                one_slot_server,
                "vllm:num_requests_waiting",
                '{model_name="' + server_name(one_slot_server) + '"}',
            )
            == 0
        )
    finally:
        stream.close()


def server_name(server: RunningServer) -> str:
    return requests.get(f"{server.url}/v1/models", timeout=10).json()["data"][0]["id"]


def dropped_unprefilled(server: RunningServer) -> float:
    """Requests answered without a prefill: expired in the queue, or cancelled there once the HTTP request
    they belong to timed out (which of the two wins the race is up to the machine's load)."""
    return sum(
        metric(server, "kubechat_requests_dropped_total", f'{{reason="{reason}"}}')
        for reason in ("expired", "cancelled")
    )


def test_requests_that_expire_in_the_queue_are_answered_without_a_prefill(one_slot_server):
    # Two prompts, one slot, one deadline: the first runs until the deadline, the second has expired by then.
    # Greedy: the tiny model's greedy answer to the first runs the full length (a sampled one may end early).
    dropped = dropped_unprefilled(one_slot_server)
    response = requests.post(
        f"{one_slot_server.url}/generate",
        json={
            "prompts": ["Tell me a long story", "Hello"],
            "parameters": {"max_gen_len": 1500, "temperature": 0},
        },
        timeout=60,
    )
    assert response.status_code == 504, response.text
    # At least the second (on a machine slow enough, the first too can expire before its prefill).
    assert dropped_unprefilled(one_slot_server) >= dropped + 1
    assert requests.get(f"{one_slot_server.url}/readyz", timeout=5).status_code == 200
