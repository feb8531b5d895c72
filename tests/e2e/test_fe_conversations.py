"""Several conversations in one browser, in Chromium against the real model server (tiny Llama): the list
beside the chat, switching by its links, renaming in place with the keyboard, deleting after asking."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from selenium.webdriver.common.action_chains import ActionChains
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys

from tests.support.browser import wait_for
from tests.support.frontend import RunningFrontend, ServedModel, run_frontend, served_model

pytestmark = pytest.mark.slow

ANSWERED = ".message.assistant.done"


@pytest.fixture(scope="module")
def model_server() -> Iterator[ServedModel]:
    with served_model("llama", "llama") as server:
        yield server


@pytest.fixture
def frontend(model_server, tmp_path) -> Iterator[RunningFrontend]:
    settings = {
        "STORE": f"sqlite:///{tmp_path}/history.db",
        "MODELS": [{"name": model_server.name, "url": model_server.url}],
        "SECRET_KEY": "test-secret",
    }
    with run_frontend(settings, tmp_path / "frontend.log") as running:
        yield running


def titles(browser) -> list[str]:
    return [a.text for a in browser.find_elements(By.CSS_SELECTOR, "#conversation-list .conversation-title")]


def open_title(browser) -> str:
    return browser.find_element(By.CSS_SELECTOR, "#conversation-list a[aria-current='page']").text


def shown_questions(browser) -> list[str]:
    return [b.text for b in browser.find_elements(By.CSS_SELECTOR, ".message.user .bubble")]


def ask(browser, question: str) -> None:
    answered = len(browser.find_elements(By.CSS_SELECTOR, ANSWERED))
    browser.find_element(By.ID, "prompt").send_keys(question + Keys.ENTER)
    wait_for(browser, 60).until(
        lambda b: (
            len(b.find_elements(By.CSS_SELECTOR, ANSWERED)) > answered
            or b.find_elements(By.CSS_SELECTOR, ".message.error")
        )
    )
    assert not browser.find_elements(By.CSS_SELECTOR, ".message.error")


def test_two_conversations_are_listed_switched_renamed_and_deleted(browser, frontend, tmp_path):
    browser.get(frontend.url)
    wait_for(browser, 10).until(lambda b: b.find_element(By.ID, "conversation-empty").is_displayed())
    ask(browser, "Tell me about castles")
    wait_for(browser, 10).until(lambda b: titles(b) == ["Tell me about castles"])
    assert open_title(browser) == "Tell me about castles"

    browser.find_element(By.ID, "new-chat-button").click()
    wait_for(browser, 10).until(lambda b: "/c/" in b.current_url and not shown_questions(b))
    wait_for(browser, 10).until(lambda b: titles(b) == ["New chat", "Tell me about castles"])
    ask(browser, "And rivers?")
    wait_for(browser, 10).until(lambda b: titles(b) == ["And rivers?", "Tell me about castles"])
    browser.save_screenshot(str(tmp_path / "two-conversations.png"))

    # Switch: the older one's link shows its history.
    browser.find_element(By.LINK_TEXT, "Tell me about castles").click()
    wait_for(browser, 10).until(lambda b: shown_questions(b) == ["Tell me about castles"])
    wait_for(browser, 10).until(lambda b: open_title(b) == "Tell me about castles")
    ask(browser, "Which is the oldest?")  # goes to this conversation, which moves to the top
    wait_for(browser, 10).until(lambda b: titles(b) == ["Tell me about castles", "And rivers?"])

    # Rename with the keyboard: Tab from the link to its Rename button, Enter, type, Enter.
    rivers = browser.find_element(By.LINK_TEXT, "And rivers?")
    browser.execute_script("arguments[0].focus()", rivers)
    ActionChains(browser).send_keys(Keys.TAB).perform()
    focused = browser.switch_to.active_element
    assert focused.get_attribute("aria-label") == "Rename \u201cAnd rivers?\u201d"
    ActionChains(browser).send_keys(Keys.ENTER).perform()
    wait_for(browser, 5).until(lambda b: b.switch_to.active_element.get_attribute("class") == "rename-input")
    ActionChains(browser).send_keys("Rivers <b>& lakes</b>" + Keys.ENTER).perform()
    wait_for(browser, 10).until(lambda b: titles(b) == ["Tell me about castles", "Rivers <b>& lakes</b>"])
    assert browser.find_elements(By.CSS_SELECTOR, "#conversation-list b") == []  # shown as text, not HTML

    browser.refresh()  # kept by the server, not the page
    wait_for(browser, 10).until(lambda b: titles(b) == ["Tell me about castles", "Rivers <b>& lakes</b>"])
    assert shown_questions(browser) == ["Tell me about castles", "Which is the oldest?"]

    # Delete the open one (after asking): the page starts afresh and the other stays.
    castles = browser.find_element(By.CSS_SELECTOR, "#conversation-list li.open")
    ActionChains(browser).move_to_element(castles).perform()
    castles.find_element(By.CSS_SELECTOR, "button.delete").click()
    wait_for(browser, 5).until(lambda b: b.switch_to.alert)
    browser.switch_to.alert.accept()
    wait_for(browser, 10).until(lambda b: not shown_questions(b) and titles(b) == ["Rivers <b>& lakes</b>"])
    browser.refresh()
    wait_for(browser, 10).until(lambda b: titles(b) == ["Rivers <b>& lakes</b>"])
    assert shown_questions(browser) == []
    browser.find_element(By.LINK_TEXT, "Rivers <b>& lakes</b>").click()
    wait_for(browser, 10).until(lambda b: shown_questions(b) == ["And rivers?"])


def test_on_a_phone_the_list_opens_from_the_top_bar_and_closes_with_escape(browser, frontend, tmp_path):
    browser.set_window_size(390, 844)
    browser.get(frontend.url)
    ask(browser, "A question on a phone")
    assert not browser.find_element(By.ID, "sidebar").is_displayed()  # the chat gets the whole width
    toggle = browser.find_element(By.ID, "sidebar-toggle")
    assert toggle.get_attribute("aria-expanded") == "false"
    toggle.click()
    wait_for(browser, 5).until(lambda b: b.find_element(By.ID, "sidebar").is_displayed())
    assert toggle.get_attribute("aria-expanded") == "true"
    wait_for(browser, 10).until(lambda b: titles(b) == ["A question on a phone"])
    browser.save_screenshot(str(tmp_path / "phone-list.png"))
    assert browser.execute_script("return document.documentElement.scrollWidth") <= 390
    browser.find_element(By.CSS_SELECTOR, "#conversation-list .conversation-title").send_keys(Keys.ESCAPE)
    wait_for(browser, 5).until(lambda b: not b.find_element(By.ID, "sidebar").is_displayed())
    assert browser.switch_to.active_element == toggle  # focus goes back where the list was opened
    toggle.click()
    wait_for(browser, 5).until(lambda b: b.find_element(By.ID, "sidebar").is_displayed())
    ActionChains(browser).move_to_element_with_offset(
        browser.find_element(By.TAG_NAME, "body"), 170, 0
    ).click().perform()
    wait_for(browser, 5).until(
        lambda b: not b.find_element(By.ID, "sidebar").is_displayed()
    )  # a tap beside it
