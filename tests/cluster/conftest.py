"""Fixtures for the end-to-end tests on the real node (tests/support/node.py): the images, the chart's
operator and the quick start deployed by hack/quickstart.py's own steps (the tests check what users run)."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from hack import quickstart as steps
from tests.support.cluster_quickstart import QuickStart, deployed_quickstart
from tests.support.node import Cluster
from tests.support.pods import announce


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Tests of a module that sets STARTS_ITS_OWN_NODE (hack/quickstart starts a node of its own) run first:
    once the session's `real_cluster` holds the machine's node lock, they would wait for it in vain."""
    items.sort(key=lambda item: not getattr(item.module, "STARTS_ITS_OWN_NODE", False))


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


@pytest.fixture(scope="session")
def operator(real_cluster: Cluster, images: dict[str, str]) -> Iterator[str]:
    """The chart installed with its default values (the operator runs from Dockerfile.operator's image);
    yields its namespace."""
    try:
        steps.install_chart(real_cluster.plane)
    except steps.QuickStartError as error:
        pytest.fail(str(error))
    try:
        yield steps.RELEASE_NAMESPACE
    finally:
        steps.uninstall_chart(real_cluster.plane)


@pytest.fixture(scope="module")
def quickstart(real_cluster: Cluster, operator: str, pytestconfig: pytest.Config) -> Iterator[QuickStart]:
    """examples/quickstart.yaml as it is (history on an emptyDir), with the model on the cache volume."""
    yield from deployed_quickstart(real_cluster, pytestconfig, "quickstart")
