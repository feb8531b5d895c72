"""Fixtures for the end-to-end tests on the real node (tests/support/node.py)."""

from __future__ import annotations

import time

import pytest

from tests.support.node import Cluster
from tests.support.pods import announce


@pytest.fixture(scope="session")
def images(real_cluster: Cluster, pytestconfig: pytest.Config) -> dict[str, str]:
    """kubechat's images built (only when their keys changed) and imported into the node: part -> name."""
    start = time.monotonic()
    names = real_cluster.node.load_images("base", "operator", "frontend", "server")
    announce(pytestconfig, f"images built (if changed) and imported in {time.monotonic() - start:.0f} s")
    return names


@pytest.fixture(scope="session")
def base_image(real_cluster: Cluster) -> str:
    """The Debian + Python base image, for pods that only need a shell and Python."""
    return real_cluster.node.load_images("base")["base"]
