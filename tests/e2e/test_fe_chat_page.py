"""The chat page in headless Chromium against the real model server (tiny Llama): send, stream, badge,
history across reloads, new conversation, stop, keyboard, and a phone-sized screen."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import pytest
from selenium.common.exceptions import ElementNotInteractableException
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys

from tests.support.browser import wait_for
from tests.support.frontend import RunningFrontend, ServedModel, run_frontend, served_model

pytestmark = pytest.mark.slow

ANSWER = ".message.assistant:not(.greeting)"


@pytest.fixture(scope="module")
def model_server() -> Iterator[ServedModel]:
    # Long answers (up to 300 tokens, about a second) so that streaming and the stop button can be seen.
    with served_model("llama", "llama", KUBECHAT_MAX_NEW_TOKENS="300") as server:
        yield server


@pytest.fixture
def frontend(model_server, tmp_path) -> Iterator[RunningFrontend]:
    settings = {
        "STORE": f"sqlite:///{tmp_path}/history.db",
        "MODELS": [{"name": model_server.name, "url": model_server.url}],
        "PERSONAS": [{"name": "Tavern keeper", "character": "a grumpy tavern keeper", "world": "a village"}],
        "TITLE": "Village chat",
        "GREETING": "Welcome, traveller! Ask me **anything**.",
        "SECRET_KEY": "test-secret",
    }
    with run_frontend(settings, tmp_path / "frontend.log") as running:
        yield running


def wait_answer_done(browser, count: int, timeout: float = 60) -> None:
    wait_for(browser, timeout).until(
        lambda b: (
            len(b.find_elements(By.CSS_SELECTOR, ANSWER + ".done, " + ANSWER + ".stopped")) >= count
            or b.find_elements(By.CSS_SELECTOR, ".message.error")
        )
    )
    errors = browser.find_elements(By.CSS_SELECTOR, ".message.error")
    assert not errors, errors[0].text


def watch_answer_growth(browser) -> None:
    """Record every text the newest answer shows, to see it grow while the answer streams."""
    browser.execute_script(
        """
        window.__seen = [];
        new MutationObserver(() => {
          const answers = document.querySelectorAll('.message.assistant:not(.greeting) .bubble');
          const text = answers.length ? answers[answers.length - 1].textContent : '';
          if (text && window.__seen[window.__seen.length - 1] !== text) window.__seen.push(text);
        }).observe(document.getElementById('messages'),
                   {childList: true, subtree: true, characterData: true});
        """
    )


def test_chat_streams_answers_with_badge_and_keeps_history(browser, frontend, model_server, tmp_path):
    browser.get(frontend.url)
    assert browser.title == "Village chat"
    assert browser.find_element(By.CSS_SELECTOR, ".greeting strong").text == "anything"

    prompt = browser.find_element(By.ID, "prompt")
    prompt.send_keys("Hello, how are you today?")
    prompt.send_keys(Keys.SHIFT, Keys.ENTER)  # a new line, not a send
    prompt.send_keys("I am going to Paris")
    assert prompt.get_attribute("value") == "Hello, how are you today?\nI am going to Paris"
    assert browser.find_elements(By.CSS_SELECTOR, ".message.user") == []
    watch_answer_growth(browser)
    prompt.send_keys(Keys.ENTER)

    wait_answer_done(browser, 1)
    assert prompt.get_attribute("value") == ""
    user = browser.find_elements(By.CSS_SELECTOR, ".message.user .bubble")
    assert user[-1].text == "Hello, how are you today?\nI am going to Paris"
    answer = browser.find_elements(By.CSS_SELECTOR, ANSWER)[-1]
    badge = answer.find_element(By.CSS_SELECTOR, ".badge").text
    assert badge == f"{model_server.pod} · {model_server.node}"
    answer_text = answer.find_element(By.CSS_SELECTOR, ".bubble").text
    seen = browser.execute_script("return window.__seen")
    assert len(seen) > 1, "the answer appeared at once instead of streaming in"
    assert browser.find_element(By.ID, "send").is_displayed()  # the stop button is gone again

    prompt.send_keys("What should I see?" + Keys.ENTER)
    wait_answer_done(browser, 2)
    browser.save_screenshot(str(tmp_path / "chat-desktop.png"))

    browser.refresh()
    bubbles = [b.text for b in browser.find_elements(By.CSS_SELECTOR, ".message:not(.greeting) .bubble")]
    assert bubbles[0] == "Hello, how are you today?\nI am going to Paris"
    assert bubbles[1] == answer_text
    assert bubbles[2] == "What should I see?"
    assert len(bubbles) == 4
    assert len(browser.find_elements(By.CSS_SELECTOR, ANSWER + " .badge")) == 2

    browser.set_window_size(390, 844)  # a phone
    browser.refresh()
    assert browser.find_element(By.ID, "prompt").is_displayed()
    width = browser.execute_script("return document.documentElement.scrollWidth")
    assert width <= 390, "the page scrolls sideways on a phone"
    browser.save_screenshot(str(tmp_path / "chat-phone.png"))


def test_new_conversation_with_a_persona_starts_empty(browser, frontend):
    browser.get(frontend.url)
    browser.find_element(By.ID, "prompt").send_keys("remember me" + Keys.ENTER)
    wait_answer_done(browser, 1)

    persona = browser.find_element(By.ID, "persona-picker")
    persona.find_element(
        By.CSS_SELECTOR, "option[value='Tavern keeper']"
    ).click()  # nothing is lost: no alert
    wait_for(browser, 10).until(lambda b: not b.find_elements(By.CSS_SELECTOR, ".message.user"))
    picked = browser.find_element(By.CSS_SELECTOR, "#persona-picker option:checked")
    assert picked.get_attribute("value") == "Tavern keeper"

    assert not browser.find_element(By.ID, "end-chat-link").is_displayed()  # nothing to delete yet
    browser.find_element(By.ID, "prompt").send_keys("who are you?" + Keys.ENTER)
    wait_answer_done(browser, 1)
    browser.refresh()
    users = [b.text for b in browser.find_elements(By.CSS_SELECTOR, ".message.user .bubble")]
    assert users == ["who are you?"]

    # Ending the conversation deletes it (after asking).
    browser.find_element(By.CSS_SELECTOR, "#end-chat-link button").click()
    wait_for(browser, 5).until(lambda b: b.switch_to.alert)
    browser.switch_to.alert.accept()
    wait_for(browser, 10).until(lambda b: not b.find_elements(By.CSS_SELECTOR, ".message.user"))
    browser.refresh()
    assert browser.find_elements(By.CSS_SELECTOR, ".message.user") == []


def test_stop_button_ends_the_answer_and_keeps_what_was_shown(browser, frontend):
    browser.get(frontend.url)
    prompt = browser.find_element(By.ID, "prompt")
    # A tiny random model sometimes ends its answer early; ask until one is still streaming when stopped.
    for attempt in range(1, 6):
        prompt.send_keys(f"Tell me a long story, take {attempt}" + Keys.ENTER)
        stop = browser.find_element(By.ID, "stop")
        wait_for(browser, 30).until(
            lambda b: (
                b.find_elements(By.CSS_SELECTOR, ANSWER + ":not(.pending) .bubble")
                and b.find_elements(By.CSS_SELECTOR, ANSWER)[-1].find_element(By.CSS_SELECTOR, ".bubble").text
                or b.find_elements(By.CSS_SELECTOR, ANSWER + ".done")
            )
        )
        if stop.is_displayed():
            # The answer may end between the check and the click: then this attempt cannot be stopped.
            with contextlib.suppress(ElementNotInteractableException):
                stop.click()
        wait_answer_done(browser, attempt)
        if browser.find_elements(By.CSS_SELECTOR, ANSWER + ".stopped"):
            break
    stopped = browser.find_elements(By.CSS_SELECTOR, ANSWER)[-1]
    assert "stopped" in stopped.get_attribute("class")
    shown = stopped.find_element(By.CSS_SELECTOR, ".bubble").text
    assert browser.find_element(By.ID, "send").is_displayed()

    # What the user saw of the stopped answer is kept (the server saves it when the stream is cut).
    wait_for(browser, 10).until(
        lambda b: b.refresh() or len(b.find_elements(By.CSS_SELECTOR, ANSWER)) == attempt
    )
    kept = browser.find_elements(By.CSS_SELECTOR, ANSWER + " .bubble")[-1].text
    assert kept.startswith(shown[:20])


def test_model_outage_shows_the_error_with_retry_and_keeps_the_history(browser, tmp_path):
    with served_model("llama", "llama") as model:
        settings = {
            "STORE": f"sqlite:///{tmp_path}/history.db",
            "MODELS": [{"name": model.name, "url": model.url}],
            "SECRET_KEY": "test-secret",
            "WAKE_MAX_WAITING": 0,  # holding off: the outage shows at once (test_fe_wake shows the waking)
        }
        with run_frontend(settings, tmp_path / "frontend.log") as frontend:
            browser.get(frontend.url)
            prompt = browser.find_element(By.ID, "prompt")
            prompt.send_keys("before the outage" + Keys.ENTER)
            wait_answer_done(browser, 1)

            model.stop()
            prompt.send_keys("during the outage" + Keys.ENTER)
            error = wait_for(browser, 30).until(lambda b: b.find_element(By.CSS_SELECTOR, ".message.error"))
            assert "cannot be reached" in error.text and "conversation is safe" in error.text
            retry = error.find_element(By.CSS_SELECTOR, "button.retry")
            browser.save_screenshot(str(tmp_path / "chat-outage.png"))
            retry.click()  # still down: the same clear error comes back, nothing is lost
            wait_for(browser, 30).until(lambda b: b.find_elements(By.CSS_SELECTOR, ".message.error"))

            browser.refresh()
            users = [b.text for b in browser.find_elements(By.CSS_SELECTOR, ".message.user .bubble")]
            assert users == ["before the outage"]
            assert len(browser.find_elements(By.CSS_SELECTOR, ANSWER + " .badge")) == 1


def test_regenerate_answers_the_last_question_again_and_replaces_its_answer(browser, frontend, model_server):
    browser.get(frontend.url)
    assert browser.find_elements(By.CSS_SELECTOR, "button.regenerate") == []  # nothing to regenerate yet
    prompt = browser.find_element(By.ID, "prompt")
    prompt.send_keys("First question" + Keys.ENTER)
    wait_answer_done(browser, 1)
    prompt.send_keys("Second question" + Keys.ENTER)
    wait_answer_done(browser, 2)
    # Only the last answer offers it.
    buttons = browser.find_elements(By.CSS_SELECTOR, "button.regenerate")
    assert len(buttons) == 1
    assert buttons[0].find_element(By.XPATH, "..") == browser.find_elements(By.CSS_SELECTOR, ANSWER)[-1]
    # As a reader would: scroll it into the middle first (at the very bottom the composer covers it).
    browser.execute_script("arguments[0].scrollIntoView({block: 'center'})", buttons[0])
    buttons[0].click()
    wait_for(browser, 60).until(
        lambda b: (
            b.find_elements(By.CSS_SELECTOR, ANSWER + ".done ~ " + ANSWER + ".done")
            and b.find_elements(By.CSS_SELECTOR, "button.regenerate")
        )
    )
    errors = browser.find_elements(By.CSS_SELECTOR, ".message.error")
    assert not errors, errors[0].text
    live = [b.text for b in browser.find_elements(By.CSS_SELECTOR, ".message:not(.greeting) .bubble")]
    assert live[::2] == ["First question", "Second question"] and len(live) == 4

    # Saved in place of the old answer: after a reload the same two questions, each answered once.
    browser.refresh()
    stored = [b.text for b in browser.find_elements(By.CSS_SELECTOR, ".message:not(.greeting) .bubble")]
    assert stored == live
    assert len(browser.find_elements(By.CSS_SELECTOR, ANSWER + " .badge")) == 2
