"""The frontend reads what a waking model is doing from its ChatModel on the real apiserver, with a token of
the ServiceAccount the operator makes for it (read-only, its namespace only), and shows it on the page."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from kubechat_operator.builders.chatfrontend import (
    build_reader_account,
    build_reader_role,
    build_reader_role_binding,
)
from kubechat_operator.spec import Resource
from tests.support.controlplane import REPO_ROOT, ControlPlane
from tests.support.frontend import run_frontend
from tests.support.model_server import running_model_server
from tests.support.procs import free_port
from tests.support.tiny_models import tiny_model_dir

pytestmark = pytest.mark.controlplane

MODEL = "llama"


def apply(plane: ControlPlane, namespace: str, manifest: dict) -> dict:
    done = plane.kubectl("-n", namespace, "apply", "-o", "json", "-f", "-", input=json.dumps(manifest))
    return json.loads(done.stdout)


def reader_account(plane: ControlPlane, namespace: str, directory: Path) -> tuple[str, Path]:
    """The operator's ServiceAccount, Role and RoleBinding for a ChatFrontend, and a service-account directory
    (token, ca.crt, namespace) as the kubelet mounts it in the frontend's pod."""
    frontend = apply(plane, namespace, {
        "apiVersion": "kubechat.dev/v1alpha1", "kind": "ChatFrontend",
        "metadata": {"name": "chat"}, "spec": {"models": [{"name": MODEL}]},
    })  # fmt: skip
    owner = Resource.from_body(frontend)
    for manifest in (build_reader_account(owner), build_reader_role(owner), build_reader_role_binding(owner)):
        apply(plane, namespace, manifest)
    account = build_reader_account(owner)["metadata"]["name"]
    sa_dir = directory / "serviceaccount"
    sa_dir.mkdir()
    token = plane.kubectl("-n", namespace, "create", "token", account, "--duration=15m").stdout.strip()
    (sa_dir / "token").write_text(token)
    (sa_dir / "ca.crt").write_bytes((plane.pki / "ca.crt").read_bytes())
    (sa_dir / "namespace").write_text(namespace)
    return account, sa_dir


def install_crds(plane: ControlPlane) -> None:
    plane.kubectl("apply", "--server-side", "-f", str(REPO_ROOT / "crds"))
    plane.kubectl("wait", "--for=condition=Established", "crd/chatmodels.kubechat.dev", "--timeout=60s")


def apply_asleep_chatmodel(plane: ControlPlane, namespace: str) -> None:
    apply(plane, namespace, {
        "apiVersion": "kubechat.dev/v1alpha1", "kind": "ChatModel",
        "metadata": {"name": MODEL}, "spec": {"model": {"id": "tiny/llama"}, "replicas": 0},
    })  # fmt: skip


def frontend_settings(
    plane: ControlPlane, tmp_path: Path, sa_dir: Path, model_port: int, **more: Any
) -> dict:
    """A frontend that reads ChatModels from the real apiserver with the reader account's token."""
    return {
        "STORE": f"sqlite:///{tmp_path}/history.db",
        "MODELS": [{"name": MODEL, "url": f"http://127.0.0.1:{model_port}"}],
        "SECRET_KEY": "test-secret",
        "KUBE_API": plane.server,
        "SA_DIR": str(sa_dir),
        **more,
    }


def can_i(plane: ControlPlane, namespace: str, account: str, *what: str) -> bool:
    subject = f"--as=system:serviceaccount:{namespace}:{account}"
    answer = plane.kubectl("auth", "can-i", *what, "-n", namespace, subject, check=False).stdout.strip()
    return answer == "yes"


def page_events(client: httpx.Client, message: str) -> Iterator[dict]:
    token = re.search(r'<meta name="csrf-token" content="([^"]+)"', client.get("/").text).group(1)
    with client.stream(
        "POST", "/chat/send", json={"message": message}, headers={"X-CSRFToken": token}
    ) as answer:
        assert answer.status_code == 200
        for line in answer.iter_lines():
            if line.startswith("data:"):
                yield json.loads(line[5:])


def test_the_page_shows_the_chatmodels_progress_read_with_the_frontends_own_read_only_token(
    control_plane: ControlPlane, namespace: str, tmp_path: Path
) -> None:
    plane = control_plane
    install_crds(plane)
    account, sa_dir = reader_account(plane, namespace, tmp_path)
    assert can_i(plane, namespace, account, "get", "chatmodels.kubechat.dev")
    for forbidden in (("patch", "chatmodels.kubechat.dev"), ("get", "secrets"), ("list", "pods")):
        assert not can_i(plane, namespace, account, *forbidden), forbidden

    apply_asleep_chatmodel(plane, namespace)
    model_port = free_port()
    settings = frontend_settings(plane, tmp_path, sa_dir, model_port)
    with (
        run_frontend(settings, tmp_path / "frontend.log", workers=None) as frontend,
        httpx.Client(base_url=frontend.url, timeout=120) as client,
    ):
        events = page_events(client, "Wake up")
        first = next(events)
        assert (first["type"], first["phase"]) == ("waking", "asleep"), first

        # What the operator publishes once a replica is asked for: one pod downloading its weights.
        plane.kubectl("-n", namespace, "scale", "chatmodel", MODEL, "--replicas=1")
        progress = {"pods": [{"pod": f"{MODEL}-0", "stage": "downloading", "percent": 41.5,
                              "message": "model.safetensors"}], "summary": "downloading 42%"}  # fmt: skip
        status = json.dumps({"status": {"replicas": 1, "readyReplicas": 0, "loadProgress": progress}})
        plane.kubectl("-n", namespace, "patch", "chatmodel", MODEL, "--subresource=status", "--type=merge",
                      "-p", status)  # fmt: skip
        deadline = time.monotonic() + 30
        for event in events:
            assert time.monotonic() < deadline, "the page never showed the download"
            if event.get("phase") == "downloading":
                assert (event["percent"], event["message"]) == (41.5, "model.safetensors")
                break

        env = {"KUBECHAT_SERVED_MODEL_NAME": MODEL, "KUBECHAT_MAX_NEW_TOKENS": "12"}
        with running_model_server(tiny_model_dir("llama"), env=env, port=model_port, wait=False):
            rest = list(events)
        kinds = [e["type"] for e in rest]
        assert "delta" in kinds and kinds[-1] == "done", rest
        assert not [
            e for e in rest[kinds.index("meta") :] if e["type"] == "waking"
        ]  # waking, then the answer


def test_a_request_for_a_deleted_chatmodel_fails_at_once_with_404_naming_it(
    control_plane: ControlPlane, namespace: str, tmp_path: Path
) -> None:
    plane = control_plane
    install_crds(plane)
    _, sa_dir = reader_account(plane, namespace, tmp_path)
    apply_asleep_chatmodel(plane, namespace)
    plane.kubectl("-n", namespace, "delete", "chatmodel", MODEL, "--wait=true")
    # The frontend still offers it (its ChatFrontend was not changed); nothing serves it any more. The wait
    # could be far longer than the test may take: only the apiserver's answer can end it in time.
    settings = frontend_settings(plane, tmp_path, sa_dir, free_port(), WAKE_TIMEOUT_S=600)
    with (
        run_frontend(settings, tmp_path / "frontend.log", workers=None) as frontend,
        httpx.Client(base_url=frontend.url, timeout=60) as client,
    ):
        api = client.post("/api/chat", json={"message": "Hello?"})
        openai = client.post(
            "/v1/chat/completions", json={"model": MODEL, "messages": [{"role": "user", "content": "Hi"}]}
        )
        page = list(page_events(client, "Anyone there?"))
    for answer in (api, openai):
        assert answer.status_code == 404, answer.text
        error = answer.json()["error"]
        assert error["code"] == "model_deleted" and repr(MODEL) in error["message"], error
    assert [e["type"] for e in page] == ["error"] and page[0]["code"] == "model_deleted", page
