"""Fixtures for the model server's integration tests: the real server as a subprocess on tiny models."""

from tests.support.model_server import (  # noqa: F401 - fixtures, found by pytest by name
    godel_server,
    llama_chat_server,
    llama_server,
)
from tests.support.tiny_models import (  # noqa: F401
    tiny_godel_dir,
    tiny_llama_chat_dir,
    tiny_llama_dir,
)
