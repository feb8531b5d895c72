"""The frontend when its database goes away mid-conversation (PostgreSQL, then Redis): requests fail
cleanly (a JSON error, quickly, the process alive), succeed again once the database is back, and no message
of a completed exchange is lost. (The model server going down is
tests/integration/frontend/test_fe_page.py::test_model_outage_gives_a_clear_retryable_error_and_loses_no_history.)

The restart is real: the test's own PostgreSQL (fast shutdown) or Redis (append-only file) process is
stopped, requests are made while it is down, and it is started again on the same port and data."""

from __future__ import annotations

import time
from collections.abc import Iterator
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
            assert all(r.status_code in (500, 502, 503, 504) for r in failed), [r.text for r in failed]
            for response in failed:
                error = response.json()["error"]  # a JSON error, not a traceback page
                assert error["code"] and error["message"], error
            assert failed_s < 10, f"a request took {failed_s:.1f} s to fail"
            assert httpx.get(frontend.url + "/health", timeout=5).status_code == 200
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
