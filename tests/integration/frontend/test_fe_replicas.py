"""Two frontend replicas sharing PostgreSQL (then Redis): conversations and rate limits hold across them."""

from __future__ import annotations

import contextlib
import json
import re

import httpx
import pytest

from tests.support.databases import create_database, flush_redis, redis_url
from tests.support.frontend import avoid_rate_window_edge, run_frontend

pytestmark = pytest.mark.slow


@pytest.fixture(params=["postgresql", "redis"])
def shared_store(request) -> dict[str, str]:
    if request.param == "postgresql":
        server = request.getfixturevalue("postgres_server")
        return {"STORE": create_database(server), "STORE_PASSWORD": server.password}
    server = request.getfixturevalue("redis_server")
    flush_redis(server)
    return {"STORE": redis_url(server), "STORE_PASSWORD": server.password}


@pytest.fixture
def replicas(shared_store, model_server, keys, tmp_path):
    """Two frontend processes, as two pods of one ChatFrontend: one Secret, one store, 8 requests a minute."""
    settings = {
        **shared_store,
        "MODELS": [{"name": model_server.name, "url": model_server.url}],
        "API_KEYS_FILE": keys.file,
        "SECRET_KEY": "shared-secret-from-the-Secret",
        "RATE_LIMIT": 8,
    }
    with contextlib.ExitStack() as stack:
        yield [stack.enter_context(run_frontend(settings, tmp_path / f"frontend-{i}.log")) for i in range(2)]


def test_a_conversation_started_on_one_replica_continues_on_the_other(replicas, keys, model_server):
    a, b = replicas
    # The page: the signed session cookie from replica A is all replica B needs.
    with httpx.Client(base_url=a.url) as on_a:
        page = on_a.get("/").text
        token = re.search(r'name="csrf-token" content="([^"]+)"', page).group(1)
        sent = on_a.post(
            "/chat/send", json={"message": "hello from A"}, headers={"X-CSRFToken": token}, timeout=120
        )
        assert sent.status_code == 200
        cookies = on_a.cookies
    with httpx.Client(base_url=b.url, cookies=cookies) as on_b:
        assert "hello from A" in on_b.get("/").text
        sent = on_b.post("/chat/send", json={"message": "and B"}, headers={"X-CSRFToken": token}, timeout=120)
        assert sent.status_code == 200
        assert "hello from A" in on_b.get("/").text and "and B" in on_b.get("/").text

    # The API: a session id started on A continues on B with its history.
    first = httpx.post(
        a.url + "/api/chat", json={"message": "one"}, headers=keys.user_headers, timeout=120
    ).json()
    follow_up = {"message": "two", "session_id": first["session_id"]}
    second = httpx.post(b.url + "/api/chat", json=follow_up, headers=keys.user_headers, timeout=120)
    assert second.status_code == 200
    history = httpx.get(f"{a.url}/api/sessions/{first['session_id']}", headers=keys.user_headers).json()
    assert [m["content"] for m in history["messages"] if m["role"] == "user"] == ["one", "two"]
    assert all(m["pod"] == model_server.pod for m in history["messages"] if m["role"] == "assistant")


def test_the_rate_limit_is_shared_by_the_replicas(replicas, keys):
    avoid_rate_window_edge()
    statuses = [
        httpx.get(replica.url + "/api/models", headers=keys.user_headers).status_code
        for _ in range(5)
        for replica in replicas
    ]
    assert statuses == [200] * 8 + [429] * 2  # 8 a minute in all, not 8 per replica
    refused = httpx.get(replicas[1].url + "/api/models", headers=keys.user_headers)
    assert refused.status_code == 429 and int(refused.headers["Retry-After"]) >= 1
    log_entry = [e for e in replicas[1].log_lines() if e.get("status") == 429][-1]
    assert json.dumps(log_entry)  # the refusal was logged as a JSON line
