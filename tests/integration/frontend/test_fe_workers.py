"""Sessions across gunicorn's default worker count and two replicas: one key signs every cookie, or the
frontend refuses to start. Measured before: 10 of 18 page sends refused with csrf_failed on 2 workers."""

from __future__ import annotations

import itertools

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.integration.frontend.test_fe_page import csrf_token, send, sse_events
from tests.support.databases import create_database
from tests.support.frontend import run_frontend, start_frontend_process

pytestmark = pytest.mark.slow


def test_several_workers_without_a_shared_key_refuse_to_start_with_a_clear_log_line(tmp_path, model_server):
    settings = {"STORE": f"sqlite:///{tmp_path}/h.db", "MODELS": [{"name": "llama", "url": model_server.url}]}
    process, _ = start_frontend_process(settings, tmp_path / "fe.log", workers=None)
    assert process.wait(timeout=60) == 2
    log = (tmp_path / "fe.log").read_text()
    assert "refusing to start 2 workers without KUBECHAT_FRONTEND_SECRET_KEY" in log


def test_twenty_page_sends_across_default_workers_and_two_replicas_are_all_answered(
    tmp_path, model_server, postgres_server
):
    settings = {
        "STORE": create_database(postgres_server), "STORE_PASSWORD": postgres_server.password,
        "MODELS": [{"name": model_server.name, "url": model_server.url}],
        "SECRET_KEY": "one-key-for-every-replica", "RATE_LIMIT": 10_000,
    }  # fmt: skip
    # Both replicas start at once on a fresh database, with gunicorn's default worker count (2 each).
    with (
        run_frontend(settings, tmp_path / "a.log", workers=None) as first,
        run_frontend(settings, tmp_path / "b.log", workers=None) as second,
        httpx.Client() as browser,  # one cookie jar, as a browser behind a load balancer has
    ):
        token = csrf_token(browser.get(first.url + "/").text)
        replicas = itertools.cycle([first.url, second.url])
        outcomes = []
        for i in range(20):
            browser.base_url = next(replicas)
            response = send(browser, token, f"message {i}")
            events = sse_events(response) if response.status_code == 200 else []
            outcomes.append((response.status_code, events[-1]["type"] if events else response.text[:100]))
        assert outcomes == [(200, "done")] * 20
        browser.base_url = second.url
        page = browser.get("/").text
        assert all(f"message {i}" in page for i in range(20))  # one conversation holds all twenty turns
        # Each pod's /metrics adds up its workers: 20 answered sends between the two pods.
        answered = sum(sends_answered(httpx.get(url + "/metrics").text) for url in (first.url, second.url))
        assert answered == 20


def sends_answered(exposition: str) -> float:
    for family in text_string_to_metric_families(exposition):
        if family.name == "kubechat_frontend_requests":
            return sum(
                s.value
                for s in family.samples
                if s.name.endswith("_total") and s.labels == {"route": "/chat/send", "code": "200"}
            )
    return 0.0
