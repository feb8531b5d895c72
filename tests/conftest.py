"""Session-wide test settings. Part-specific fixtures live next to their tests or in tests/support/."""

import os

# One session control plane for every folder that needs one (integration, faults).
pytest_plugins = ["tests.support.cluster_fixtures"]

# No model hub is reachable: every model a test loads is built locally (tests/support/tiny_models.py).
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_NO_ADVISORY_WARNINGS", "1")
