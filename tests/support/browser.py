"""Headless Chromium driven by Selenium, with Debian's chromedriver given explicitly (no Selenium Manager)."""

from __future__ import annotations

import shutil
from collections.abc import Iterator

import pytest
from selenium import webdriver
from selenium.common.exceptions import StaleElementReferenceException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.support.ui import WebDriverWait

CHROMEDRIVER = "/usr/bin/chromedriver"
CHROMIUM = "/usr/bin/chromium"


@pytest.fixture
def browser(tmp_path) -> Iterator[webdriver.Chrome]:
    if not (shutil.which(CHROMEDRIVER) and shutil.which(CHROMIUM)):
        pytest.fail("chromium and chromium-driver are not installed; run hack/system-deps")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                "--window-size=1200,900", f"--user-data-dir={tmp_path / 'chromium-profile'}"):  # fmt: skip
        options.add_argument(arg)
    driver = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(30)
    try:
        yield driver
    finally:
        driver.quit()


def wait_for(driver: webdriver.Chrome, seconds: float) -> WebDriverWait:
    """A WebDriverWait whose conditions may read elements the page is re-rendering: an element replaced
    between finding it and reading it is tried again, not a failure."""
    return WebDriverWait(driver, seconds, ignored_exceptions=(StaleElementReferenceException,))
