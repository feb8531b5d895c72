"""Fixtures for the operator's integration tests: the CRDs installed once, and a real operator process
(`python -m kubechat_operator`) per test, watching the test's fresh namespace on the real control plane."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from operator_harness import CRD_DIR, Kubectl, OperatorProcess

from tests.support.controlplane import ControlPlane


@pytest.fixture(scope="session")
def kubechat_crds(control_plane: ControlPlane) -> None:
    control_plane.kubectl("apply", "--server-side", "-f", str(CRD_DIR))
    control_plane.kubectl(
        "wait",
        "--for=condition=Established",
        "crd/chatmodels.kubechat.dev",
        "crd/chatfrontends.kubechat.dev",
        "--timeout=60s",
    )


@pytest.fixture
def kubectl(control_plane: ControlPlane, namespace: str, kubechat_crds: None) -> Kubectl:
    return Kubectl(control_plane, namespace)


@pytest.fixture
def start_operator(
    control_plane: ControlPlane, namespace: str, kubechat_crds: None, tmp_path: Path
) -> Iterator[Callable[..., OperatorProcess]]:
    """Start operator processes (watching the test's namespace unless told otherwise); all stopped after."""
    started: list[OperatorProcess] = []

    def start(*args: str, wait: bool = True) -> OperatorProcess:
        scope = (
            []
            if any(a.startswith(("--namespace", "--all-namespaces", "-A")) for a in args)
            else [f"--namespace={namespace}"]
        )
        operator = OperatorProcess(control_plane, tmp_path / f"operator-{len(started)}.log", *scope, *args)
        started.append(operator)
        if wait:
            operator.wait_live()
        return operator

    yield start
    for operator in started:
        operator.stop()
        print(f"--- {operator.log_path.name} ---\n{operator.log()}")


@pytest.fixture
def operator(start_operator: Callable[..., OperatorProcess]) -> OperatorProcess:
    """One running operator for the test's namespace."""
    return start_operator()


@pytest.fixture
def kwok_paused(control_plane: ControlPlane) -> Iterator[None]:
    """No kubelet stand-in for the test's length (keep it well under the node monitor's 40 s grace): new
    pods stay Pending on their node with no container started, deleted pods stay Terminating, as on a node
    that is busy mounting volumes or draining."""
    control_plane.stop_components("kwok")
    try:
        yield
    finally:
        control_plane.start_components("kwok")
