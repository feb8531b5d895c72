"""Answers rendered as markdown in Chromium by the vendored marked + DOMPurify + highlight.js (served from
/static under the page's CSP): lists, links, highlighted code with a working copy button, no images.

The upstream is `tests.support.fake_upstream.hostile_model` because a tiny random model cannot be made to
answer with a given markdown document; every other page test talks to the real model server.
"""

from __future__ import annotations

from selenium.webdriver.common.by import By

from tests.support.browser import wait_for
from tests.support.fake_upstream import hostile_model
from tests.support.frontend import run_frontend

CODE = "def greet(name):\n    return f'hello {name}'"
ANSWER = [
    "## Steps\n\n- first **step**\n- second step\n\n",
    "See [the docs](https://example.org/docs) and ![tracker](https://example.org/t.png?q=secret).\n\n",
    f"```python\n{CODE}\n```\n",
]


def test_answer_renders_markdown_with_highlighted_copyable_code_and_no_images(browser, tmp_path):
    with (
        hostile_model(ANSWER) as upstream,
        run_frontend(
            {"STORE": f"sqlite:///{tmp_path}/history.db", "MODELS": [{"name": "md", "url": upstream}],
             "SECRET_KEY": "test-secret"},
            tmp_path / "frontend.log",
        ) as frontend,
    ):  # fmt: skip
        browser.execute_cdp_cmd(
            "Browser.grantPermissions",
            {"origin": frontend.url, "permissions": ["clipboardReadWrite", "clipboardSanitizedWrite"]},
        )
        browser.get(frontend.url)
        browser.find_element(By.ID, "prompt").send_keys("explain\n")
        wait_for(browser, 20).until(lambda b: b.find_elements(By.CSS_SELECTOR, ".message.assistant.done"))

        for when in ("live", "after reload"):
            bubble = browser.find_elements(By.CSS_SELECTOR, ".message.assistant:not(.greeting) .bubble")[-1]
            assert bubble.find_element(By.TAG_NAME, "h2").text == "Steps", when
            assert [li.text for li in bubble.find_elements(By.CSS_SELECTOR, "ul li")] == [
                "first step",
                "second step",
            ], when
            assert bubble.find_element(By.CSS_SELECTOR, "li strong").text == "step", when
            link = bubble.find_element(By.CSS_SELECTOR, "a")
            assert link.get_attribute("href") == "https://example.org/docs", when
            assert "noopener" in link.get_attribute("rel") and link.get_attribute("target") == "_blank", when
            assert bubble.find_elements(By.TAG_NAME, "img") == [], when
            code = bubble.find_element(By.CSS_SELECTOR, "pre code")
            assert "language-python" in code.get_attribute("class"), when
            assert code.find_elements(By.CSS_SELECTOR, ".hljs-keyword"), when  # highlighted, not plain text
            assert code.text == CODE, when

            copy = bubble.find_element(By.CSS_SELECTOR, "pre button.copy")
            copy.click()
            wait_for(browser, 5).until(lambda _b, button=copy: button.text == "Copied")
            copied = browser.execute_async_script(
                "navigator.clipboard.readText().then(arguments[0], (e) => arguments[0]('error: ' + e))"
            )
            assert copied == CODE, when
            browser.save_screenshot(str(tmp_path / f"markdown-{when.replace(' ', '-')}.png"))
            browser.refresh()
            wait_for(browser, 10).until(
                lambda b: b.find_elements(By.CSS_SELECTOR, ".message.assistant:not(.greeting) .bubble pre")
            )
