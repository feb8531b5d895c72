"""A model pod replaced under the frontend (a rollout): chats sent meanwhile are answered, not refused."""

from __future__ import annotations

import signal
import time

import httpx

from tests.support.frontend import run_frontend, served_model
from tests.support.model_server import http_status
from tests.support.tcp_service import tcp_service


def test_a_chat_on_a_kept_alive_connection_to_a_draining_pod_is_answered_by_the_new_pod(tmp_path) -> None:
    # The old pod drains for 30 s (readiness 503, new work refused with 503) as it does after SIGTERM in a
    # rollout; the Service already sends new connections to the new pod. One worker, so that the second
    # chat meets the kept-alive connection the first one left in the pool.
    with (
        served_model("llama", "llama", POD_NAME="old-pod", KUBECHAT_DRAIN_SECONDS="30") as old,
        served_model("llama", "llama", POD_NAME="new-pod") as new,
        tcp_service(old.server.port) as service,
    ):
        settings = {
            "STORE": f"sqlite:///{tmp_path}/history.db",
            "MODELS": [{"name": "llama", "url": service.url}],
        }
        with run_frontend(settings, tmp_path / "frontend.log", workers=1) as frontend:
            first = httpx.post(f"{frontend.url}/api/chat", json={"message": "Hello"}, timeout=60)
            assert first.status_code == 200 and first.json()["pod"] == "old-pod"

            service.switch(new.server.port)
            old.server.process.send_signal(signal.SIGTERM)
            deadline = time.monotonic() + 20
            while http_status(f"{old.url}/readyz")[1].get("status") != "draining":
                assert time.monotonic() < deadline, "the old model server did not start draining"
                time.sleep(0.1)

            second = httpx.post(f"{frontend.url}/api/chat", json={"message": "Still there?"}, timeout=60)
            assert second.status_code == 200, second.text
            assert second.json()["pod"] == "new-pod"
