"""The chat page in real Chromium against the quick start's pods on the real node: the ChatFrontend with its
default settings (SQLite history on its PersistentVolumeClaim) answers 20 chats from the model pod, and a
conversation outlives a killed frontend pod and a killed model pod."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator

import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys

from hack import quickstart as steps
from tests.support.browser import browser, wait_for  # noqa: F401 - `browser` is a fixture, found by name
from tests.support.cluster_quickstart import QuickStart, deployed_quickstart
from tests.support.node import NODE_NAME, Cluster
from tests.support.pods import StayingForward, announce, wait_ready
from tests.support.pods import wait_for as poll
from tests.support.procs import free_port

pytestmark = [pytest.mark.cluster, pytest.mark.controlplane, pytest.mark.slow, pytest.mark.timeout(1800)]

ANSWER = ".message.assistant:not(.greeting)"
MODEL_PODS = f"app.kubernetes.io/instance={steps.MODEL}"
FRONTEND_PODS = f"app.kubernetes.io/instance={steps.FRONTEND}"


@pytest.fixture(scope="module", autouse=True)
def time_added(pytestconfig: pytest.Config) -> Iterator[None]:
    start = time.monotonic()
    yield
    announce(pytestconfig, f"{__name__} took {time.monotonic() - start:.0f} s")


@pytest.fixture(scope="module")
def chat_on_claim(real_cluster: Cluster, operator: str, pytestconfig: pytest.Config) -> Iterator[QuickStart]:
    """The quick start with the ChatFrontend's default store: SQLite on the claim <name>-history."""
    yield from deployed_quickstart(real_cluster, pytestconfig, "chat-history", history_on_claim=True)


@pytest.fixture(scope="module")
def page(real_cluster: Cluster, chat_on_claim: QuickStart) -> Iterator[StayingForward]:
    """The frontend's Service on one loopback port for the whole module, whichever pod is behind it."""
    service = steps.frontend_service()
    with StayingForward(real_cluster.plane, chat_on_claim.namespace, service, 80, free_port()) as forward:
        yield forward


def pod_names(cluster: Cluster, namespace: str, selector: str) -> set[str]:
    listing = cluster.plane.kubectl("-n", namespace, "get", "pods", "-l", selector, "-o", "json").stdout
    alive = [p for p in json.loads(listing)["items"] if not p["metadata"].get("deletionTimestamp")]
    return {p["metadata"]["name"] for p in alive}


def kill_pod(cluster: Cluster, namespace: str, selector: str) -> str:
    """Force-delete the one pod of `selector`; wait until its replacement is Ready; returns the new pod."""
    plane = cluster.plane
    (old,) = pod_names(cluster, namespace, selector)
    plane.kubectl("-n", namespace, "delete", "pod", old, "--grace-period=0", "--force", "--wait=false")
    poll(lambda: pod_names(cluster, namespace, selector) - {old}, timeout=120, message=f"{old} not replaced")
    wait_ready(plane, namespace, f"-l {selector}", timeout=600)
    (new,) = pod_names(cluster, namespace, selector)
    return new


def send(browser, message: str) -> None:  # noqa: F811 - the fixture's value
    """Type `message` into the page and wait until its answer has streamed in completely."""
    answers_before = len(browser.find_elements(By.CSS_SELECTOR, ANSWER))

    def answered(b) -> bool:
        if b.find_elements(By.CSS_SELECTOR, ".message.error"):
            return True
        answers = b.find_elements(By.CSS_SELECTOR, ANSWER)
        return len(answers) > answers_before and "done" in answers[-1].get_attribute("class").split()

    browser.find_element(By.ID, "prompt").send_keys(message + Keys.ENTER)
    wait_for(browser, 180).until(answered)
    errors = browser.find_elements(By.CSS_SELECTOR, ".message.error")
    assert not errors, f"chat {message!r} refused: {errors[0].text}"


def bubbles(browser) -> list[str]:  # noqa: F811 - the fixture's value
    return [b.text for b in browser.find_elements(By.CSS_SELECTOR, ".message:not(.greeting) .bubble")]


def badges(browser) -> list[str]:  # noqa: F811 - the fixture's value
    return [b.text for b in browser.find_elements(By.CSS_SELECTOR, ANSWER + " .badge")]


def test_chat_page_sends_20_chats_to_the_default_frontend_pod_and_none_is_refused(
    real_cluster: Cluster,
    chat_on_claim: QuickStart,
    page: StayingForward,
    browser,  # noqa: F811 - the fixture
) -> None:
    (model_pod,) = pod_names(real_cluster, chat_on_claim.namespace, MODEL_PODS)
    browser.get(f"http://127.0.0.1:{page.local_port}/")
    for turn in range(20):
        send(browser, f"Say hello number {turn + 1}.")
    # Every answer streamed from the model pod through the Service name, none refused.
    assert badges(browser) == [f"{model_pod} · {NODE_NAME}"] * 20
    assert all(text.strip() for text in bubbles(browser)), bubbles(browser)


def test_history_survives_a_frontend_pod_kill_and_a_model_pod_kill(
    real_cluster: Cluster,
    chat_on_claim: QuickStart,
    page: StayingForward,
    browser,  # noqa: F811 - the fixture
) -> None:
    namespace = chat_on_claim.namespace
    browser.get(f"http://127.0.0.1:{page.local_port}/")
    send(browser, "My name is Ada and I live in Paris.")
    send(browser, "What is the capital of France?")
    before = bubbles(browser)
    assert len(before) == 4, before

    # The frontend pod dies: its replacement reads the same SQLite file from the same claim.
    kill_pod(real_cluster, namespace, FRONTEND_PODS)
    page.restart()  # port-forward ends with its pod; the page keeps its URL
    browser.refresh()
    assert bubbles(browser) == before, "history lost with the frontend pod"

    # The model pod dies: the conversation goes on, with its history, answered by the new pod.
    new_model = kill_pod(real_cluster, namespace, MODEL_PODS)
    send(browser, "And what is my name?")
    assert bubbles(browser)[:4] == before and len(bubbles(browser)) == 6
    assert badges(browser)[-1] == f"{new_model} · {NODE_NAME}"
    browser.refresh()
    assert bubbles(browser)[:4] == before and len(bubbles(browser)) == 6
