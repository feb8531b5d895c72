"""`kubechat chat URL` driven in a real pseudo-terminal (pexpect), via a frontend to the real model server."""

from __future__ import annotations

import sys

import httpx
import pexpect
import pytest

from tests.support.procs import python_env

pytestmark = pytest.mark.slow


def spawn_chat(url: str, *args: str, api_key: str) -> pexpect.spawn:
    env = python_env(KUBECHAT_API_KEY=api_key, NO_COLOR="1", TERM="xterm")
    command = [sys.executable, "-m", "kubechat_frontend.cli", "chat", url, *args]
    return pexpect.spawn(
        command[0], command[1:], env=env, encoding="utf-8", timeout=120, dimensions=(40, 120)
    )


def test_terminal_chat_streams_answers_with_the_pod_and_keeps_the_session(gateway, model_server):
    chat = spawn_chat(gateway.url, "--persona", "bard", api_key=gateway.user_key)
    try:
        chat.expect_exact("you> ")
        chat.sendline("Hello, how are you today?")
        chat.expect_exact("bot> ")
        chat.expect_exact(f"[{model_server.pod} · {model_server.node}]")
        chat.expect_exact("you> ")
        chat.sendline("/quit")
        chat.expect(r"Session (\S+) kept")
        session_id = chat.match.group(1)
        chat.expect(pexpect.EOF)
    finally:
        chat.close(force=True)
    assert chat.exitstatus == 0
    history = httpx.get(f"{gateway.url}/api/sessions/{session_id}", headers=gateway.user_headers).json()
    assert history["persona"] == "bard"
    assert [m["content"] for m in history["messages"] if m["role"] == "user"] == ["Hello, how are you today?"]

    # Resume it, then end it from the terminal.
    chat = spawn_chat(gateway.url, "--session", session_id, api_key=gateway.user_key)
    try:
        chat.expect_exact("you> ")
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
        chat.expect_exact("you> ")
        chat.sendline("hello")
        chat.expect_exact("error: The API key is not valid. (HTTP 403)")
        chat.expect_exact("you> ")
        chat.sendeof()
        chat.expect(pexpect.EOF)
    finally:
        chat.close(force=True)
    assert chat.exitstatus == 0
