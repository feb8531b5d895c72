"""Fixtures for the model server's integration tests: the real server as a subprocess on tiny models.

Every test that takes ``llama_server`` as an argument runs on both engines: transformers on the tiny
Llama, and llama.cpp on the same model written as GGUF (same weights, same tokenizer). Tests that pick
servers by name (``request.getfixturevalue``) name ``llamacpp_server`` for the second.
"""

from collections.abc import Iterator

import pytest

from tests.support.llamacpp import running_llamacpp_server
from tests.support.model_server import (  # noqa: F401 - fixtures, found by pytest by name
    RunningServer,
    godel_server,
    llama_chat_server,
    running_model_server,
)
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
