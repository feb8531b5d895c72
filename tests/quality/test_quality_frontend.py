"""The chat frontend in front of the real model, through its JSON API and its page in Chromium: the user's
question reaches the model and its answer comes back whole."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys as KeyPress

from tests.support.browser import browser, wait_for  # noqa: F401 - browser is a fixture, found by name
from tests.support.frontend import Keys, make_keys, run_frontend
from tests.support.model_server import RunningServer
from tests.support.real_model import SERVED_NAME

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def frontend_url_and_keys(
    real_model_server: RunningServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[str, Keys]]:
    directory = tmp_path_factory.mktemp("quality-frontend")
    keys = make_keys(directory)
    settings = {
        "STORE": f"sqlite:///{directory}/history.db",
        "MODELS": [{"name": SERVED_NAME, "url": real_model_server.url}],
        "API_KEYS_FILE": keys.file,
        "ADMIN_KEY": keys.admin_key,
        "SECRET_KEY": "quality-tests",
        "UPSTREAM_TIMEOUT_S": 600,  # tokens are slow while other work shares the cores
    }
    with run_frontend(settings, directory / "frontend.log") as frontend:
        yield frontend.url, keys


def test_frontend_chat_api_answers_the_capital_of_france(frontend_url_and_keys: tuple[str, Keys]) -> None:
    url, keys = frontend_url_and_keys
    response = httpx.post(
        f"{url}/api/chat",
        json={"message": "What is the capital of France?"},
        headers=keys.user_headers,
        timeout=600,
    )
    assert response.status_code == 200, response.text
    assert "Paris" in response.json()["response"]


def test_chat_page_answers_the_capital_of_france(
    frontend_url_and_keys: tuple[str, Keys],
    browser,  # noqa: F811 - the fixture
) -> None:
    url, _ = frontend_url_and_keys
    browser.get(url)
    prompt = browser.find_element(By.ID, "prompt")
    prompt.send_keys("What is the capital of France?")
    prompt.send_keys(KeyPress.ENTER)
    answer = ".message.assistant:not(.greeting)"
    wait_for(browser, 600).until(
        lambda b: (
            b.find_elements(By.CSS_SELECTOR, f"{answer}.done")
            or b.find_elements(By.CSS_SELECTOR, ".message.error")
        )
    )
    assert not browser.find_elements(By.CSS_SELECTOR, ".message.error")
    assert "Paris" in browser.find_element(By.CSS_SELECTOR, f"{answer} .bubble").text
