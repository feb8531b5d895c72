"""Fixtures of the fault suite, borrowed from the parts' own test helpers (nothing is redefined here).

- control plane + namespace: tests/support/cluster_fixtures.py (registered for the whole suite)
- CRDs, `kubectl` (namespaced, JSON reads) and `start_operator` (real operator processes):
  tests/integration/operator/conftest.py
- real model servers on tiny models: tests/support/model_server.py
- real PostgreSQL / Redis servers: tests/support/databases.py
"""

from __future__ import annotations

import sys
from pathlib import Path

# The operator's and the packaging tests' helpers are top-level modules of their folders (pytest puts a
# folder without __init__.py on sys.path); import them the same way so there is one copy of each.
for part in ("operator", "packaging"):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "integration" / part))

from tests.integration.operator.conftest import (  # noqa: E402, F401
    kubechat_crds,
    kubectl,
    operator,
    start_operator,
)
from tests.support.databases import postgres_server, redis_server  # noqa: E402, F401
from tests.support.model_server import godel_server, llama_chat_server, llama_server  # noqa: E402, F401
