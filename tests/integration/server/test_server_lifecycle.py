"""Loading, readiness, load progress, queue limits, timeouts, drain and shutdown of the real server."""

from __future__ import annotations

import json
import signal
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import requests

from tests.support.model_server import http_status, running_model_server
from tests.support.tiny_models import tiny_model_dir

LONG = {
    "messages": [{"role": "user", "content": "Tell me a long story"}],
    "max_tokens": 400,
    "temperature": 0,
}


def test_readiness_is_503_with_load_progress_until_warm_then_200(tiny_llama_dir):
    with running_model_server(tiny_llama_dir, wait=False) as server:
        seen = []
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            status, body = http_status(f"{server.url}/readyz")
            if status:
                seen.append((status, body.get("status"), body.get("load", {}).get("stage")))
                assert http_status(f"{server.url}/health")[0] == 200  # liveness answers while loading
            if status == 200:
                break
            time.sleep(0.05)
        assert seen[-1] == (200, "ready", "ready")
        loading = [s for s in seen if s[0] == 503]
        assert loading, f"never saw the loading state: {seen}"
        assert all(s[1] == "loading" and s[2] in ("loading", "warming") for s in loading)
        response = requests.post(
            f"{server.url}/v1/chat/completions", json={**LONG, "max_tokens": 2}, timeout=30
        )
        assert response.status_code == 200


def test_model_that_cannot_load_reports_failed_and_stays_unready():
    with running_model_server("no-such-org/no-such-model", wait=False) as server:
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            status, body = http_status(f"{server.url}/readyz")
            if body.get("status") == "failed":
                break
            time.sleep(0.2)
        assert status == 503 and body["load"]["stage"] == "failed"
        assert body["error"]["code"] == "model_failed"
        response = requests.post(f"{server.url}/v1/chat/completions", json=LONG, timeout=10)
        assert response.status_code == 503 and response.json()["error"]["code"] == "model_failed"


class ProgressRecorder(BaseHTTPRequestHandler):
    def do_PATCH(self):  # noqa: N802 - http.server's naming
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        self.server.patches.append((self.path, self.headers["Authorization"], body))
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args):
        pass


def test_server_reports_load_progress_to_the_configmap(tmp_path, tiny_godel_dir):
    apiserver = ThreadingHTTPServer(("127.0.0.1", 0), ProgressRecorder)
    apiserver.patches = []
    threading.Thread(target=apiserver.serve_forever, daemon=True).start()
    (tmp_path / "token").write_text("pod-token")
    env = {
        "KUBECHAT_PROGRESS_CONFIGMAP": "godel-progress",
        "POD_NAMESPACE": "team-a",
        "KUBECHAT_KUBE_API_URL": f"http://127.0.0.1:{apiserver.server_port}",
        "KUBECHAT_SA_DIR": str(tmp_path),
    }
    try:
        with running_model_server(tiny_godel_dir, env=env):
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline and not any(
                json.loads(p[2]["data"]["test-pod"])["stage"] == "ready" for p in apiserver.patches
            ):
                time.sleep(0.1)
    finally:
        apiserver.shutdown()
        apiserver.server_close()
    assert {p[0] for p in apiserver.patches} == {"/api/v1/namespaces/team-a/configmaps/godel-progress"}
    assert {p[1] for p in apiserver.patches} == {"Bearer pod-token"}
    stages = [json.loads(p[2]["data"]["test-pod"])["stage"] for p in apiserver.patches]
    assert stages[-1] == "ready"
    assert set(stages) <= {"loading", "warming", "ready"}


@pytest.fixture(scope="module")
def strict_server():
    """One request at a time and a queue of one."""
    args = ["--max-batch-size", "1", "--max-queue", "1"]
    with running_model_server(tiny_model_dir("llama"), args=args) as server:
        yield server


def test_full_queue_answers_429_with_retry_after_and_serves_the_rest(strict_server):
    def post(_):
        return requests.post(
            f"{strict_server.url}/v1/chat/completions", json={**LONG, "max_tokens": 60}, timeout=60
        )

    with ThreadPoolExecutor(8) as pool:
        responses = list(pool.map(post, range(8)))
    statuses = sorted(r.status_code for r in responses)
    assert 200 in statuses and 429 in statuses, statuses
    refused = next(r for r in responses if r.status_code == 429)
    assert refused.headers["Retry-After"] == "1"
    assert refused.json()["error"]["code"] == "queue_full"


def test_request_that_runs_past_its_timeout_gets_504(tiny_llama_dir):
    with running_model_server(tiny_llama_dir, args=["--request-timeout-s", "1"]) as server:
        response = requests.post(
            f"{server.url}/v1/chat/completions", json={**LONG, "max_tokens": 1900}, timeout=60
        )
    assert response.status_code == 504, response.text
    assert response.json()["error"]["code"] == "timeout"


def test_sigterm_drains_readiness_503_finishes_streams_then_exits_zero(tiny_llama_dir):
    with running_model_server(tiny_llama_dir, args=["--drain-seconds", "2"]) as server:
        stream = requests.post(
            f"{server.url}/v1/chat/completions",
            json={**LONG, "max_tokens": 1500, "stream": True},
            stream=True,
            timeout=120,
        )
        lines = stream.iter_lines(decode_unicode=True)
        assert next(line for line in lines if line.startswith("data: "))
        server.process.send_signal(signal.SIGTERM)
        time.sleep(0.5)
        status, body = http_status(f"{server.url}/readyz")
        assert (status, body.get("status")) == (503, "draining")
        refused = requests.post(f"{server.url}/v1/chat/completions", json=LONG, timeout=10)
        assert refused.status_code == 503
        rest = [line for line in lines if line]
        assert rest[-1] == "data: [DONE]"
        assert '"finish_reason": "length"' in rest[-2]
        assert server.process.wait(60) == 0


def test_shutdown_needs_the_admin_token_then_drains_and_exits(tiny_godel_dir):
    with running_model_server(tiny_godel_dir, env={"KUBECHAT_ADMIN_TOKEN": "s3cret"}) as server:
        assert requests.post(f"{server.url}/shutdown", timeout=5).status_code == 403
        wrong = requests.post(f"{server.url}/shutdown", headers={"Authorization": "Bearer nope"}, timeout=5)
        assert wrong.status_code == 403 and wrong.json()["error"]["code"] == "forbidden"
        ok = requests.post(f"{server.url}/shutdown", headers={"Authorization": "Bearer s3cret"}, timeout=5)
        assert ok.status_code == 202
        assert server.process.wait(60) == 0
