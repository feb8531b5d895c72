"""Fixtures for tests against a real local control plane (tests/support/controlplane.py), registered for
the whole suite by tests/conftest.py so every folder shares one session control plane.

- `control_plane` (session): a running etcd + kube-apiserver + kube-controller-manager + kube-scheduler + kwok
  with nodes kwok-gpu-0, kwok-gpu-1 (2 `nvidia.com/gpu` each) and kwok-cpu-0. It has `.kubeconfig`,
  `.server`, `.bin_dir`, `.env()` (for subprocesses: KUBECONFIG and PATH with kubectl and helm),
  `.kubectl(*args, input=None, check=True)` and `.api_client()` (a `kubernetes` ApiClient).
- `namespace` (function): a fresh namespace whose default ServiceAccount exists (so pods can be created at
  once), deleted after the test.
- `real_cluster` (session): a control plane with a real node beside it (tests/support/node.py): containerd,
  kubelet, kube-proxy and CoreDNS; pods run for real with addresses from 198.18.0.0/15. Needs root; one per
  machine at a time (it waits for another run's node). Its `.plane` is a ControlPlane like the above, its
  `.node` the Node. Stopping it checks that nothing of the node is left on the machine.
- `cluster_namespace` (function): `namespace` on the real cluster.

Tests that use them are marked `@pytest.mark.controlplane` (`@pytest.mark.cluster` for the real node).
"""

from __future__ import annotations

import os
import re
import secrets
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.controlplane import REPO_ROOT, ControlPlane, build
from tests.support.node import Cluster, node_lock


@pytest.fixture(scope="session")
def control_plane() -> Iterator[ControlPlane]:
    bin_dir = build()
    with tempfile.TemporaryDirectory(prefix="kubechat-cp-") as state_dir:
        plane = ControlPlane(Path(state_dir), bin_dir)
        plane.start()
        try:
            yield plane
        finally:
            plane.stop()


@pytest.fixture(scope="session")
def real_cluster() -> Iterator[Cluster]:
    if os.geteuid() != 0:
        pytest.fail("the real node (tests/cluster) needs root: containerd, kubelet and network set-up")
    subprocess.run([REPO_ROOT / "hack" / "node", "packages"], check=True)
    bin_dir = build()
    with tempfile.TemporaryDirectory(prefix="kubechat-node-") as state_dir, node_lock():
        cluster = Cluster(Path(state_dir), bin_dir)
        cluster.start()
        try:
            yield cluster
        finally:
            cluster.stop()


def _fresh_namespace(plane: ControlPlane, request: pytest.FixtureRequest) -> Iterator[str]:
    # Named after the test (for reading the apiserver's objects when a test fails), unique per run.
    stem = re.sub(r"[^a-z0-9-]+", "-", request.node.name.lower()).strip("-")[:40].rstrip("-")
    name = f"{stem}-{secrets.token_hex(3)}"
    plane.kubectl("create", "namespace", name)
    plane.kubectl("wait", "--for=create", f"--namespace={name}", "serviceaccount/default", "--timeout=30s")
    try:
        yield name
    finally:
        plane.kubectl("delete", "namespace", name, "--wait=false", check=False)


@pytest.fixture
def namespace(control_plane: ControlPlane, request: pytest.FixtureRequest) -> Iterator[str]:
    yield from _fresh_namespace(control_plane, request)


@pytest.fixture
def cluster_namespace(real_cluster: Cluster, request: pytest.FixtureRequest) -> Iterator[str]:
    yield from _fresh_namespace(real_cluster.plane, request)
