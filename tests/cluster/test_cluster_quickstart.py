"""The quick start on the real node: the chart's operator, the model server and the frontend run as pods from
kubechat's own images, and every claim is checked through what a user has (kubectl, port-forward)."""

from __future__ import annotations

import ipaddress
import json
import time
import urllib.error
import urllib.request

import pytest

from hack import quickstart as steps
from tests.support.cluster_quickstart import QuickStart
from tests.support.node import NODE_NAME, POD_SUBNET, Cluster
from tests.support.pods import port_forward, wait_for, wait_ready

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


@pytest.mark.xfail(
    reason="seen on the real node in 2 of 3 runs: one chat of a series sent during the rollout got 503 "
    "SERVICE UNAVAILABLE from the frontend while the old model pod terminated; the rollout drops chats "
    "(frontend/model-server/operator to find out which part)",
    strict=False,
)
def test_instruction_change_rolls_the_model_pod_while_chats_keep_being_answered(
    real_cluster: Cluster, quickstart: QuickStart
) -> None:
    plane, namespace = real_cluster.plane, quickstart.namespace
    (old,) = model_pod_names(real_cluster, namespace)
    forward, port = port_forward(plane, namespace, f"service/{FRONTEND}-frontend", 80)
    answered_by = []
    try:
        patch = {"spec": {"prompt": {"instruction": "answer briefly and kindly"}}}
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
    assert answered_by[-1] != old, f"the old pod still answers after 300 s: {answered_by[-3:]}"
    plane.kubectl("-n", namespace, "rollout", "status", f"deployment/{MODEL}", "--timeout=120s", timeout=150)
    wait_for(
        lambda: old not in model_pod_names(real_cluster, namespace),
        timeout=120,
        message=f"the old pod {old} is still there",
    )


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
