"""Several ChatModels behind one frontend, and what users see while a model loads or is overloaded."""

from __future__ import annotations

import concurrent.futures
import json
import re
import time

import httpx
import pytest

from tests.support.frontend import run_frontend, served_model
from tests.support.model_server import running_model_server
from tests.support.tiny_models import tiny_model_dir

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def two_models():
    """Two real model servers: a tiny Llama served as "llama" and a tiny chat-template Llama as "helper"."""
    with served_model("llama", "llama") as llama, served_model("helper", "llama-chat") as helper:
        yield llama, helper


def test_the_model_field_and_the_page_picker_choose_among_several_models(two_models, keys, tmp_path):
    llama, helper = two_models
    models = [{"name": "llama", "url": llama.url}, {"name": "helper", "url": helper.url, "default": True}]
    settings = {
        "STORE": f"sqlite:///{tmp_path}/h.db",
        "MODELS": models,
        "API_KEYS_FILE": keys.file,
        "SECRET_KEY": "s",
    }
    with run_frontend(settings, tmp_path / "frontend.log") as frontend:
        url, headers = frontend.url, keys.user_headers
        listed = httpx.get(url + "/api/models", headers=headers).json()["models"]
        assert listed == [{"name": "llama", "default": False}, {"name": "helper", "default": True}]

        default = httpx.post(url + "/api/chat", json={"message": "hi"}, headers=headers, timeout=120).json()
        assert default["model"] == "helper"
        chosen = httpx.post(
            url + "/api/chat", json={"message": "hi", "model": "llama"}, headers=headers, timeout=120
        )
        assert chosen.json()["model"] == "llama"
        switch = {"message": "hi", "model": "helper", "session_id": chosen.json()["session_id"]}
        assert httpx.post(url + "/api/chat", json=switch, headers=headers).status_code == 409

        body = {"model": "llama", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 4}
        passed = httpx.post(url + "/v1/chat/completions", json=body, headers=headers, timeout=120)
        assert passed.status_code == 200 and passed.json()["kubechat"]["model"] == "llama"

        # The page: both models offered, the pick starts a conversation on that model.
        with httpx.Client(base_url=url) as browser:
            page = browser.get("/").text
            assert '<option value="llama">llama</option>' in page
            assert '<option value="helper" selected>helper</option>' in page
            token = re.search(r'name="csrf-token" content="([^"]+)"', page).group(1)
            browser.post("/new", data={"csrf_token": token, "model": "llama"})
            sent = browser.post(
                "/chat/send", json={"message": "hi"}, headers={"X-CSRFToken": token}, timeout=120
            )
            meta = json.loads(sent.text.split("\n")[0][5:])
            assert meta["type"] == "meta" and meta["model"] == "llama"


def test_a_loading_model_is_reported_as_loading_with_retry_after(keys, tmp_path):
    with running_model_server(
        tiny_model_dir("llama"), env={"KUBECHAT_SERVED_MODEL_NAME": "llama"}, wait=False
    ) as server:
        settings = {
            "STORE": f"sqlite:///{tmp_path}/h.db",
            "MODELS": [{"name": "llama", "url": server.url}],
            "API_KEYS_FILE": keys.file,
            "SECRET_KEY": "s",
            "RATE_LIMIT": 0,
            "WAKE_MAX_WAITING": 0,  # holding off: loading is reported at once (test_fe_wake holds)
        }
        with run_frontend(settings, tmp_path / "frontend.log") as frontend:
            seen = []
            deadline = time.monotonic() + 180
            while time.monotonic() < deadline:
                response = httpx.post(
                    frontend.url + "/api/chat", json={"message": "hi"}, headers=keys.user_headers
                )
                seen.append((response.status_code, response.json().get("error", {}).get("code")))
                if response.status_code == 200:
                    break
                assert response.status_code == 503 and int(response.headers["Retry-After"]) > 0
                if seen[-1][1] == "model_not_ready":
                    assert "loading or busy" in response.json()["error"]["message"]
                time.sleep(0.05)
    assert (503, "model_not_ready") in seen, seen  # the loading state was reported as such
    assert seen[-1] == (200, None)


def test_an_overloaded_model_is_reported_as_busy_with_retry_after(keys, tmp_path):
    model_env = {"KUBECHAT_MAX_QUEUE": "1", "KUBECHAT_MAX_BATCH_SIZE": "1", "KUBECHAT_MAX_NEW_TOKENS": "200"}
    with served_model("llama", "llama", **model_env) as model:
        settings = {
            "STORE": f"sqlite:///{tmp_path}/h.db",
            "MODELS": [{"name": "llama", "url": model.url}],
            "API_KEYS_FILE": keys.file,
            "SECRET_KEY": "s",
        }
        with (
            run_frontend(settings, tmp_path / "frontend.log") as frontend,
            concurrent.futures.ThreadPoolExecutor(8) as pool,
        ):
            responses = list(
                pool.map(
                    lambda i: httpx.post(
                        frontend.url + "/api/chat",
                        json={"message": f"story {i}"},
                        headers=keys.user_headers,
                        timeout=120,
                    ),
                    range(8),
                )
            )
    busy = [r for r in responses if r.status_code == 429]
    assert busy, [r.status_code for r in responses]
    assert all(int(r.headers["Retry-After"]) >= 1 for r in busy)
    assert "loading or busy" in busy[0].json()["error"]["message"]
    assert any(r.status_code == 200 for r in responses)
