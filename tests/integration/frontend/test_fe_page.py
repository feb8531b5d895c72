"""The chat page's server side: CSRF on page POSTs, cookie flags, history by cookie, and a model outage."""

from __future__ import annotations

import html
import json
import re

import httpx
import pytest

from kubechat_frontend import create_app
from tests.support.frontend import run_frontend

pytestmark = pytest.mark.slow


def csrf_token(page: str) -> str:
    return re.search(r'<meta name="csrf-token" content="([^"]+)"', page).group(1)


def send(client: httpx.Client, token: str, message: str) -> httpx.Response:
    return client.post("/chat/send", json={"message": message}, headers={"X-CSRFToken": token}, timeout=120)


def sse_events(response: httpx.Response) -> list[dict]:
    return [json.loads(line[5:]) for line in response.text.splitlines() if line.startswith("data:")]


def test_session_cookie_is_httponly_samesite_lax_and_secure(tmp_path):
    app = create_app({"STORE": f"sqlite:///{tmp_path}/h.db", "SECRET_KEY": "s", "COOKIE_SECURE": True})
    try:
        response = app.test_client().get("/", base_url="https://chat.example")
        cookie = response.headers["Set-Cookie"]
        assert "kubechat_session=" in cookie and "HttpOnly" in cookie and "Secure" in cookie
        assert "SameSite=Lax" in cookie
        assert "script-src 'self'" in response.headers["Content-Security-Policy"]
    finally:
        app.extensions["kubechat"].close()


def test_page_posts_without_the_csrf_token_are_refused(gateway):
    with httpx.Client(base_url=gateway.url) as browser:
        token = csrf_token(browser.get("/").text)
        refused = browser.post("/chat/send", json={"message": "hi"})
        assert refused.status_code == 400 and refused.json()["error"]["code"] == "csrf_failed"
        assert browser.post("/new", data={"model": "godel"}).status_code == 400
        assert browser.post("/end", data={}).status_code == 400
        # A token from another session does not work either.
        with httpx.Client(base_url=gateway.url) as other:
            other.get("/")
            assert (
                other.post("/chat/send", json={"message": "hi"}, headers={"X-CSRFToken": token}).status_code
                == 400
            )
        assert send(browser, token, "hi").status_code == 200


def test_page_shows_title_greeting_model_and_persona_pickers(gateway, model_server):
    page = httpx.get(gateway.url + "/").text
    assert "<title>kubechat</title>" in page
    assert f'<option value="{model_server.name}" selected>' in page
    assert '<option value="bard">bard</option>' in page


def test_history_follows_the_cookie_and_a_new_conversation_starts_empty_keeping_the_old(
    gateway, model_server
):
    with httpx.Client(base_url=gateway.url) as browser:
        token = csrf_token(browser.get("/").text)
        events = sse_events(send(browser, token, "Hello <there> & friends"))
        assert events[0]["type"] == "meta" and events[0]["pod"] == model_server.pod
        page = browser.get("/").text
        assert html.escape("Hello <there> & friends") in page  # escaped by the template, never raw
        assert model_server.pod in page  # the answer's badge

        bad_pick = {"csrf_token": token, "model": model_server.name, "persona": "nobody"}
        assert browser.post("/new", data=bad_pick).status_code == 400
        assert "Hello &lt;there&gt;" in browser.get("/").text  # a refused pick ends nothing
        new = browser.post("/new", data={"csrf_token": token, "model": model_server.name, "persona": "bard"})
        assert new.status_code == 303
        page = browser.get("/").text
        assert "Hello &lt;there&gt;" not in page
        assert '<option value="bard" selected>' in page
        # The earlier conversation stays in this browser's list, titled by its first question.
        listed = browser.get("/chat/conversations").json()["conversations"]
        assert [(c["title"], c["open"]) for c in listed] == [("", True), ("Hello <there> & friends", False)]
        assert events[0]["session_id"] == listed[1]["id"]


def test_model_outage_gives_a_clear_retryable_error_and_loses_no_history(keys, tmp_path, start_model_server):
    with start_model_server() as model:
        settings = {
            "STORE": f"sqlite:///{tmp_path}/history.db",
            "MODELS": [{"name": model.name, "url": model.url}],
            "API_KEYS_FILE": keys.file,
            "SECRET_KEY": "s",
            "READY_CACHE_S": 0,
            "WAKE_MAX_WAITING": 0,  # holding off: a model that is down fails at once (test_fe_wake holds)
        }
        with (
            run_frontend(settings, tmp_path / "frontend.log") as frontend,
            httpx.Client(base_url=frontend.url) as browser,
        ):
            token = csrf_token(browser.get("/").text)
            assert send(browser, token, "first question").status_code == 200
            api = httpx.post(
                frontend.url + "/api/chat",
                json={"message": "api question"},
                headers=keys.user_headers,
                timeout=120,
            ).json()

            model.stop()

            down = send(browser, token, "second question")
            assert down.status_code == 503 and int(down.headers["Retry-After"]) > 0
            assert "cannot be reached" in down.json()["error"]["message"]
            assert "first question" in browser.get("/").text
            assert "second question" not in browser.get("/").text  # nothing half-saved

            follow_up = {"message": "api follow-up", "session_id": api["session_id"]}
            refused = httpx.post(frontend.url + "/api/chat", json=follow_up, headers=keys.user_headers)
            assert refused.status_code == 503 and refused.json()["error"]["code"] == "model_unavailable"
            history = httpx.get(f"{frontend.url}/api/sessions/{api['session_id']}", headers=keys.user_headers)
            assert [m["content"] for m in history.json()["messages"]][0] == "api question"
            assert len(history.json()["messages"]) == 2

            ready = httpx.get(frontend.url + "/readyz")
            assert ready.status_code == 503 and ready.json()["models"][model.name] != "ready"


def test_a_browser_keeps_several_conversations_switches_renames_and_deletes_them(gateway, model_server):
    with httpx.Client(base_url=gateway.url) as browser, httpx.Client(base_url=gateway.url) as stranger:
        token = csrf_token(browser.get("/").text)
        headers = {"X-CSRFToken": token}
        first = sse_events(send(browser, token, "about <castles>"))[0]["session_id"]
        created = browser.post("/chat/conversations", json={"persona": "bard"}, headers=headers)
        assert created.status_code == 201 and created.json()["open"] and created.json()["persona"] == "bard"
        second = created.json()["id"]
        assert sse_events(send(browser, token, "about rivers"))[0]["session_id"] == second

        def listed() -> list[tuple[str, str]]:
            return [(c["id"], c["title"]) for c in browser.get("/chat/conversations").json()["conversations"]]

        assert listed() == [(second, "about rivers"), (first, "about <castles>")]
        # A message names its conversation (another tab may have switched): the older one moves to the top.
        again = browser.post(
            "/chat/send",
            json={"message": "more castles", "conversation_id": first},
            headers=headers,
            timeout=120,
        )
        assert sse_events(again)[0]["session_id"] == first
        assert listed() == [(first, "about <castles>"), (second, "about rivers")]
        # Switching is a link: /c/<id> shows that conversation and becomes what / shows.
        assert "about rivers" in browser.get(f"/c/{second}").text
        assert "about rivers" in browser.get("/").text and "more castles" not in browser.get("/").text

        renamed = browser.patch(
            f"/chat/conversations/{second}", json={"title": "  <i>Rivers</i>\n"}, headers=headers
        )
        assert renamed.status_code == 200 and renamed.json()["title"] == "<i>Rivers</i>"
        assert listed()[1] == (second, "<i>Rivers</i>")
        empty = browser.patch(f"/chat/conversations/{second}", json={"title": " "}, headers=headers)
        assert empty.status_code == 400 and empty.json()["error"]["code"] == "empty_title"
        long = browser.patch(f"/chat/conversations/{second}", json={"title": "x" * 121}, headers=headers)
        assert long.status_code == 413
        assert (
            browser.patch(f"/chat/conversations/{second}", json={"title": "y"}).status_code == 400
        )  # no CSRF
        assert browser.delete(f"/chat/conversations/{second}").status_code == 400  # no CSRF

        # Another browser sees none of them and can change none of them.
        stranger_token = {"X-CSRFToken": csrf_token(stranger.get("/").text)}
        assert stranger.get("/chat/conversations").json()["conversations"] == []
        assert (
            stranger.patch(
                f"/chat/conversations/{first}", json={"title": "mine"}, headers=stranger_token
            ).status_code
            == 404
        )
        assert stranger.delete(f"/chat/conversations/{first}", headers=stranger_token).status_code == 404
        refused = stranger.post(
            "/chat/send", json={"message": "hi", "conversation_id": first}, headers=stranger_token
        )
        assert refused.status_code == 404

        assert browser.delete(f"/chat/conversations/{second}", headers=headers).status_code == 204
        assert listed() == [(first, "about <castles>")]
        assert "about rivers" not in browser.get("/").text  # the open one was deleted: / starts afresh
        gone = httpx.get(f"{gateway.url}/api/sessions/{second}", headers=gateway.admin_headers)
        assert gone.status_code == 404  # deleted for real: not even the admin key finds it
        assert browser.delete(f"/chat/conversations/{second}", headers=headers).status_code == 404
