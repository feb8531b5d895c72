"""What a frontend restart keeps: every conversation (the store outlives the process), and a clear 409 for a
conversation whose model the ChatFrontend no longer offers."""

from __future__ import annotations

import httpx
import pytest

from tests.integration.frontend.test_fe_page import csrf_token, send, sse_events
from tests.support.frontend import run_frontend
from tests.support.procs import free_port

pytestmark = pytest.mark.slow


def settings_for(tmp_path, models: list[dict]) -> dict:
    return {
        "STORE": f"sqlite:///{tmp_path}/history.db", "MODELS": models, "SECRET_KEY": "kept-across-restarts",
        "RATE_LIMIT": 10_000,
    }  # fmt: skip


def test_history_is_intact_after_the_frontend_process_restarts(tmp_path, model_server):
    settings = settings_for(tmp_path, [{"name": model_server.name, "url": model_server.url}])
    port = free_port()
    with httpx.Client(base_url=f"http://127.0.0.1:{port}") as browser:
        with run_frontend(settings, tmp_path / "first.log", workers=None, port=port):
            token = csrf_token(browser.get("/").text)
            before = [sse_events(send(browser, token, f"before restart {i}")) for i in range(2)]
            api_session = httpx.post(f"http://127.0.0.1:{port}/api/chat", json={"message": "api turn"}).json()
        assert all(events[-1]["type"] == "done" for events in before)
        with run_frontend(settings, tmp_path / "second.log", workers=None, port=port):
            page = browser.get("/").text
            assert "before restart 0" in page and "before restart 1" in page
            token = csrf_token(page)
            assert sse_events(send(browser, token, "after restart"))[-1]["type"] == "done"
            history = httpx.get(f"http://127.0.0.1:{port}/api/sessions/{api_session['session_id']}").json()
            assert [m["content"] for m in history["messages"]] == ["api turn", api_session["response"]]
            assert "after restart" in browser.get("/").text


def test_a_conversation_whose_model_was_removed_gets_a_409_naming_it_not_a_500(tmp_path, model_server):
    port = free_port()
    before = settings_for(tmp_path, [{"name": model_server.name, "url": model_server.url}])
    with httpx.Client(base_url=f"http://127.0.0.1:{port}") as browser:
        with run_frontend(before, tmp_path / "first.log", port=port):
            token = csrf_token(browser.get("/").text)
            assert sse_events(send(browser, token, "hello"))[-1]["type"] == "done"
            session_id = browser.post("/api/chat", json={"message": "hi"}).json()["session_id"]
        # The ChatFrontend's models changed: `llama` was taken out, another offered instead.
        after = settings_for(tmp_path, [{"name": "replacement", "url": model_server.url}])
        with run_frontend(after, tmp_path / "second.log", port=port):
            page = browser.get("/")
            assert page.status_code == 200 and "hello" in page.text  # the old conversation still shows
            token = csrf_token(page.text)
            refused = send(browser, token, "still there?")
            api_refused = browser.post("/api/chat", json={"message": "and now?", "session_id": session_id})
            for response in (refused, api_refused):
                assert response.status_code == 409, response.text
                error = response.json()["error"]
                assert error["code"] == "model_removed"
                assert "'llama'" in error["message"] and "new chat" in error["message"]
            # A new chat (what the page offers) works with what is offered now.
            assert browser.post("/new", data={"csrf_token": token}).status_code == 303
            assert browser.get("/").status_code == 200
