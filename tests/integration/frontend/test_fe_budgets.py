"""Token budgets per API key, charged from the usage the real model server reports, counted in the shared
store (real SQLite, PostgreSQL and Redis) so that two frontends on one store charge one total."""

from __future__ import annotations

import json
import re

import httpx
import openai
import pytest

from tests.support.frontend import run_frontend

pytestmark = pytest.mark.slow


def settings(store_config: dict, model_server, keys_file: str = "", **more) -> dict:
    return {
        **store_config, "MODELS": [{"name": model_server.name, "url": model_server.url}],
        "SECRET_KEY": "test-secret", "RATE_LIMIT": 0, **({"API_KEYS_FILE": keys_file} if keys_file else {}),
        **more,
    }  # fmt: skip


def used_in(message: str) -> int:
    return int(re.search(r"\((\d+) used\)", message).group(1))


def test_a_key_over_its_budget_is_refused_on_every_replica_until_the_period_renews(
    store_config, model_server, tmp_path
):
    keys = tmp_path / "api-keys"
    keys.write_text("# key, then its own tokens per day\nsmall-key 1\nunlimited-key 0\ndefault-key\n")
    config = settings(store_config, model_server, str(keys), TOKEN_BUDGET=100_000)
    with (
        run_frontend(config, tmp_path / "a.log") as first,
        run_frontend(config, tmp_path / "b.log") as second,
    ):
        client = openai.OpenAI(base_url=first.url + "/v1", api_key="small-key", max_retries=0)
        answer = client.chat.completions.create(
            model=model_server.name, messages=[{"role": "user", "content": "hello"}]
        )
        reported = answer.usage.total_tokens
        assert reported > 0

        # The other replica refuses the next call: the tokens were charged in the shared store.
        refused = httpx.post(
            second.url + "/v1/chat/completions",
            json={"model": model_server.name, "messages": [{"role": "user", "content": "again"}]},
            headers={"Authorization": "Bearer small-key"},
        )
        assert refused.status_code == 429
        error = refused.json()["error"]
        assert error["code"] == "token_budget_exceeded"
        assert error["message"].startswith("Token budget of 1 tokens per day used up")
        assert used_in(error["message"]) == reported  # exactly what the model server reported
        assert 0 < int(refused.headers["Retry-After"]) <= 86400
        with pytest.raises(openai.RateLimitError):
            client.chat.completions.create(
                model=model_server.name, messages=[{"role": "user", "content": "x"}]
            )
        # The JSON API is refused the same way for this key; its history stays readable.
        chat = httpx.post(first.url + "/api/chat", json={"message": "hi"}, headers={"X-API-Key": "small-key"})
        assert chat.status_code == 429 and chat.json()["error"]["code"] == "token_budget_exceeded"
        assert httpx.get(first.url + "/api/models", headers={"X-API-Key": "small-key"}).status_code == 200

        # Other keys are charged apart: "0" has no budget, a bare key has the default.
        for key in ("unlimited-key", "default-key"):
            ok = httpx.post(
                first.url + "/api/chat", json={"message": "hi"}, headers={"X-API-Key": key}, timeout=60
            )
            assert ok.status_code == 200, ok.text


def test_streamed_answers_are_charged_from_the_usage_the_client_did_not_ask_for(
    store_config, model_server, tmp_path
):
    keys = tmp_path / "api-keys"
    keys.write_text("stream-key 1\nchat-key 1\nusage-key 1\n")
    with run_frontend(settings(store_config, model_server, str(keys)), tmp_path / "f.log") as frontend:
        body = {"model": model_server.name, "messages": [{"role": "user", "content": "hi"}], "stream": True}
        streamed = httpx.post(frontend.url + "/v1/chat/completions", json=body,
                              headers={"Authorization": "Bearer stream-key"}, timeout=60)  # fmt: skip
        chunks = [json.loads(line[5:]) for line in streamed.text.splitlines() if line.startswith("data: {")]
        assert chunks and all("usage" not in chunk for chunk in chunks)  # not asked for: not shown
        assert streamed.text.rstrip().endswith("data: [DONE]")
        again = httpx.post(
            frontend.url + "/v1/chat/completions", json=body, headers={"X-API-Key": "stream-key"}
        )
        assert again.status_code == 429 and used_in(again.json()["error"]["message"]) > 0

        # A client that asks for usage gets it, and is charged exactly that.
        asked = {**body, "stream_options": {"include_usage": True}}
        with_usage = httpx.post(frontend.url + "/v1/chat/completions", json=asked,
                                headers={"X-API-Key": "usage-key"}, timeout=60)  # fmt: skip
        usage = [
            json.loads(line[5:])["usage"] for line in with_usage.text.splitlines() if '"usage": {' in line
        ]
        assert len(usage) == 1
        refused = httpx.post(
            frontend.url + "/v1/chat/completions", json=asked, headers={"X-API-Key": "usage-key"}
        )
        assert used_in(refused.json()["error"]["message"]) == usage[0]["total_tokens"]

        # The JSON API's streamed answer is charged too.
        stream = httpx.post(frontend.url + "/api/chat/stream", json={"message": "hi"},
                            headers={"X-API-Key": "chat-key"}, timeout=60)  # fmt: skip
        assert '"type": "done"' in stream.text
        refused = httpx.post(
            frontend.url + "/api/chat/stream", json={"message": "hi"}, headers={"X-API-Key": "chat-key"}
        )
        assert refused.status_code == 429 and used_in(refused.json()["error"]["message"]) > 0


def test_a_gateway_user_gets_a_budget_when_created_and_is_refused_past_it(
    store_config, model_server, tmp_path
):
    admin = {"Authorization": "admin-secret"}
    config = settings(store_config, model_server, ADMIN_KEY="admin-secret", TOKEN_BUDGET_PERIOD_S=3600)
    with run_frontend(config, tmp_path / "f.log") as frontend:
        eve = {"username": "eve", "password": "long enough", "token_budget": "lots"}
        bad = httpx.post(frontend.url + "/users/", headers=admin, json=eve)
        assert bad.status_code == 400 and bad.json()["error"]["code"] == "invalid_field"
        made = httpx.post(frontend.url + "/users/", headers=admin,
                          json={"username": "ann", "password": "long enough", "token_budget": 1})  # fmt: skip
        assert made.status_code == 201 and made.json()["token_budget"] == 1
        key = {"Authorization": made.json()["api_key"]}
        knight = {"char_descr": "a knight", "world_descr": "a castle", "has_scratchpad": False}
        npc = httpx.post(frontend.url + "/create_npc/", headers=key, json=knight)
        chat = {
            "chat_id": "c1",
            "npc_id": npc.json()["npc_id"],
            "message": "hello",
            "model": model_server.name,
        }
        assert httpx.post(frontend.url + "/chat_npc/", headers=key, json=chat, timeout=60).status_code == 200
        refused = httpx.post(frontend.url + "/chat_npc/", headers=key, json=chat)
        assert refused.status_code == 429
        assert refused.json()["error"]["message"].startswith("Token budget of 1 tokens per hour used up")
        assert 0 < int(refused.headers["Retry-After"]) <= 3600
        # Only asking the model is refused: the user can still end the chat.
        assert httpx.post(frontend.url + "/end_chat_session/?chat_id=c1", headers=key).status_code == 200
