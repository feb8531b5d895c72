"""Model-server faults beyond the server's own lifecycle tests (queue full -> 429, timeout -> 504, SIGTERM
drain are in tests/integration/server/test_server_lifecycle.py): clients that walk away mid-generation, a
server that stays healthy after a flood, timeouts and walk-aways together, and model failures injected into
the real server process (a failing newcomer fails alone; a failing running batch turns the pod unready)."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

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


# Injected into the real server process (a sitecustomize module on its PYTHONPATH): the tiny Llama's
# forward pass raises while a trigger file exists, for prefills (several tokens per row) or decoding steps
# (one token per row) -- what a CUDA error or an out-of-memory does to a real server.
FAULT_HOOK = """
import os
from pathlib import Path

import transformers.models.llama.modeling_llama as llama

_forward = llama.LlamaForCausalLM.forward
_triggers = Path(os.environ["KUBECHAT_TEST_FAULTS"])


def forward(self, input_ids=None, *args, **kwargs):
    stage = "decode" if input_ids is not None and input_ids.shape[1] == 1 else "prefill"
    if (_triggers / stage).exists():
        raise RuntimeError(f"injected {stage} fault")
    return _forward(self, input_ids, *args, **kwargs)


llama.LlamaForCausalLM.forward = forward
"""


@pytest.fixture
def faulty_server(tmp_path) -> Iterator[tuple[RunningServer, Path]]:
    from tests.support.procs import SOURCE_ROOTS

    hook_dir = tmp_path / "hook"
    hook_dir.mkdir()
    (hook_dir / "sitecustomize.py").write_text(FAULT_HOOK)
    triggers = tmp_path / "triggers"
    triggers.mkdir()
    env = {
        "PYTHONPATH": os.pathsep.join([str(hook_dir), *map(str, SOURCE_ROOTS)]),
        "KUBECHAT_TEST_FAULTS": str(triggers),
    }
    args = ["--max-batch-size", "4", "--max-queue-delay-ms", "0", "--request-timeout-s", "300"]
    with running_model_server(tiny_model_dir("llama"), env=env, args=args) as server:
        yield server, triggers


def test_a_newcomer_whose_prefill_fails_fails_alone_and_the_running_batch_goes_on(faulty_server) -> None:
    server, triggers = faulty_server
    stream = requests.post(
        f"{server.url}/v1/chat/completions",
        json={**LONG, "max_tokens": 300, "stream": True, "stream_options": {"include_usage": True}},
        stream=True,
        timeout=120,
    )
    lines = stream.iter_lines(decode_unicode=True)
    assert next(line for line in lines if line.startswith("data: ") and '"content"' in line)
    (triggers / "prefill").touch()
    newcomer = chat(server, SHORT)
    (triggers / "prefill").unlink()
    assert newcomer.status_code == 500, newcomer.text
    assert newcomer.json()["error"]["code"] == "generation_failed"
    rest = [line for line in lines if line.startswith("data: ")]
    assert rest[-1] == "data: [DONE]"
    usage = json.loads(rest[-2][len("data: ") :])["usage"]
    assert usage["completion_tokens"] == 300, rest[-3:]
    assert requests.get(f"{server.url}/readyz", timeout=5).status_code == 200
    assert chat(server, SHORT).status_code == 200


def test_after_an_engine_fault_readiness_and_liveness_turn_503(faulty_server) -> None:
    server, triggers = faulty_server
    (triggers / "decode").touch()
    failed = chat(server, SHORT)
    assert failed.status_code == 500, failed.text
    (triggers / "decode").unlink()
    ready = requests.get(f"{server.url}/readyz", timeout=5)
    assert ready.status_code == 503
    assert ready.json()["status"] == "faulted" and "injected decode fault" in ready.json()["error"]["message"]
    # Liveness too, so that the kubelet restarts the pod rather than keep a broken model in the Service.
    assert requests.get(f"{server.url}/health", timeout=5).status_code == 503
    refused = chat(server, SHORT)
    assert refused.status_code == 503 and refused.json()["error"]["code"] == "engine_fault"


def llama_server_child(server: RunningServer) -> int:
    """The pid of the model server's ``llama-server`` child (started by one of its threads)."""
    tasks = Path(f"/proc/{server.process.pid}/task")
    children = [int(pid) for task in tasks.iterdir() for pid in (task / "children").read_text().split()]
    found = [pid for pid in children if "llama-server" in Path(f"/proc/{pid}/cmdline").read_text()]
    assert len(found) == 1, children
    return found[0]


def test_when_llama_server_dies_the_llama_cpp_engine_faults_and_readiness_and_liveness_turn_503() -> None:
    from tests.support.llamacpp import running_llamacpp_server

    with running_llamacpp_server("llama") as server:
        assert chat(server, SHORT).status_code == 200
        os.kill(llama_server_child(server), signal.SIGKILL)
        deadline = time.monotonic() + 30
        while (ready := requests.get(f"{server.url}/readyz", timeout=5)).status_code == 200:
            assert time.monotonic() < deadline, "readiness stayed 200 after llama-server died"
            time.sleep(0.2)
        assert ready.json()["status"] == "faulted"
        assert "llama-server exited with -9" in ready.json()["error"]["message"]
        assert requests.get(f"{server.url}/health", timeout=5).status_code == 503
        refused = chat(server, SHORT)
        assert refused.status_code == 503 and refused.json()["error"]["code"] == "engine_fault"
