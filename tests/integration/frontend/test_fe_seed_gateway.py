"""The LLM Chat Project seed's gateway API, called by the seed README's own curl lines (copied verbatim;
only `http://0.0.0.0:8001` becomes this test's frontend) against the real model server."""

from __future__ import annotations

import json
import subprocess
import uuid
from collections.abc import Iterator

import httpx
import pytest

from kubechat_frontend.store import Npc, open_store
from tests.support.fake_upstream import hostile_model
from tests.support.frontend import RunningFrontend, run_frontend, served_model

pytestmark = pytest.mark.slow

SEED_HOST = "http://0.0.0.0:8001"
ADMIN_KEY = "aYpVtQxRmGzLsBnCfDiKjUxWqHvNwYcFbXlPrVdTw"  # the seed's admin key
USER_TOKEN = "token8438316761499410150"  # the seed's user key
SEED_NPC = "5dcc0f0a-2476-4110-8a78-c3137d2314dc"  # the NPC its chat line talks to
SEED_MODEL = "meta-llama/Meta-Llama-3.1-405B-Instruct"

CREATE_NPC = r"""curl -X 'POST' \
  'http://0.0.0.0:8001/create_npc/' \
  -H 'accept: application/json' \
  -H 'Authorization: aYpVtQxRmGzLsBnCfDiKjUxWqHvNwYcFbXlPrVdTw' \
  -H 'Content-Type: application/json' \
  -d '{
  "char_descr": "You'\''re a knight at the court of Edward I.",
  "world_descr": "You'\''re in London. And it'\''s XIII century.",
  "has_scratchpad": true
}'"""

CHAT_NPC = r"""curl -X 'POST' \
  'http://0.0.0.0:8001/chat_npc/' \
  -H 'accept: application/json' \
  -H 'Authorization: token8438316761499410150' \
  -H 'Content-Type: application/json' \
  -d '{
  "chat_id": "ZjlhOWY2ZTdjY2Y0NDVmMW",
  "npc_id": "5dcc0f0a-2476-4110-8a78-c3137d2314dc",
  "message": "Oh wow! Your math knowledge is much better than mine. I was not able to solve this one. Can you multiply? What is 3 times 8?",
  "model": "meta-llama/Meta-Llama-3.1-405B-Instruct"
}'"""  # noqa: E501 - the seed's line as it is

END_SESSION = r"""curl -X 'POST' \
  'http://0.0.0.0:8001/end_chat_session/?chat_id=ZjlhOWY2ZTdjY2Y0NDVmMW' \
  -H 'accept: application/json' \
  -H 'Authorization: token8438316761499410150' \
  -d ''"""

HISTORY = r"""curl -X 'GET' \
  'http://0.0.0.0:8001/chat/token8438316761499410150/ZjlhOWY2ZTdjY2Y0NDVmMW/history' \
  -H 'accept: application/json' \
  -H 'Authorization: aYpVtQxRmGzLsBnCfDiKjUxWqHvNwYcFbXlPrVdTw'"""


def curl(line: str, frontend: RunningFrontend) -> tuple[int, dict]:
    """Run the seed's curl line against `frontend`; its HTTP status and JSON answer."""
    command = line.replace(SEED_HOST, frontend.url) + " -s -w '\\n%{http_code}'"
    out = subprocess.run(["bash", "-c", command], capture_output=True, text=True, timeout=120, check=True)
    body, _, status = out.stdout.rpartition("\n")
    return int(status), json.loads(body)


@pytest.fixture
def seed_gateway(tmp_path) -> Iterator[tuple[RunningFrontend, str]]:
    """A frontend offering the seed's model name (served by the real model server), with the seed's admin key
    and its user, whose key the admin brings in through POST /users/."""
    store = f"sqlite:///{tmp_path}/gateway.db"
    with served_model(SEED_MODEL, "llama") as model:
        settings = {
            "STORE": store, "MODELS": [{"name": SEED_MODEL, "url": model.url}], "ADMIN_KEY": ADMIN_KEY,
            "SECRET_KEY": "s", "RATE_LIMIT": 10_000,
        }  # fmt: skip
        with run_frontend(settings, tmp_path / "frontend.log") as frontend:
            created = httpx.post(
                frontend.url + "/users/",
                json={"username": "seed-user", "password": "correct horse", "api_key": USER_TOKEN},
                headers={"Authorization": ADMIN_KEY},
            )
            assert created.status_code == 201, created.text
            yield frontend, store


def test_the_seed_readmes_curl_lines_work_unchanged(seed_gateway):
    frontend, store_url = seed_gateway
    status, created = curl(CREATE_NPC, frontend)
    assert status == 200
    assert created["status"] == "NPC successfully saved"
    assert str(uuid.UUID(created["npc_id"])) == created["npc_id"]

    # The chat line names the README's own NPC id: it is in the database, as the README's setup left it.
    store = open_store(store_url)
    store.save_npc(Npc(SEED_NPC, "You're a knight at the court of Edward I.", "London, XIII century.", False))
    store.close()

    status, answer = curl(CHAT_NPC, frontend)
    assert status == 200, answer
    assert answer["chat_id"] == "ZjlhOWY2ZTdjY2Y0NDVmMW" and answer["npc_id"] == SEED_NPC
    assert answer["model"] == SEED_MODEL and isinstance(answer["response"], str)

    status, history = curl(HISTORY, frontend)
    assert status == 200, history
    assert history["username"] == "seed-user"
    assert [m["role"] for m in history["history"]] == ["user", "assistant"]
    assert history["history"][0]["content"].startswith("Oh wow! Your math knowledge")
    assert history["history"][1]["content"] == answer["response"]

    status, ended = curl(END_SESSION, frontend)
    assert (status, ended["chat_id"]) == (200, "ZjlhOWY2ZTdjY2Y0NDVmMW")
    status, gone = curl(HISTORY, frontend)
    assert status == 404 and gone["error"]["code"] == "session_not_found"


def test_the_user_key_cannot_read_history_and_a_wrong_key_is_refused(seed_gateway):
    frontend, _ = seed_gateway
    as_user = HISTORY.replace(f"Authorization: {ADMIN_KEY}", f"Authorization: {USER_TOKEN}")
    status, refused = curl(as_user, frontend)
    assert status == 403 and refused["error"]["code"] == "admin_only"
    status, refused = curl(CHAT_NPC.replace(USER_TOKEN, "token-nobody-has"), frontend)
    assert status == 403 and refused["error"]["code"] == "invalid_api_key"
    status, refused = curl(CHAT_NPC.replace(SEED_MODEL, "gpt-4"), frontend)  # not one of this frontend's
    assert status in (400, 404)


def test_a_scratchpad_npcs_reasoning_never_reaches_the_user_or_the_history(tmp_path):
    pieces = ["<scratch", "pad>3 times 8 is 24; flatter him.</scr", "atchpad>\n\n", "Four and twenty, sire!"]
    with hostile_model(pieces) as upstream:
        settings = {
            "STORE": f"sqlite:///{tmp_path}/g.db", "MODELS": [{"name": "npc-model", "url": upstream}],
            "ADMIN_KEY": ADMIN_KEY, "SECRET_KEY": "s",
        }  # fmt: skip
        with run_frontend(settings, tmp_path / "frontend.log") as frontend:
            admin = {"Authorization": ADMIN_KEY}
            user = httpx.post(
                frontend.url + "/users/", json={"username": "u", "password": "long enough"}, headers=admin
            ).json()
            npc = httpx.post(
                frontend.url + "/create_npc/",
                json={"char_descr": "a knight", "world_descr": "London", "has_scratchpad": True},
                headers={"Authorization": user["api_key"]},
            ).json()["npc_id"]
            answer = httpx.post(
                frontend.url + "/chat_npc/",
                json={"chat_id": "c1", "npc_id": npc, "message": "3 times 8?", "model": "npc-model"},
                headers={"Authorization": user["api_key"]},
            ).json()
            history = httpx.get(f"{frontend.url}/chat/{user['api_key']}/c1/history", headers=admin).json()
    assert answer["response"] == "Four and twenty, sire!"
    assert "flatter" not in json.dumps(history) and "scratchpad" not in json.dumps(history)


# The VirtualAssistant seed's README lines (its `localhost:8000` becomes this test's frontend).
ASK = "curl localhost:8000/ --header 'Content-Type: text/plain' --data-raw 'Who are you and what do you do?'"
HEALTH = "curl localhost:8000/health"


def test_the_virtual_assistant_seeds_curl_lines_answer_in_plain_text(model_server, tmp_path):
    # As the seed runs: no keys configured (the API is then open, limited per client IP).
    models = [{"name": model_server.name, "url": model_server.url}]
    settings = {"STORE": f"sqlite:///{tmp_path}/h.db", "MODELS": models, "SECRET_KEY": "s"}
    with run_frontend(settings, tmp_path / "frontend.log") as frontend:
        port = frontend.url.rsplit(":", 1)[1]
        answers = {}
        for line in (ASK, HEALTH):
            command = line.replace("localhost:8000", f"127.0.0.1:{port}") + " -s -D /dev/stderr"
            answers[line] = subprocess.run(
                ["bash", "-c", command], capture_output=True, text=True, timeout=120
            )
        refused = httpx.post(frontend.url + "/", content=b"{}", headers={"Content-Type": "application/json"})
    asked = answers[ASK]
    assert " 200 " in asked.stderr.splitlines()[0], asked.stderr
    assert "content-type: text/plain" in asked.stderr.lower()
    assert asked.stdout.endswith("\n") and not asked.stdout.lstrip().startswith("{")
    assert json.loads(answers[HEALTH].stdout)["status"] == "ok"
    assert refused.status_code == 415 and refused.json()["error"]["code"] == "unsupported_media_type"
