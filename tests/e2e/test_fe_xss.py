"""Hostile model output renders as text in the chat page, live and after a reload.

The upstream here is `tests.support.fake_upstream.hostile_model`, an HTTP server speaking the model server's
`/v1/chat/completions` SSE wire format and answers with a chosen hostile string: a randomly initialised tiny
model cannot be made to say `<script>…`, and what matters is what the frontend does when an upstream does.
Every other browser test talks to the real model server.
"""

from __future__ import annotations

from selenium.webdriver.common.by import By

from tests.support.browser import wait_for
from tests.support.fake_upstream import hostile_model
from tests.support.frontend import run_frontend

HOSTILE = [
    "<script>window.__pwned = 1</script>",
    '<img src=x onerror="window.__pwned = 2">',
    " **bold** and `<b>code</b>`\n```html\n<script>window.__pwned = 3</script>\n```",
]


def answer_bubbles(browser):
    return browser.find_elements(By.CSS_SELECTOR, ".message.assistant:not(.greeting) .bubble")


def test_model_answer_with_script_and_html_renders_as_text(browser, tmp_path):
    with (
        hostile_model(HOSTILE) as upstream,
        run_frontend(
            {"STORE": f"sqlite:///{tmp_path}/history.db", "MODELS": [{"name": "evil", "url": upstream}],
             "SECRET_KEY": "test-secret", "TITLE": "<i>Title</i>", "GREETING": "<b>hi</b>"},
            tmp_path / "frontend.log",
        ) as frontend,
    ):  # fmt: skip
        browser.get(frontend.url)
        assert browser.title == "<i>Title</i>"  # escaped into the title, not parsed
        prompt = browser.find_element(By.ID, "prompt")
        prompt.send_keys("<script>window.__pwned = 4</script>\n")
        wait_for(browser, 20).until(lambda b: b.find_elements(By.CSS_SELECTOR, ".message.assistant.done"))

        for when in ("live", "after reload"):
            bubble = answer_bubbles(browser)[-1]
            text = bubble.text
            assert "<script>window.__pwned = 1</script>" in text, when
            assert '<img src=x onerror="window.__pwned = 2">' in text, when
            assert bubble.find_elements(By.TAG_NAME, "script") == [], when
            assert bubble.find_elements(By.TAG_NAME, "img") == [], when
            # The safe markdown still works: bold, inline code and a code block holding the text verbatim.
            assert bubble.find_element(By.TAG_NAME, "strong").text == "bold"
            assert bubble.find_element(By.CSS_SELECTOR, "p code").text == "<b>code</b>"
            assert (
                "<script>window.__pwned = 3</script>" in bubble.find_element(By.CSS_SELECTOR, "pre code").text
            )
            user = browser.find_elements(By.CSS_SELECTOR, ".message.user .bubble")[-1]
            assert user.text == "<script>window.__pwned = 4</script>", when
            assert browser.find_element(By.CSS_SELECTOR, ".greeting .bubble").text == "<b>hi</b>"
            assert browser.execute_script("return window.__pwned === undefined"), when
            browser.save_screenshot(str(tmp_path / f"xss-{when.replace(' ', '-')}.png"))
            browser.refresh()
            wait_for(browser, 10).until(lambda b: answer_bubbles(b))
