"""Limits and request ids behind a proxy: the client's address from trusted hops only, page forms counted
like sends, and one request id from the client through the logs and back."""

from __future__ import annotations

import httpx
import pytest

from tests.integration.frontend.test_fe_page import csrf_token
from tests.support.frontend import avoid_rate_window_edge, run_frontend

pytestmark = pytest.mark.slow


@pytest.fixture
def behind_a_proxy(model_server, tmp_path):
    settings = {
        "STORE": f"sqlite:///{tmp_path}/history.db",
        "MODELS": [{"name": model_server.name, "url": model_server.url}],
        "RATE_LIMIT": 3, "TRUSTED_PROXIES": 1, "SECRET_KEY": "s",
    }  # fmt: skip
    with run_frontend(settings, tmp_path / "frontend.log") as frontend:
        yield frontend


def page_posts(url: str, client_ip: str, count: int) -> list[int]:
    """`count` page form posts (new chat, end) from `client_ip` as the proxy reports it."""
    with httpx.Client(base_url=url, headers={"X-Forwarded-For": client_ip}) as browser:
        token = csrf_token(browser.get("/").text)
        paths = ["/new", "/end"] * count
        return [browser.post(path, data={"csrf_token": token}).status_code for path in paths[:count]]


def test_new_and_end_are_limited_per_client_as_the_trusted_proxy_reports_it(behind_a_proxy):
    avoid_rate_window_edge()
    assert page_posts(behind_a_proxy.url, "203.0.113.7", 4) == [303, 303, 303, 429]
    # Another client behind the same proxy has its own budget; a spoofed extra hop changes nothing, since
    # only the last hop (the one the trusted proxy added) is believed.
    assert page_posts(behind_a_proxy.url, "203.0.113.8", 3) == [303, 303, 303]
    assert page_posts(behind_a_proxy.url, "198.51.100.1, 203.0.113.7", 1) == [429]


def test_a_request_id_comes_back_and_is_logged_and_a_bad_one_is_replaced(behind_a_proxy):
    given = httpx.get(behind_a_proxy.url + "/api/models", headers={"X-Request-ID": "trace-abc.123"})
    assert given.headers["X-Request-ID"] == "trace-abc.123"
    made = httpx.get(behind_a_proxy.url + "/api/models", headers={"X-Request-ID": "bad id;" * 50})
    assert made.headers["X-Request-ID"] != "" and " " not in made.headers["X-Request-ID"]
    fresh = httpx.get(behind_a_proxy.url + "/api/models")
    assert len(fresh.headers["X-Request-ID"]) == 32
    logged = [e.get("request_id") for e in behind_a_proxy.log_lines() if e.get("path") == "/api/models"]
    assert "trace-abc.123" in logged
