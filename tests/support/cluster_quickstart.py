"""examples/quickstart.yaml deployed on the real node by hack/quickstart.py's own steps, for tests/cluster."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from hack import quickstart as steps
from tests.support.node import Cluster
from tests.support.pods import announce


@dataclass
class QuickStart:
    namespace: str
    ready_after: float  # seconds from `kubectl apply` to the model and frontend pods Ready


def deployed_quickstart(
    cluster: Cluster, config: pytest.Config, stem: str, history_on_claim: bool = False
) -> Iterator[QuickStart]:
    """examples/quickstart.yaml deployed as hack/quickstart does, in a namespace of its own; on exit the
    namespace is deleted and waited for (its model pod's CPU request would keep the next one Pending)."""
    plane = cluster.plane
    namespace = f"{stem}-{int(time.time())}"
    applied_at = time.monotonic()
    volumes = steps.deploy(
        plane, namespace, cluster.state_dir / "volumes", steps.example_documents(history_on_claim)
    )
    ready_after = time.monotonic() - applied_at
    announce(config, f"kubectl apply -> model and frontend pods Ready in {ready_after:.1f} s ({namespace})")
    try:
        yield QuickStart(namespace, ready_after)
    finally:
        plane.kubectl("delete", "namespace", namespace, "--timeout=180s", check=False, timeout=200)
        plane.kubectl("delete", "persistentvolume", *volumes, "--wait=false", check=False)
