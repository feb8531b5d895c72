"""Request autoscaling on the real control plane: the CRD's rules, no HPA, and the operator scaling a
ChatModel by the load real HTTP /metrics endpoints report (local servers stand in for kwok's pods, which run
nothing), down after the window, to zero when idle, and awake again when a ChatFrontend holds a request."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from operator_harness import Kubectl, OperatorProcess, wait_until

pytestmark = [pytest.mark.controlplane, pytest.mark.slow]

MODEL = """
apiVersion: kubechat.dev/v1alpha1
kind: ChatModel
metadata: {name: tiny}
spec:
  model: {id: microsoft/GODEL-v1_1-base-seq2seq}
  replicas: 1
  resources: {requests: {cpu: 500m}}
  autoscaling: %s
"""
FRONTEND = """
apiVersion: kubechat.dev/v1alpha1
kind: ChatFrontend
metadata: {name: chat}
spec:
  models: [{name: tiny}]
  store: {volume: EmptyDir}
"""


class MetricsServer:
    """A pod's /metrics on a loopback port, its text set by the test."""

    def __init__(self) -> None:
        self.text = ""
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
                body = owner.text.encode()
                self.send_response(200)
                self.send_header("Content-Type", "text/plain; version=0.0.4")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.address = f"127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def model_load(self, running: int, waiting: int) -> None:
        self.text = (
            f'vllm:num_requests_running{{model_name="tiny"}} {running}\n'
            f'vllm:num_requests_waiting{{model_name="tiny"}} {waiting}\n'
        )

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def metrics_servers() -> Iterator[list[MetricsServer]]:
    servers: list[MetricsServer] = []
    yield servers
    for server in servers:
        server.close()


def _live_pods(kubectl: Kubectl, selector: str) -> list[str]:
    pods = kubectl.items("pods", selector)
    return sorted(
        p["metadata"]["name"]
        for p in pods
        if not p["metadata"].get("deletionTimestamp")
        and any(c["type"] == "Ready" and c["status"] == "True" for c in p["status"].get("conditions", []))
    )


def _serve_pods(
    kubectl: Kubectl, operator: OperatorProcess, servers: list[MetricsServer], pods: list[str], text: str
) -> None:
    """Every pod named gets a local /metrics server answering text, and the operator reads it there."""
    mapping = json.loads(operator.scrape_addresses.read_text())
    for pod in pods:
        key = f"{kubectl.namespace}/{pod}"
        if key not in mapping:
            server = MetricsServer()
            servers.append(server)
            mapping[key] = server.address
        next(s for s in servers if s.address == mapping[key]).text = text
    operator.scrape_addresses.write_text(json.dumps(mapping))


def _replicas(kubectl: Kubectl) -> int:
    return kubectl.get("chatmodel", "tiny")["spec"]["replicas"]


def _cell(table: str, column: str) -> str:
    """A column of the first row of `kubectl get` output (cells may be empty, so by the header's offsets)."""
    header, row = table.splitlines()[:2]
    start = header.index(column)
    rest = header[start + len(column) :]
    end = start + len(column) + (len(rest) - len(rest.lstrip())) if rest.strip() else len(row)
    return row[start:end].strip()


def _event_messages(kubectl: Kubectl, reason: str) -> list[str]:
    events = kubectl.items("events")
    return [
        e["message"]
        for e in events
        if e["involvedObject"]["name"] == "tiny" and e["involvedObject"]["kind"] == "ChatModel"
        and e["reason"] == reason
    ]  # fmt: skip


def test_cpu_metric_refuses_min_zero_and_a_missing_cpu_request_and_defaults_fill_the_request_settings(
    kubectl: Kubectl,
) -> None:
    result = kubectl(
        "apply", "-f", "-", input=MODEL % "{metric: cpu, minReplicas: 0, maxReplicas: 2}", check=False
    )
    assert result.returncode != 0
    assert "minReplicas 0 (scale to zero) needs autoscaling.metric: requests" in result.stderr
    no_cpu_request = MODEL.replace("  resources: {requests: {cpu: 500m}}\n", "")
    result = kubectl("apply", "-f", "-", input=no_cpu_request % "{metric: cpu, maxReplicas: 2}", check=False)
    assert result.returncode != 0
    assert "autoscaling.metric cpu needs resources.requests.cpu" in result.stderr
    kubectl.apply(MODEL % "{minReplicas: 0, maxReplicas: 2}")
    autoscaling = kubectl.get("chatmodel", "tiny")["spec"]["autoscaling"]
    assert autoscaling == {
        "metric": "requests",
        "minReplicas": 0,
        "maxReplicas": 2,
        "scaleToZeroAfterSeconds": 300,
        "scaleUpStabilizationSeconds": 0,
        "scaleDownStabilizationSeconds": 300,
        "targetCPUUtilizationPercentage": 70,
    }


def test_metric_requests_prunes_the_cpu_hpa_and_shows_the_autoscalers_view_in_status(
    kubectl: Kubectl, start_operator
) -> None:
    operator = start_operator("--autoscale-interval=1")
    kubectl.apply(MODEL % "{metric: cpu, minReplicas: 1, maxReplicas: 3}")
    wait_until(lambda: kubectl.get("hpa", "tiny"), 30, "the CPU HPA")
    kubectl.apply(MODEL % "{metric: requests, minReplicas: 1, maxReplicas: 3}")
    wait_until(lambda: kubectl.get("hpa", "tiny") is None, 30, "the HPA pruned")
    # The kwok pod is not in the operator's address map: it counts as unknown, so nothing scales down.
    status = wait_until(lambda: kubectl.status("chatmodel", "tiny").get("autoscaling"), 30, "status")
    assert status["metric"] == "requests" and status["targetRequestsPerReplica"] == 8
    wait_until(lambda: kubectl.status("chatmodel", "tiny")["autoscaling"]["unknownPods"] == 1, 30, "unknown")
    assert _replicas(kubectl) == 1
    labels = f'chatmodel="tiny",namespace="{kubectl.namespace}"'
    assert operator.metric(f"kubechat_operator_autoscaler_unknown_pods{{{labels}}}") == 1
    kubectl(
        "patch", "chatmodel", "tiny", "--type=json", "-p", '[{"op": "remove", "path": "/spec/autoscaling"}]'
    )
    wait_until(
        lambda: "autoscaling" not in kubectl.status("chatmodel", "tiny"), 30, "status.autoscaling gone"
    )


def test_replicas_follow_the_request_load_down_after_the_window_to_zero_when_idle_and_wake_for_a_frontend(
    kubectl: Kubectl, start_operator, metrics_servers: list[MetricsServer]
) -> None:
    operator = start_operator("--autoscale-interval=1")
    settings = (
        "{minReplicas: 0, maxReplicas: 3, targetRequestsPerReplica: 2, scaleDownStabilizationSeconds: 3,"
        " scaleToZeroAfterSeconds: 8}"
    )
    kubectl.apply(MODEL % settings)
    selector = "kubechat.dev/chatmodel=tiny"
    first = wait_until(lambda: _live_pods(kubectl, selector), 60, "a ready model pod")
    # 5 running + 1 waiting on one pod, 2 per replica: 3 replicas.
    _serve_pods(kubectl, operator, metrics_servers, first, "")
    metrics_servers[0].model_load(5, 1)
    wait_until(lambda: _replicas(kubectl) == 3, 30, "scaled up to 3")
    status = kubectl.status("chatmodel", "tiny")["autoscaling"]
    assert (status["lastScaleReason"], status["desiredReplicas"], status["observedLoad"]) == (
        "LoadIncreased",
        3,
        6,
    )
    [up] = _event_messages(kubectl, "LoadIncreased")
    assert up.startswith("scaled from 1 to 3 replicas: load 6 = 6 in flight or queued on 1/1 ready pods")
    table = kubectl("get", "chatmodel", "tiny").stdout
    assert _cell(table, "DESIRED") == "3" and _cell(table, "LASTSCALE") == "LoadIncreased"

    # The new pods answer too, the load stops: down to one after the 3 s window, then to zero once idle 8 s.
    three = wait_until(lambda: (p := _live_pods(kubectl, selector)) and len(p) == 3 and p, 60, "3 pods")
    idle = 'vllm:num_requests_running{model_name="tiny"} 0\nvllm:num_requests_waiting{model_name="tiny"} 0\n'
    _serve_pods(kubectl, operator, metrics_servers, three, idle)
    wait_until(lambda: _replicas(kubectl) == 1, 30, "scaled down to 1")
    wait_until(lambda: _replicas(kubectl) == 0, 30, "scaled to zero")
    assert _event_messages(kubectl, "LoadDecreased")[0].startswith("scaled from 3 to 1 replicas")
    assert _event_messages(kubectl, "Idle")[0].startswith("scaled from 1 to 0 replicas")
    assert kubectl.status("chatmodel", "tiny")["autoscaling"]["lastScaleReason"] == "Idle"

    # A ChatFrontend offering the model holds a request for it: the model wakes.
    kubectl.apply(FRONTEND)
    frontend_pods = wait_until(
        lambda: _live_pods(kubectl, "kubechat.dev/chatfrontend=chat"), 60, "a ready frontend pod"
    )
    held = 'kubechat_frontend_waiting_requests{model="tiny"} 1\n'
    _serve_pods(kubectl, operator, metrics_servers, frontend_pods, held)
    wait_until(lambda: _replicas(kubectl) == 1, 30, "woken to 1")
    assert "1 held by frontends" in _event_messages(kubectl, "Wake")[0]
    assert operator.metric('kubechat_operator_autoscaler_scales_total{reason="Wake"}') == 1
