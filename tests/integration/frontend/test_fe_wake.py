"""A model that is down (scaled to zero) when requests arrive: the frontend, under gunicorn with its default
worker count, holds them (page, JSON API, the seeds' gateway and plain-text APIs, the OpenAI pass-through),
counts them in `kubechat_frontend_waiting_requests`, and answers them all once the real model server comes up
where nothing listened; past the timeout or beyond the queue it answers 503 with Retry-After, never a hang."""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable
from typing import Any

import httpx
import openai
from selenium.webdriver.common.by import By

from tests.support.browser import browser, wait_for  # noqa: F401 - browser is a fixture
from tests.support.frontend import Keys, make_keys, run_frontend
from tests.support.model_server import running_model_server
from tests.support.procs import free_port
from tests.support.tiny_models import tiny_model_dir

MODEL = "llama"


def settings(tmp_path, keys: Keys, model_port: int, **wake: Any) -> dict[str, Any]:
    return {
        "STORE": f"sqlite:///{tmp_path}/history.db",
        "API_KEYS_FILE": keys.file,
        "ADMIN_KEY": keys.admin_key,
        "MODELS": [{"name": MODEL, "url": f"http://127.0.0.1:{model_port}"}],
        "SECRET_KEY": "test-secret",
        "RATE_LIMIT": 10_000,
        "KUBE_API": "off",  # no apiserver here: the model server's own readiness decides
        **wake,
    }


def waiting(url: str) -> float:
    """The waiting gauge for MODEL, summed over the frontend's workers, as a scraper reads it."""
    text = httpx.get(url + "/metrics", timeout=10).text
    found = re.search(r'^kubechat_frontend_waiting_requests\{model="llama"\} (\S+)$', text, re.M)
    assert found, "the waiting gauge is not exported"
    return float(found.group(1))


class Calls:
    """Clients running in threads; each result (or exception) is kept under its name."""

    def __init__(self) -> None:
        self.results: dict[str, Any] = {}
        self.finished: list[str] = []
        self._threads: list[threading.Thread] = []

    def start(self, name: str, call: Callable[[], Any]) -> None:
        def run() -> None:
            try:
                self.results[name] = call()
            except Exception as error:  # kept, and shown by the assertion that reads it
                self.results[name] = error
            self.finished.append(name)

        thread = threading.Thread(target=run, daemon=True)
        thread.start()
        self._threads.append(thread)

    def join(self, timeout: float) -> None:
        for thread in self._threads:
            thread.join(timeout)


def test_requests_held_while_the_model_is_down_are_all_answered_once_it_comes_up(tmp_path, browser):  # noqa: F811
    model_port, keys = free_port(), make_keys(tmp_path)
    config = settings(tmp_path, keys, model_port)
    with run_frontend(config, tmp_path / "frontend.log", workers=None) as frontend:
        url, auth = frontend.url, keys.user_headers
        assert waiting(url) == 0
        client = openai.OpenAI(base_url=url + "/v1", api_key=keys.user_key, max_retries=0, timeout=120)
        calls = Calls()
        for i in range(3):
            calls.start(
                f"api-{i}",
                lambda i=i: httpx.post(
                    url + "/api/chat", json={"message": f"Hi {i}"}, headers=auth, timeout=120
                ),
            )
        plain = {**auth, "Content-Type": "text/plain"}
        calls.start("assistant", lambda: httpx.post(url + "/", content=b"Hi", headers=plain, timeout=120))
        # The seeds' gateway: the admin brings in a user and an NPC (no model needed), the user chats.
        admin = {"Authorization": keys.admin_key}
        user = {"username": "knight", "password": "correct horse", "api_key": "token-of-the-knight"}
        assert httpx.post(url + "/users/", json=user, headers=admin).status_code == 201
        npc = {"char_descr": "A knight of Edward I.", "world_descr": "London, XIII century."}
        npc_id = httpx.post(url + "/create_npc/", json=npc, headers=admin).json()["npc_id"]
        chat_npc = {"chat_id": "waking-chat", "npc_id": npc_id, "message": "Good morrow!", "model": MODEL}
        calls.start(
            "gateway",
            lambda: httpx.post(
                url + "/chat_npc/", json=chat_npc, headers={"Authorization": user["api_key"]}, timeout=120
            ),
        )
        calls.start(
            "openai",
            lambda: client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "Hi"}]),
        )
        calls.start(
            "openai-stream",
            lambda: "".join(
                chunk.choices[0].delta.content or ""
                for chunk in client.chat.completions.create(
                    model=MODEL, messages=[{"role": "user", "content": "Hi"}], stream=True
                )
                if chunk.choices
            ),
        )

        browser.get(url + "/")
        browser.find_element(By.ID, "prompt").send_keys("Are you awake?")
        browser.find_element(By.ID, "send").click()
        status = wait_for(browser, 30).until(
            lambda d: d.find_element(By.CSS_SELECTOR, ".message.pending .waking")
        )
        answer = browser.find_element(By.CSS_SELECTOR, ".message.assistant.pending")
        assert "Starting the model" in status.text
        # The page's one polite announcer says the phase (once per phase, not each percent).
        assert "Starting the model" in browser.find_element(By.ID, "announcer").get_attribute("textContent")

        deadline = time.monotonic() + 30
        while waiting(url) < 8:  # 7 API calls and the page, over both workers
            assert time.monotonic() < deadline, (
                f"only {waiting(url)} requests wait; finished: {calls.results}"
            )
            time.sleep(0.3)
        assert not calls.finished, f"answered while the model was down: {calls.results}"

        env = {"KUBECHAT_SERVED_MODEL_NAME": MODEL, "KUBECHAT_MAX_NEW_TOKENS": "12"}
        with running_model_server(tiny_model_dir("llama"), env=env, port=model_port, wait=False):
            calls.join(180)
            wait_for(browser, 60).until(lambda d: "done" in answer.get_attribute("class"))
        for i in range(3):
            response = calls.results[f"api-{i}"]
            assert isinstance(response, httpx.Response) and response.status_code == 200, response
            assert response.json()["pod"] == "test-pod"
        assert calls.results["assistant"].status_code == 200, calls.results["assistant"]
        gateway = calls.results["gateway"]
        assert gateway.status_code == 200 and gateway.json()["response"], gateway
        assert isinstance(calls.results["openai"], openai.types.chat.ChatCompletion), calls.results["openai"]
        assert isinstance(calls.results["openai-stream"], str), calls.results["openai-stream"]
        # The same message went from "waking" to the streamed answer: no reload, the status is gone.
        assert not answer.find_elements(By.CSS_SELECTOR, ".waking")
        assert answer.find_element(By.CSS_SELECTOR, ".badge").text.startswith("test-pod")
        assert waiting(url) == 0


def test_past_the_timeout_or_beyond_the_queue_a_held_request_gets_503_with_retry_after(tmp_path) -> None:
    # One place per worker process (two workers by default): of three requests at least one finds the queue
    # full and is refused at once; the others wait out the timeout.
    keys = make_keys(tmp_path)
    config = settings(tmp_path, keys, free_port(), WAKE_TIMEOUT_S=6, WAKE_MAX_WAITING=1)
    with run_frontend(config, tmp_path / "frontend.log", workers=None) as frontend:
        calls = Calls()
        ask = {"json": {"message": "Hi"}, "headers": keys.user_headers, "timeout": 60}
        for i in range(3):
            calls.start(i, lambda: httpx.post(frontend.url + "/api/chat", **ask))
        calls.join(60)
        assert len(calls.finished) == 3, "a held request hung"
        responses = [calls.results[i] for i in calls.finished]
        for response in responses:
            assert response.status_code == 503, response.text
            assert int(response.headers["Retry-After"]) > 0
        codes = [r.json()["error"]["code"] for r in responses]
        assert "model_waking_queue_full" in codes and "model_waking_timeout" in codes, codes
        # Refused at once: every refusal came back before the first timeout did.
        assert codes.index("model_waking_timeout") == codes.count("model_waking_queue_full"), codes

        client = openai.OpenAI(
            base_url=frontend.url + "/v1", api_key=keys.user_key, max_retries=0, timeout=60
        )
        try:
            client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "Hi"}])
        except openai.APIStatusError as error:
            assert error.status_code == 503 and error.response.headers["Retry-After"]
        else:
            raise AssertionError("the OpenAI client got an answer from a model that is down")
        assert waiting(frontend.url) == 0
