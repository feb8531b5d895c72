"""The quick start on the real node: the chart's operator, the model server and the frontend run as pods from
kubechat's own images, and every claim is checked through what a user has (kubectl, port-forward)."""

from __future__ import annotations

import contextlib
import ipaddress
import json
import re
import threading
import time
import urllib.error
import urllib.request

import pytest
from selenium.webdriver.common.by import By

from hack import quickstart as steps
from tests.support.browser import browser  # noqa: F401 - a fixture
from tests.support.browser import wait_for as browser_wait
from tests.support.cluster_quickstart import QuickStart
from tests.support.controlplane import ControlPlane
from tests.support.node import NODE_NAME, POD_SUBNET, Cluster
from tests.support.pods import announce, port_forward, wait_for, wait_ready

# The first test also pays for the session's set-up: starting the node and, on a cold machine, building the
# images (the server's alone takes 7-12 minutes on two cores).
pytestmark = [pytest.mark.cluster, pytest.mark.controlplane, pytest.mark.slow, pytest.mark.timeout(2700)]

EXAMPLE = steps.EXAMPLE
MODEL, FRONTEND = steps.MODEL, steps.FRONTEND  # the names in examples/quickstart.yaml


def in_range(address: str) -> bool:
    return ipaddress.ip_address(address) in ipaddress.ip_network(POD_SUBNET)


def pods(cluster: Cluster, namespace: str, selector: str) -> list[dict]:
    listing = cluster.plane.kubectl("-n", namespace, "get", "pods", "-l", selector, "-o", "json").stdout
    return json.loads(listing)["items"]


def test_operator_runs_as_a_pod_and_its_logs_come_from_kubectl(real_cluster: Cluster, operator: str) -> None:
    plane = real_cluster.plane
    (pod,) = pods(real_cluster, operator, "app.kubernetes.io/name=kubechat")
    assert pod["status"]["phase"] == "Running"
    assert pod["spec"]["nodeName"] == NODE_NAME and in_range(pod["status"]["podIP"])
    assert pod["spec"]["containers"][0]["image"].startswith("localhost/kubechat-operator:")
    logs = plane.kubectl("-n", operator, "logs", pod["metadata"]["name"]).stdout
    assert "kopf" in logs.lower() or "chatmodel" in logs.lower(), logs[-2000:]


def test_quickstart_model_pod_turns_ready_and_answers_with_its_pod_and_node(
    real_cluster: Cluster, quickstart: QuickStart
) -> None:
    plane, namespace = real_cluster.plane, quickstart.namespace
    phase = plane.kubectl("-n", namespace, "get", "chatmodel", MODEL, "-o", "jsonpath={.status.phase}")
    wait_for(
        lambda: plane.kubectl(
            "-n", namespace, "get", "chatmodel", MODEL, "-o", "jsonpath={.status.phase}"
        ).stdout == "Ready",
        timeout=60,
        message=f"ChatModel not Ready: {phase.stdout}",
    )  # fmt: skip
    (pod,) = pods(real_cluster, namespace, f"app.kubernetes.io/instance={MODEL}")
    assert pod["spec"]["nodeName"] == NODE_NAME and in_range(pod["status"]["podIP"])
    forward, port = port_forward(plane, namespace, f"service/{MODEL}", 8080)
    try:
        request = urllib.request.Request(
            f"http://127.0.0.1:{port}/chat",
            data=json.dumps({"message": "What is the capital of France?", "history": []}).encode(),
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=120) as response:
            answer = json.load(response)
    finally:
        forward.kill()
        forward.wait()
    assert answer["pod"] == pod["metadata"]["name"]
    assert answer["node"] == NODE_NAME
    assert "Paris" in answer["response"], answer  # real weights in the real image on the real node


def test_frontend_pod_with_default_settings_answers_every_chat(
    real_cluster: Cluster, quickstart: QuickStart
) -> None:
    plane, namespace = real_cluster.plane, quickstart.namespace
    wait_ready(plane, namespace, f"-l app.kubernetes.io/instance={FRONTEND}", timeout=300)
    forward, port = port_forward(plane, namespace, f"service/{FRONTEND}-frontend", 80)
    answers = []
    try:
        for turn in range(10):
            request = urllib.request.Request(
                f"http://127.0.0.1:{port}/api/chat",
                data=json.dumps({"message": f"Hello, turn {turn}!"}).encode(),
                headers={"Content-Type": "application/json"},
            )
            with urllib.request.urlopen(request, timeout=120) as response:
                answers.append(json.load(response))
    finally:
        forward.kill()
        forward.wait()
    (model_pod,) = pods(real_cluster, namespace, f"app.kubernetes.io/instance={MODEL}")
    assert len(answers) == 10
    assert all(a.get("pod") == model_pod["metadata"]["name"] for a in answers), answers[:2]


chat_through_frontend = steps.chat  # one chat through the frontend's /api/chat on 127.0.0.1:port


def model_pod_names(cluster: Cluster, namespace: str) -> set[str]:
    return {p["metadata"]["name"] for p in pods(cluster, namespace, f"app.kubernetes.io/instance={MODEL}")}


def test_killed_model_pod_is_replaced_and_the_frontend_answers_from_the_new_one(
    real_cluster: Cluster, quickstart: QuickStart
) -> None:
    plane, namespace = real_cluster.plane, quickstart.namespace
    (old,) = model_pod_names(real_cluster, namespace)
    plane.kubectl("-n", namespace, "delete", "pod", old, "--grace-period=0", "--force", "--wait=false")
    wait_for(lambda: model_pod_names(real_cluster, namespace) - {old}, timeout=60, message="no new model pod")
    wait_ready(plane, namespace, f"-l app.kubernetes.io/instance={MODEL}", timeout=300)
    (new,) = model_pod_names(real_cluster, namespace)
    forward, port = port_forward(plane, namespace, f"service/{FRONTEND}-frontend", 80)
    try:

        def answered_by_new_pod() -> bool:
            # The frontend's connections to the old pod are gone: the first chats may be refused.
            try:
                return chat_through_frontend(port, "Are you back?").get("pod") == new
            except urllib.error.URLError:
                return False

        wait_for(answered_by_new_pod, timeout=60, interval=2, message="no answer from the new model pod")
    finally:
        forward.kill()
        forward.wait()


def test_instruction_change_rolls_the_model_pod_while_chats_keep_being_answered(
    real_cluster: Cluster, quickstart: QuickStart
) -> None:
    plane, namespace = real_cluster.plane, quickstart.namespace
    (old,) = model_pod_names(real_cluster, namespace)
    forward, port = port_forward(plane, namespace, f"service/{FRONTEND}-frontend", 80)
    answered_by = []
    try:
        # The surge pod must fit beside the old one: the example asks 1 CPU of this 2-CPU node, and the
        # operator, frontend and add-ons take ~0.3 more, so the new pod asks half (a rollout with no chat
        # dropped needs room for one more pod: maxUnavailable is 0, docs/operator.md).
        patch = {
            "spec": {
                "prompt": {"instruction": "answer briefly and kindly"},
                "resources": {"requests": {"cpu": "500m"}},
            }
        }
        plane.kubectl("-n", namespace, "patch", "chatmodel", MODEL, "--type=merge", "-p", json.dumps(patch))
        deadline = time.monotonic() + 300
        # Chat on, one after another, until the new pod answers: none may fail during the rollout.
        while time.monotonic() < deadline:
            answer = chat_through_frontend(port, f"Chat {len(answered_by)} during the rollout")
            answered_by.append(answer["pod"])
            if answered_by[-1] != old:
                break
    finally:
        forward.kill()
        forward.wait()
    if answered_by[-1] == old:
        pods_now = plane.kubectl("-n", namespace, "get", "pods,events", "-o", "wide", check=False).stdout
        pytest.fail(f"the old pod still answers after 300 s: {answered_by[-3:]}\n{pods_now[-4000:]}")
    plane.kubectl("-n", namespace, "rollout", "status", f"deployment/{MODEL}", "--timeout=120s", timeout=150)
    wait_for(
        lambda: old not in model_pod_names(real_cluster, namespace),
        timeout=120,
        message=f"the old pod {old} is still there",
    )


def let_the_frontend_wait_long(plane: ControlPlane, namespace: str) -> None:
    """Through the CRD: a cold start on this shared machine can pass the default 180 s wait, and the module's
    earlier chats share the per-IP budget with the next ones (all come through one port-forward)."""
    deployment = f"deployment/{FRONTEND}-frontend"

    def generation() -> int:
        return int(
            plane.kubectl("-n", namespace, "get", deployment, "-o", "jsonpath={.metadata.generation}").stdout
        )

    before = generation()
    patch = {"spec": {"wake": {"timeoutSeconds": 900}, "rateLimit": {"requestsPerMinute": 1000}}}
    plane.kubectl("-n", namespace, "patch", "chatfrontend", FRONTEND, "--type=merge", "-p", json.dumps(patch))
    # The new settings roll the frontend's pods (a checksum in the template): wait for that rollout to end,
    # or a port-forward could land on a pod about to go.
    wait_for(lambda: generation() > before, timeout=60, message="the operator did not pass spec.wake on")
    plane.kubectl("-n", namespace, "rollout", "status", deployment, "--timeout=180s", timeout=200)


def frontend_waiting(port: int) -> float:
    """The frontend pod's `kubechat_frontend_waiting_requests` for the quick start's model."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as response:
        text = response.read().decode()
    found = re.search(rf'^kubechat_frontend_waiting_requests{{model="{MODEL}"}} (\S+)$', text, re.M)
    return float(found.group(1)) if found else -1.0


def test_a_model_scaled_to_zero_wakes_for_20_api_requests_and_a_browser_chat_that_are_all_answered(
    real_cluster: Cluster,
    quickstart: QuickStart,
    browser,  # noqa: F811 - the fixture
    pytestconfig: pytest.Config,
) -> None:
    plane, namespace = real_cluster.plane, quickstart.namespace
    let_the_frontend_wait_long(plane, namespace)
    # The operator's request autoscaler takes the idle model to zero and wakes it for what the frontend holds.
    autoscaling = {"minReplicas": 0, "maxReplicas": 1, "scaleToZeroAfterSeconds": 20}
    patch = {"spec": {"autoscaling": autoscaling}}
    plane.kubectl("-n", namespace, "patch", "chatmodel", MODEL, "--type=merge", "-p", json.dumps(patch))
    wait_for(lambda: not model_pod_names(real_cluster, namespace), timeout=240, message="model pods remain")

    forward, port = port_forward(plane, namespace, f"service/{FRONTEND}-frontend", 80)
    results: list = []

    def ask(turn: int) -> None:
        try:
            results.append(chat_through_frontend(port, f"Wake up, turn {turn}!", timeout=900))
        except Exception as error:  # kept, and shown by the assertion below
            results.append(error)

    threads = [threading.Thread(target=ask, args=(turn,), daemon=True) for turn in range(20)]
    try:
        for thread in threads:
            thread.start()
        # localhost, not 127.0.0.1: the session cookie is Secure, which Chromium allows on localhost's http.
        browser.get(f"http://localhost:{port}/")
        browser.find_element(By.ID, "prompt").send_keys("Are you awake?")
        browser.find_element(By.ID, "send").click()
        status = browser_wait(browser, 60).until(
            lambda d: d.find_element(By.CSS_SELECTOR, ".pending .waking")
        )
        answer = browser.find_element(By.CSS_SELECTOR, ".message.assistant.pending")
        shown = {status.text}
        # No waiting on the gauge here: the operator wakes the model as soon as it reads a held request from
        # it (the Wake event checked below says so), so how many are held at one instant is up to timing.
        woken_at = time.monotonic()
        deadline = time.monotonic() + 900
        while "done" not in answer.get_attribute("class") and time.monotonic() < deadline:
            with contextlib.suppress(Exception):  # the status line is replaced by the answer at the end
                shown.add(answer.find_element(By.CSS_SELECTOR, ".waking").text)
            time.sleep(0.5)
        announce(pytestconfig, f"21 held at 0 -> the page's answer in {time.monotonic() - woken_at:.0f} s; "
                               f"the page showed: {sorted(shown)}")  # fmt: skip
        for thread in threads:
            thread.join(max(1.0, deadline - time.monotonic()))
        # Above 0 while they were held (the operator woke the model on it), back to 0 once all are answered.
        wait_for(lambda: frontend_waiting(port) == 0, timeout=30, message="answered requests still counted")
    finally:
        forward.kill()
        forward.wait()
    # One pod answered them all (it may be gone again by now: the model idles back to zero after 20 s).
    assert len(results) == 20 and all(isinstance(r, dict) for r in results), results
    (pod,) = {r["pod"] for r in results}
    assert "done" in answer.get_attribute("class") and not answer.find_elements(By.CSS_SELECTOR, ".waking")
    assert answer.find_element(By.CSS_SELECTOR, ".badge").text.startswith(pod)
    assert all(shown) and shown, shown  # the page showed the model waking (asleep, starting, loading ...)
    # The operator, not the test, woke it (an Event per scaling decision; status may say Idle again by now).
    events = plane.kubectl(
        "-n", namespace, "get", "events", "--field-selector", f"involvedObject.name={MODEL}", "-o", "json"
    ).stdout
    assert "Wake" in [e["reason"] for e in json.loads(events)["items"]], events[-2000:]


def test_deleting_the_quickstart_removes_every_child_and_container(
    real_cluster: Cluster, quickstart: QuickStart
) -> None:
    plane, namespace = real_cluster.plane, quickstart.namespace
    plane.kubectl("-n", namespace, "delete", "-f", str(EXAMPLE), "--wait=true", "--timeout=120s", timeout=150)
    kinds = "deployments,services,configmaps,pods,persistentvolumeclaims,horizontalpodautoscalers"
    wait_for(
        lambda: (
            not plane.kubectl("-n", namespace, "get", kinds, "-o", "name")
            .stdout.replace("configmap/kube-root-ca.crt", "")
            .strip()
        ),
        timeout=120,
        message="children of the quick start remain",
    )

    def containers_of_namespace() -> list[str]:
        listing = real_cluster.node.ctr("containers", "ls").stdout
        ids = [line.split()[0] for line in listing.splitlines()[1:]]
        return [
            c for c in ids
            if namespace in real_cluster.node.ctr("containers", "info", c, check=False).stdout
        ]  # fmt: skip

    wait_for(lambda: not containers_of_namespace(), timeout=120, message="containers left on the node")
    plane.kubectl("delete", "namespace", namespace, "--wait=false")
    plane.kubectl("delete", "persistentvolume", f"{namespace}-cache", "--wait=false", check=False)
