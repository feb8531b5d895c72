"""The chat page in headless Chromium as production runs it: gunicorn's default worker count with the
operator's shared key (no send refused), and a conversation whose model was removed (a new chat offered)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys

from tests.support.browser import wait_for
from tests.support.frontend import ServedModel, run_frontend, served_model
from tests.support.procs import free_port

pytestmark = pytest.mark.slow

ANSWER = ".message.assistant:not(.greeting)"


@pytest.fixture(scope="module")
def model_server() -> Iterator[ServedModel]:
    # Answers of up to 120 tokens: long enough to still be streaming when the reader scrolls up.
    with served_model("llama", "llama", KUBECHAT_MAX_NEW_TOKENS="120") as server:
        yield server


def settings_for(tmp_path, models) -> dict:
    return {
        "STORE": f"sqlite:///{tmp_path}/history.db", "MODELS": models, "SECRET_KEY": "the-operators-key",
        "RATE_LIMIT": 10_000,
    }  # fmt: skip


def send_and_wait(browser, text: str, count: int) -> None:
    prompt = browser.find_element(By.ID, "prompt")
    prompt.send_keys(text, Keys.ENTER)
    wait_for(browser, 60).until(
        lambda b: (
            len(b.find_elements(By.CSS_SELECTOR, ANSWER + ".done")) >= count
            or b.find_elements(By.CSS_SELECTOR, ".message.error")
        )
    )


def test_twenty_page_sends_on_the_default_worker_count_are_none_refused(browser, model_server, tmp_path):
    settings = settings_for(tmp_path, [{"name": model_server.name, "url": model_server.url}])
    with run_frontend(settings, tmp_path / "frontend.log", workers=None) as frontend:
        browser.get(frontend.url)
        for i in range(20):
            send_and_wait(browser, f"question number {i}", i + 1)
        errors = [e.text for e in browser.find_elements(By.CSS_SELECTOR, ".message.error")]
        assert errors == []
        assert len(browser.find_elements(By.CSS_SELECTOR, ANSWER + ".done")) == 20
        browser.refresh()  # and all twenty turns were kept, whichever worker served each
        bubbles = [b.text for b in browser.find_elements(By.CSS_SELECTOR, ".message.user .bubble")]
        assert bubbles == [f"question number {i}" for i in range(20)]

        # Reading back while an answer streams: the page does not pull the reader down to it, and the finished
        # answer is announced once to screen readers (not the page's every streamed change).
        done_before = len(browser.find_elements(By.CSS_SELECTOR, ANSWER + ".done"))
        browser.find_element(By.ID, "prompt").send_keys("one more", Keys.ENTER)
        # (instant: the page scrolls smoothly, and a smooth scroll still under way would carry on)
        browser.execute_script(
            "document.getElementById('conversation').scrollTo({top: 0, behavior: 'instant'})"
        )
        wait_for(browser, 60).until(
            lambda b: len(b.find_elements(By.CSS_SELECTOR, ANSWER + ".done")) > done_before
        )
        assert browser.execute_script("return document.getElementById('conversation').scrollTop") < 100
        last = browser.find_elements(By.CSS_SELECTOR, ANSWER + " .bubble")[-1].text
        announced = browser.find_element(By.ID, "announcer")
        assert announced.get_attribute("aria-live") == "polite"
        assert announced.get_attribute("textContent").split() == last.split()
        assert browser.find_element(By.ID, "conversation").get_attribute("aria-live") is None


def test_a_removed_model_is_named_and_the_page_offers_a_new_chat(browser, model_server, tmp_path):
    port = free_port()
    before = settings_for(tmp_path, [{"name": model_server.name, "url": model_server.url}])
    with run_frontend(before, tmp_path / "first.log", port=port) as frontend:
        browser.get(frontend.url)
        send_and_wait(browser, "hello", 1)
    after = settings_for(tmp_path, [{"name": "replacement", "url": model_server.url}])
    with run_frontend(after, tmp_path / "second.log", port=port):
        send_and_wait(browser, "are you still there?", 2)
        error = browser.find_element(By.CSS_SELECTOR, ".message.error")
        assert "'llama'" in error.text and "no longer offered" in error.text
        button = error.find_element(By.CSS_SELECTOR, "button.retry")
        assert button.text == "New chat"
        button.click()
        wait_for(browser, 30).until(
            lambda b: (
                [p.get_attribute("value") for p in b.find_elements(By.ID, "model-picker")] == ["replacement"]
            )
        )
        # A new, empty conversation on an offered model (this test's model server answers as `llama` only).
        assert not browser.find_elements(By.CSS_SELECTOR, ".message.error, .message.user")
