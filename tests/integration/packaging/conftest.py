"""Fixtures for the packaging tests: the Helm chart on a real control plane, and the operator the chart
deploys run as a local process with the Deployment's own command, args and env.

The chart owns the CRDs (Helm refuses to adopt CRDs another tool created), while other integration tests
`kubectl apply` the same CRDs to the session's shared control plane; so these tests start a control plane
of their own, shared by this package only.
"""

from __future__ import annotations

import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from chart_harness import Helm

from hack.localpod import Kubectl, LocalProcess, translate
from tests.support.controlplane import ControlPlane, build
from tests.support.procs import free_port, python_env


@pytest.fixture(scope="package")
def bin_dir() -> Path:
    """The directory with helm and kubectl (hack/control-plane build)."""
    return build()


@pytest.fixture(scope="package")
def plane(bin_dir: Path) -> Iterator[ControlPlane]:
    """A control plane for this package alone (see the module docstring)."""
    with tempfile.TemporaryDirectory(prefix="kubechat-pkg-cp-") as state_dir:
        control_plane = ControlPlane(Path(state_dir), bin_dir)
        control_plane.start()
        try:
            yield control_plane
        finally:
            control_plane.stop()


@pytest.fixture(scope="package")
def chart_tool(bin_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Helm:
    """helm for what needs no cluster (lint, template)."""
    return Helm(bin_dir, tmp_path_factory.mktemp("helm-home"))


@pytest.fixture(scope="package")
def helm(bin_dir: Path, plane: ControlPlane, tmp_path_factory: pytest.TempPathFactory) -> Helm:
    """helm against this package's control plane."""
    return Helm(bin_dir, tmp_path_factory.mktemp("helm-home"), plane)


@pytest.fixture
def kubectl(plane: ControlPlane) -> Kubectl:
    return Kubectl(plane.env())


@pytest.fixture
def run_deployment(
    plane: ControlPlane, kubectl: Kubectl, tmp_path: Path
) -> Iterator[Callable[..., LocalProcess]]:
    """Start a Deployment's container as a local process, authenticated as the pod's ServiceAccount; every
    process is stopped (and its log printed) after the test."""
    started: list[LocalProcess] = []

    def run(name: str, namespace: str) -> LocalProcess:
        deployment = kubectl.get("deployment", name, namespace)
        workdir = tmp_path / name
        workdir.mkdir()
        pod_spec = deployment["spec"]["template"]["spec"]
        ports = {p["containerPort"]: free_port() for p in pod_spec["containers"][0].get("ports", [])}
        sa_kubeconfig = kubectl.service_account_kubeconfig(
            pod_spec["serviceAccountName"], namespace, workdir / "kubeconfig"
        )
        container = translate(
            deployment,
            kubectl,
            python=sys.executable,
            workdir=workdir,
            ports=ports,
            base_env=python_env(KUBECONFIG=str(sa_kubeconfig)),
        )
        process = LocalProcess(container, workdir / "container.log")
        started.append(process)
        return process

    yield run
    for process in started:
        process.stop()
        print(f"--- {process.spec.name} ({' '.join(process.spec.argv[3:])}) ---\n{process.log_tail(200)}")
