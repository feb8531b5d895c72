"""Fixtures for the end-to-end tests on the real node (tests/support/node.py)."""

from __future__ import annotations

import pytest

from tests.support.node import Cluster


@pytest.fixture(scope="session")
def images(real_cluster: Cluster) -> dict[str, str]:
    """kubechat's images built (only when their keys changed) and imported into the node: part -> name."""
    return real_cluster.node.load_images("base", "operator", "frontend", "server")


@pytest.fixture(scope="session")
def base_image(real_cluster: Cluster) -> str:
    """The Debian + Python base image, for pods that only need a shell and Python."""
    return real_cluster.node.load_images("base")["base"]
