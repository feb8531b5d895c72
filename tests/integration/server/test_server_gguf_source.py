"""A wrong GGUF file fails the load with a reason that says what is wrong, and the server stays up to report
it (the operator shows it as ModelLoadFailed) instead of crash-looping with a traceback."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from tests.support.model_server import http_status, running_model_server
from tests.support.real_model import smollm2_gguf

pytestmark = pytest.mark.slow


def failed_load(model: str, *args: str) -> dict:
    """Start the server on `model`, wait for its failed load; return /readyz's body (server still alive)."""
    with running_model_server(model, args=args, wait=False) as server:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            status, body = http_status(f"{server.url}/readyz")
            if body.get("status") == "failed":
                break
            time.sleep(0.2)
        assert status == 503 and body["load"]["stage"] == "failed", body
        assert http_status(f"{server.url}/health")[0] == 200 and server.process.poll() is None
        return body


def test_an_html_page_saved_as_the_gguf_file_is_named_as_such(tmp_path: Path) -> None:
    (tmp_path / "model.gguf").write_text("<!DOCTYPE html><html><title>Access denied</title></html>")
    body = failed_load(str(tmp_path), "--model-file", "model.gguf")
    message = body["load"]["message"]
    assert "model.gguf is not a GGUF file" in message and "HTML" in message, message


def test_a_truncated_copy_of_a_real_gguf_file_is_called_truncated(tmp_path: Path) -> None:
    with open(smollm2_gguf(), "rb") as source:
        (tmp_path / "smollm2.gguf").write_bytes(source.read(20_000_000))
    message = failed_load(str(tmp_path / "smollm2.gguf"))["load"]["message"]
    assert "smollm2.gguf is a damaged or truncated GGUF file (20000000 bytes" in message, message


def test_a_gguf_file_missing_from_its_directory_lists_the_ones_there(tmp_path: Path) -> None:
    (tmp_path / "other.Q8_0.gguf").write_bytes(b"GGUF")
    message = failed_load(str(tmp_path), "--model-file", "model.Q4_1.gguf")["load"]["message"]
    assert f"no file model.Q4_1.gguf in {tmp_path} (GGUF files there: other.Q8_0.gguf)" in message, message


def test_a_model_directory_that_does_not_exist_is_not_looked_up_on_the_hub() -> None:
    message = failed_load("/cache/models/not-mounted")["load"]["message"]
    assert "no directory /cache/models/not-mounted" in message and "mounted" in message, message
