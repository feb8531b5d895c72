"""The operator under faults on the real control plane: SIGKILLed at random points of create/update/delete
churn, and the apiserver with etcd gone for OUTAGE_S seconds. Both end in the declared state with no
duplicate or orphaned child and an honest status. (Two replicas with a Lease, one killed, is
tests/integration/operator/test_operator_process.py::test_two_replicas_one_leads_and_the_other_takes_over.)"""

from __future__ import annotations

import random
import time
from collections.abc import Callable

import pytest
from churn import KILLS, MODELS, OUTAGE_S, Churn, divergence
from operator_harness import Kubectl, OperatorProcess, wait_until

from tests.support.controlplane import ControlPlane

pytestmark = [pytest.mark.controlplane, pytest.mark.slow]
CONVERGE_S = 120 + 4 * MODELS


def converge(kubectl: Kubectl, churn: Churn) -> float:
    """Seconds until the cluster matches the declared state (AssertionError with the differences if not)."""
    started = time.monotonic()
    problems: list[str] = []

    def converged() -> bool:
        problems[:] = divergence(kubectl, churn.declared)
        return not problems

    try:
        wait_until(converged, CONVERGE_S, "convergence", interval=1)
    except AssertionError:
        cluster = kubectl("get", "deployments,replicasets,pods", "-o", "wide", check=False).stdout
        raise AssertionError("not converged:\n" + "\n".join(problems) + "\n" + cluster) from None
    return time.monotonic() - started


def test_sigkilled_at_random_points_of_churn_the_operator_converges_without_duplicates_or_orphans(
    kubectl: Kubectl, start_operator: Callable[..., OperatorProcess]
) -> None:
    seed = random.randrange(1 << 30)
    print(f"random seed {seed}")  # to replay a failure: random.Random(seed) drives every move and kill
    rng = random.Random(seed)
    churn = Churn(kubectl, rng)
    operator = start_operator()
    churn.create(MODELS)
    kills = 0
    while kills < KILLS:
        time.sleep(rng.uniform(0.2, 2.5))
        churn.step()
        time.sleep(rng.uniform(0, 1.5))
        operator.kill()  # SIGKILL: no cleanup, whatever it was doing
        kills += 1
        churn.step()  # a change made while no operator runs
        operator = start_operator(wait=False)  # the next kill may land while it is still starting
    print(f"{kills} kills; converged {converge(kubectl, churn):.1f} s after the last restart")
    assert operator.process.poll() is None


def test_apiserver_and_etcd_gone_for_a_while_the_operator_reconnects_without_restarting(
    control_plane: ControlPlane, kubectl: Kubectl, operator: OperatorProcess
) -> None:
    churn = Churn(kubectl, random.Random(7))
    churn.create(MODELS // 2)
    converge(kubectl, churn)
    churn.update(MODELS // 4)  # reconciles in flight when the apiserver goes
    # The whole control plane goes, as when its node reboots. (With the controller manager left running,
    # its node controller sees kwok's node leases go stale, marks the nodes' pods not Ready, and kwok, unlike
    # a kubelet, never marks them Ready again: the operator then rightly reports those ChatModels as
    # Progressing, see docs/reliability.md.)
    components = ("kube-scheduler", "kube-controller-manager", "kube-apiserver", "etcd")
    control_plane.stop_components(*components)
    try:
        deadline = time.monotonic() + OUTAGE_S
        while time.monotonic() < deadline:
            assert operator.process.poll() is None, (
                f"the operator exited during the outage:\n{operator.log()}"
            )
            time.sleep(1)
    finally:
        control_plane.start_components(*reversed(components))
    churn.create(3)
    churn.delete(2)
    churn.update(2)
    print(f"converged {converge(kubectl, churn):.1f} s after a {OUTAGE_S:.0f} s outage")
    assert operator.process.poll() is None, "the operator restarted"
    assert operator.http(operator.liveness_port, "/healthz")[0] == 200
