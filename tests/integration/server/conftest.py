"""Fixtures for the model server's integration tests: the real server as a subprocess on tiny models.

``llama_server`` runs each test that uses it on both engines: transformers on the tiny Llama, and
llama.cpp on the same model written as GGUF (same weights, same tokenizer).
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


@pytest.fixture(scope="module", params=["transformers", "llama.cpp"])
def llama_server(request) -> Iterator[RunningServer]:
    """The real server on the tiny Llama model (llama-2 prompt format), on each engine."""
    if request.param == "transformers":
        with running_model_server(tiny_model_dir("llama")) as server:
            yield server
    else:
        with running_llamacpp_server("llama") as server:
            yield server
