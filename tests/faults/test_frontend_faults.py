"""The frontend when its database goes away mid-conversation (PostgreSQL, then Redis): requests fail
cleanly (a JSON error, quickly, the process alive), succeed again once the database is back, and no message
of a completed exchange is lost. (The model server going down is
tests/integration/frontend/test_fe_page.py::test_model_outage_gives_a_clear_retryable_error_and_loses_no_history.)

The restart is real: the test's own PostgreSQL (fast shutdown) or Redis (append-only file) process is
stopped, requests are made while it is down, and it is started again on the same port and data."""

from __future__ import annotations

import contextlib
import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest

from tests.support.databases import DatabaseServer, create_database, postgres, redis
from tests.support.frontend import ServedModel, make_keys, run_frontend, served_model

pytestmark = pytest.mark.slow
OUTAGE_S = 5


@pytest.fixture(scope="module")
def model() -> Iterator[ServedModel]:
    with served_model("llama", "llama") as server:
        yield server


def store_url(kind: str, server: DatabaseServer) -> str:
    if kind == "postgresql":
        return create_database(server)
    return f"redis://{server.host}:{server.port}/0"


@pytest.mark.parametrize("kind", ["postgresql", "redis"])
def test_database_restart_mid_conversation_fails_cleanly_then_recovers_losing_no_exchange(
    kind: str, model: ServedModel, tmp_path: Path
) -> None:
    keys = make_keys(tmp_path)
    # A database of the test's own: restarting the session's shared one would disturb other tests.
    with postgres() if kind == "postgresql" else redis() as database:
        settings = {
            "STORE": store_url(kind, database), "STORE_PASSWORD": database.password,
            "MODELS": [{"name": model.name, "url": model.url}],
            "API_KEYS_FILE": keys.file, "SECRET_KEY": "s", "RATE_LIMIT": 10_000, "READY_CACHE_S": 0,
        }  # fmt: skip
        with (
            run_frontend(settings, tmp_path / "frontend.log") as frontend,
            httpx.Client(base_url=frontend.url, headers=keys.user_headers, timeout=60) as api,
        ):
            first = api.post("/api/chat", json={"message": "first question"})
            assert first.status_code == 200, first.text
            session = first.json()["session_id"]
            second = api.post("/api/chat", json={"message": "second question", "session_id": session})
            assert second.status_code == 200, second.text

            database.stop()  # the restart begins: connections closed, new ones refused
            started = time.monotonic()
            failed = [
                api.post("/api/chat", json={"message": f"lost {i}", "session_id": session}) for i in range(3)
            ]
            failed_s = (time.monotonic() - started) / len(failed)
            assert all(r.status_code == 503 for r in failed), [r.text for r in failed]
            for response in failed:
                error = response.json()["error"]  # a JSON error, not a traceback page
                assert error["code"] == "store_unavailable" and response.headers["Retry-After"], error
                assert str(database.port) not in error["message"]  # driver details stay in the log
            assert failed_s < 10, f"a request took {failed_s:.1f} s to fail"
            assert httpx.get(frontend.url + "/health", timeout=5).status_code == 200
            readiness = httpx.get(frontend.url + "/readyz", timeout=30)
            assert readiness.status_code == 503
            assert readiness.json()["store"] == "unavailable"  # the driver's error stays in the log
            time.sleep(OUTAGE_S)

            database.start()
            third = api.post("/api/chat", json={"message": "third question", "session_id": session})
            assert third.status_code == 200, third.text
            history = api.get(f"/api/sessions/{session}").json()["messages"]
        print(f"{kind}: a request failed in {failed_s:.2f} s while the database was away")
    said = [m["content"] for m in history if m["role"] == "user"]
    assert said == ["first question", "second question", "third question"], history
    answers = [m for m in history if m["role"] == "assistant"]
    assert [a["content"] for a in answers[:2]] == [first.json()["response"], second.json()["response"]]
    assert len(answers) == 3


@contextlib.contextmanager
def held_answer(first: str, rest: str) -> Iterator[tuple[str, threading.Event]]:
    """A model endpoint that streams `first`, then (for a question starting with "hold") holds the answer
    open until the test sets the event, then streams `rest`: the test stops the database while the user is
    reading, deterministically. (The real model server answers a tiny model's few tokens faster than a
    database can be stopped.)"""
    release = threading.Event()

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            hold = body["messages"][-1]["content"].startswith("hold")
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            self.send_header("Connection", "close")
            self.end_headers()
            for i, piece in enumerate((first, rest)):
                if i and hold:
                    release.wait(60)
                chunk = {"choices": [{"index": 0, "delta": {"content": piece}}]}
                if not i:
                    chunk["kubechat"] = {"pod": "held-pod", "node": "held-node", "model": "held"}
                self.wfile.write(f"data: {json.dumps(chunk)}\n\n".encode())
                self.wfile.flush()
            self.wfile.write(b"data: [DONE]\n\n")

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", release
    finally:
        release.set()
        server.shutdown()
        server.server_close()
        thread.join()


def stream_while(api: httpx.Client, body: dict, on_first_delta) -> list[dict]:
    """POST /api/chat/stream, calling `on_first_delta()` once the first piece of the answer arrived."""
    events = []
    with api.stream("POST", "/api/chat/stream", json=body) as response:
        assert response.status_code == 200, response.read()
        for line in response.iter_lines():
            if line.startswith("data:"):
                events.append(json.loads(line[5:]))
                if events[-1]["type"] == "delta" and sum(e["type"] == "delta" for e in events) == 1:
                    on_first_delta()
    return events


@pytest.mark.parametrize("outage", ["blip", "down"])
def test_an_answer_read_while_the_database_goes_away_is_kept_saved_after_a_blip_or_told_unsaved(
    outage: str, tmp_path: Path
) -> None:
    with postgres() as database, held_answer("The answer ", "in full.") as (model_url, release):
        settings = {
            "STORE": create_database(database), "STORE_PASSWORD": database.password,
            "MODELS": [{"name": "held", "url": model_url}], "SECRET_KEY": "s", "RATE_LIMIT": 10_000,
        }  # fmt: skip
        with (
            run_frontend(settings, tmp_path / "frontend.log") as frontend,
            httpx.Client(base_url=frontend.url, timeout=60) as api,
        ):
            warm_up = stream_while(api, {"message": "warm up"}, lambda: None)
            session_id = warm_up[0]["session_id"]

            def database_goes_away() -> None:
                database.stop()
                release.set()  # the rest of the answer arrives while the database is down
                if outage == "blip":
                    # Back within the frontend's save retries. (Started from this thread: the test helpers'
                    # servers die with the thread that started them.)
                    database.start()

            events = stream_while(
                api, {"message": "hold the question", "session_id": session_id}, database_goes_away
            )
            if outage == "down":
                database.start()
            answer = "".join(e["text"] for e in events if e["type"] == "delta")
            assert answer == "The answer in full."  # what the user read is all there, either way
            assert events[-1]["type"] == "done"
            notices = [e for e in events if e["type"] == "notice"]
            reply = api.get(f"/api/sessions/{session_id}")
            assert reply.status_code == 200, reply.text
            history = reply.json()["messages"]
    said = [(m["role"], m["content"]) for m in history]
    if outage == "blip":
        assert notices == []
        assert said[-2:] == [("user", "hold the question"), ("assistant", "The answer in full.")]
    else:
        assert [n["code"] for n in notices] == ["history_not_saved"]
        assert "could not be saved" in notices[0]["message"]
        assert len(said) == 2  # only the warm-up turn; the page keeps the unsaved answer on screen
