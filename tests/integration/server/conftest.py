"""Fixtures for the model server's integration tests: the real server as a subprocess on tiny models.

Every test that takes ``llama_server`` as an argument runs on both engines: transformers on the tiny
Llama, and llama.cpp on the same model written as GGUF (same weights, same tokenizer). Tests that pick
servers by name (``request.getfixturevalue``) name ``llamacpp_server`` for the second.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.llamacpp import running_llamacpp_server
from tests.support.model_server import (  # noqa: F401 - fixtures, found by pytest by name
    RunningServer,
    godel_server,
    llama_chat_server,
    running_model_server,
)
from tests.support.procs import cache_dir
from tests.support.tiny_models import (  # noqa: F401
    tiny_godel_dir,
    tiny_llama_chat_dir,
    tiny_llama_dir,
    tiny_model_dir,
)

ENGINES = ["transformers", "llama.cpp"]


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "llama_server" in metafunc.fixturenames:
        metafunc.parametrize("llama_engine", ENGINES, scope="module")


@pytest.fixture(scope="module")
def llama_engine() -> str:
    """The engine of ``llama_server`` where a test does not run on both (``getfixturevalue``)."""
    return "transformers"


@pytest.fixture(scope="module")
def llama_server(llama_engine: str) -> Iterator[RunningServer]:
    """The real server on the tiny Llama model (llama-2 prompt format), on ``llama_engine``."""
    if llama_engine == "transformers":
        with running_model_server(tiny_model_dir("llama")) as server:
            yield server
    else:
        with running_llamacpp_server("llama") as server:
            yield server


@pytest.fixture(scope="module")
def llamacpp_server() -> Iterator[RunningServer]:
    """The real server on the llama.cpp engine, on the tiny Llama as GGUF."""
    with running_llamacpp_server("llama") as server:
        yield server


# The chat template of Meta's Llama-2-chat repositories (Llama-2-7b-chat-hf's tokenizer_config.json).
META_LLAMA2_CHAT_TEMPLATE = (
    "{% if messages[0]['role'] == 'system' %}{% set loop_messages = messages[1:] %}"
    "{% set system_message = messages[0]['content'] %}{% else %}{% set loop_messages = messages %}"
    "{% set system_message = false %}{% endif %}{% for message in loop_messages %}"
    "{% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}"
    "{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}{% endif %}"
    "{% if loop.index0 == 0 and system_message != false %}"
    "{% set content = '<<SYS>>\\n' + system_message + '\\n<</SYS>>\\n\\n' + message['content'] %}"
    "{% else %}{% set content = message['content'] %}{% endif %}{% if message['role'] == 'user' %}"
    "{{ bos_token + '[INST] ' + content.strip() + ' [/INST]' }}{% elif message['role'] == 'assistant' %}"
    "{{ ' '  + content.strip() + ' ' + eos_token }}{% endif %}{% endfor %}"
)


def llama2_meta_template_dir() -> Path:
    """The tiny Llama with Meta's Llama-2-chat template in its tokenizer (built once, cached)."""
    from transformers import AutoTokenizer

    source = tiny_model_dir("llama")
    key = hashlib.sha256(f"{source.name}{META_LLAMA2_CHAT_TEMPLATE}".encode()).hexdigest()[:12]
    target = cache_dir("models") / f"tiny-llama-2-chat-{key}"
    if (target / "config.json").exists():
        return target
    staging = Path(tempfile.mkdtemp(prefix=".tiny-llama-2-chat-", dir=target.parent))
    try:
        shutil.copytree(source, staging, dirs_exist_ok=True)
        tokenizer = AutoTokenizer.from_pretrained(source)
        tokenizer.chat_template = META_LLAMA2_CHAT_TEMPLATE
        tokenizer.save_pretrained(staging)
        try:
            os.rename(staging, target)
        except OSError:
            if not (target / "config.json").exists():
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target


@pytest.fixture(scope="module")
def llama2_chat_server() -> Iterator[RunningServer]:
    """The real server on a tiny Llama whose tokenizer has Meta's Llama-2-chat template (format auto)."""
    with running_model_server(llama2_meta_template_dir()) as server:
        yield server
