"""Fixtures for tests against a real local control plane (tests/support/controlplane.py), registered for
the whole suite by tests/conftest.py so every folder shares one session control plane.

- `control_plane` (session): a running etcd + kube-apiserver + kube-controller-manager + kube-scheduler + kwok
  with nodes kwok-gpu-0, kwok-gpu-1 (2 `nvidia.com/gpu` each) and kwok-cpu-0. It has `.kubeconfig`,
  `.server`, `.bin_dir`, `.env()` (for subprocesses: KUBECONFIG and PATH with kubectl and helm),
  `.kubectl(*args, input=None, check=True)` and `.api_client()` (a `kubernetes` ApiClient).
- `namespace` (function): a fresh namespace whose default ServiceAccount exists (so pods can be created at
  once), deleted after the test.

Tests that use them are marked `@pytest.mark.controlplane`.
"""

from __future__ import annotations

import re
import secrets
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.controlplane import ControlPlane, build


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


@pytest.fixture
def namespace(control_plane: ControlPlane, request: pytest.FixtureRequest) -> Iterator[str]:
    # Named after the test (for reading the apiserver's objects when a test fails), unique per run.
    stem = re.sub(r"[^a-z0-9-]+", "-", request.node.name.lower()).strip("-")[:40].rstrip("-")
    name = f"{stem}-{secrets.token_hex(3)}"
    control_plane.kubectl("create", "namespace", name)
    control_plane.kubectl(
        "wait", "--for=create", f"--namespace={name}", "serviceaccount/default", "--timeout=30s"
    )
    try:
        yield name
    finally:
        control_plane.kubectl("delete", "namespace", name, "--wait=false", check=False)
