"""`kubechat chat URL|NAME` driven in a real pseudo-terminal (pexpect): via a frontend to the real model
server, and a ChatFrontend's name resolved through the kubeconfig on the real local control plane."""

from __future__ import annotations

import json
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pexpect
import pytest

from tests.support.controlplane import REPO_ROOT
from tests.support.fake_upstream import hostile_model
from tests.support.frontend import run_frontend
from tests.support.model_server import running_model_server
from tests.support.procs import free_port, python_env
from tests.support.tiny_models import tiny_model_dir

pytestmark = pytest.mark.slow

# prompt_toolkit draws the prompt's trailing space as a cursor move, so the visible text is "you>".
PROMPT = "you>"
UP_ARROW = "\x1b[A"
BOLD = "\x1b[1m"


def spawn_chat(target: str, *args: str, api_key: str, **env: str) -> pexpect.spawn:
    # The line history goes to a throwaway XDG state directory; pexpect answers no cursor-position request
    # (a real terminal does), so prompt_toolkit is told not to wait for one.
    state = tempfile.mkdtemp(prefix="kubechat-cli-state-")
    env = python_env(
        KUBECHAT_API_KEY=api_key, NO_COLOR="1", TERM="xterm", XDG_STATE_HOME=state, PROMPT_TOOLKIT_NO_CPR="1",
        **env,
    )  # fmt: skip
    command = [sys.executable, "-m", "kubechat_frontend.cli", "chat", target, *args]
    return pexpect.spawn(
        command[0], command[1:], env=env, encoding="utf-8", timeout=120, dimensions=(40, 120)
    )


@contextmanager
def chatting(target: str, *args: str, api_key: str = "") -> Iterator[pexpect.spawn]:
    """A terminal chat at its first prompt; on leaving, Ctrl-D ends it (it must exit) and it is closed."""
    chat = spawn_chat(target, *args, api_key=api_key)
    try:
        chat.expect_exact(PROMPT)
        yield chat
        chat.sendeof()
        chat.expect(pexpect.EOF)
    finally:
        chat.close(force=True)


def test_terminal_chat_streams_answers_with_the_pod_and_keeps_the_session(gateway, model_server):
    chat = spawn_chat(gateway.url, "--persona", "bard", api_key=gateway.user_key)
    try:
        chat.expect_exact(PROMPT)
        chat.sendline("Hello, how are you today?")
        chat.expect_exact("bot> ")
        chat.expect_exact(f"[{model_server.pod} · {model_server.node}]")
        chat.expect_exact(PROMPT)
        # The Up arrow brings the last line back from the history; Enter sends it again.
        chat.send(UP_ARROW)
        chat.expect_exact("today?")
        chat.send("\r")
        chat.expect_exact(f"[{model_server.pod} · {model_server.node}]")
        chat.expect_exact(PROMPT)
        chat.sendline("/quit")
        chat.expect(r"Session (\S+) kept")
        session_id = chat.match.group(1)
        chat.expect(pexpect.EOF)
    finally:
        chat.close(force=True)
    assert chat.exitstatus == 0
    history = httpx.get(f"{gateway.url}/api/sessions/{session_id}", headers=gateway.user_headers).json()
    assert history["persona"] == "bard"
    assert [m["content"] for m in history["messages"] if m["role"] == "user"] == [
        "Hello, how are you today?"
    ] * 2

    # Resume it, then end it from the terminal.
    chat = spawn_chat(gateway.url, "--session", session_id, api_key=gateway.user_key)
    try:
        chat.expect_exact(PROMPT)
        chat.sendline("Tell me more")
        chat.expect_exact(f"[{model_server.pod} · {model_server.node}]")
        chat.sendline("/end")
        chat.expect_exact("Conversation ended.")
        chat.expect(pexpect.EOF)
    finally:
        chat.close(force=True)
    assert (
        httpx.get(f"{gateway.url}/api/sessions/{session_id}", headers=gateway.user_headers).status_code == 404
    )


def test_terminal_chat_reports_a_bad_key_and_keeps_running(gateway):
    chat = spawn_chat(gateway.url, api_key="wrong-key")
    try:
        chat.expect_exact(PROMPT)
        chat.sendline("hello")
        chat.expect_exact("error: The API key is not valid. (HTTP 403)")
        chat.expect_exact(PROMPT)
        chat.sendeof()
        chat.expect(pexpect.EOF)
    finally:
        chat.close(force=True)
    assert chat.exitstatus == 0


def test_terminal_chat_renders_the_answer_as_markdown(tmp_path):
    answer = ["Use **bold** words and `code`:\n\n", "```python\nprint('hi')\n```\n"]
    with hostile_model(answer, pod="md-pod", node="md-node") as upstream:
        settings = {"STORE": f"sqlite:///{tmp_path}/history.db", "MODELS": [{"name": "md", "url": upstream}],
                    "SECRET_KEY": "test-secret", "RATE_LIMIT": 10_000}  # fmt: skip
        with run_frontend(settings, tmp_path / "frontend.log") as frontend, chatting(frontend.url) as chat:
            chat.sendline("show me")
            chat.expect_exact("[md-pod · md-node]")
            shown = chat.before
            chat.expect_exact(PROMPT)
    # Rendered, not raw: emphasis is a bold escape without its asterisks, the fence is gone, the code stays.
    assert "**bold**" not in shown and "```" not in shown
    assert f"{BOLD}bold" in shown
    assert "print" in shown and "'hi'" in shown


def test_terminal_chat_shows_what_a_waking_model_does_then_its_answer(tmp_path):
    model_port = free_port()
    settings = {"STORE": f"sqlite:///{tmp_path}/history.db", "SECRET_KEY": "test-secret",
                "MODELS": [{"name": "llama", "url": f"http://127.0.0.1:{model_port}"}],
                "RATE_LIMIT": 10_000, "KUBE_API": "off"}  # fmt: skip
    with run_frontend(settings, tmp_path / "frontend.log") as frontend, chatting(frontend.url) as chat:
        chat.sendline("Are you awake?")
        # Nothing listens on the model's port: the frontend holds the request and says so, every second.
        chat.expect_exact("Starting the model… (Waiting for the model server to come up.)")
        env = {"KUBECHAT_SERVED_MODEL_NAME": "llama", "KUBECHAT_MAX_NEW_TOKENS": "12"}
        with running_model_server(tiny_model_dir("llama"), env=env, port=model_port, wait=False):
            chat.expect(r"\[\S+ · \S+\]")  # the answer came, with its pod and node
            chat.expect_exact(PROMPT)
    assert chat.exitstatus == 0


@pytest.fixture
def chatfrontend_without_pods(control_plane, namespace) -> str:
    """A ChatFrontend `demo` and its Service `demo-frontend` (port `http`) as the operator makes them, but
    with no pods behind it: the local control plane cannot proxy to a process on loopback (the apiserver
    refuses loopback endpoints), so the test proves the way in up to the Service."""
    control_plane.kubectl("apply", "--server-side", "-f", str(REPO_ROOT / "crds"))
    control_plane.kubectl("wait", "--for=condition=Established", "crd/chatfrontends.kubechat.dev")
    frontend = {"apiVersion": "kubechat.dev/v1alpha1", "kind": "ChatFrontend", "metadata": {"name": "demo"},
                "spec": {"models": [{"name": "m", "default": True}]}}  # fmt: skip
    service = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "demo-frontend"},
               "spec": {"ports": [{"name": "http", "port": 80, "targetPort": 8080}]}}  # fmt: skip
    # No selector, so the endpoints controller leaves alone this Endpoints without addresses (as for a
    # frontend whose pods are not ready yet).
    endpoints = {"apiVersion": "v1", "kind": "Endpoints", "metadata": {"name": "demo-frontend"},
                 "subsets": []}  # fmt: skip
    for manifest in (frontend, service, endpoints):
        control_plane.kubectl("apply", f"--namespace={namespace}", "-f", "-", input=json.dumps(manifest))
    return namespace


@pytest.mark.controlplane
def test_terminal_chat_reaches_a_chatfrontend_by_name_through_the_apiserver(
    control_plane, chatfrontend_without_pods
):
    namespace = chatfrontend_without_pods
    kubeconfig = str(Path(control_plane.kubeconfig))
    chat = spawn_chat("demo", "-n", namespace, "--kubeconfig", kubeconfig, api_key="k")
    try:
        chat.expect_exact(PROMPT)
        chat.sendline("hello")
        # The apiserver authenticated the kubeconfig's client certificate and proxied to the Service's port
        # named http, which has no endpoints yet; its own refusal is shown, and the client keeps running.
        chat.expect_exact('error: no endpoints available for service "demo-frontend" (HTTP 503)', timeout=30)
        chat.expect_exact(PROMPT)
        chat.sendeof()
        chat.expect(pexpect.EOF)
    finally:
        chat.close(force=True)
    assert chat.exitstatus == 0


@pytest.mark.controlplane
def test_terminal_chat_names_a_missing_chatfrontend(control_plane, chatfrontend_without_pods):
    chat = spawn_chat(
        "nosuch", "-n", chatfrontend_without_pods, api_key="k", KUBECONFIG=str(control_plane.kubeconfig)
    )
    try:
        chat.expect_exact(f'kubechat: no ChatFrontend "nosuch" in namespace "{chatfrontend_without_pods}"')
        chat.expect(pexpect.EOF)
    finally:
        chat.close(force=True)
    assert chat.exitstatus == 1
