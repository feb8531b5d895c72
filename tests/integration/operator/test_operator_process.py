"""The operator as a process: restart-safe, highly available with a Lease, observable (liveness, metrics)."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from operator_harness import Kubectl, OperatorProcess, wait_until

pytestmark = [pytest.mark.controlplane, pytest.mark.slow]


def models(count: int, prefix: str = "m") -> str:
    return "\n---\n".join(
        f"""apiVersion: kubechat.dev/v1alpha1
kind: ChatModel
metadata: {{name: {prefix}{i}}}
spec:
  model: {{id: microsoft/GODEL-v1_1-base-seq2seq}}"""
        for i in range(count)
    )


def _all_ready(kubectl: Kubectl, count: int) -> bool:
    items = kubectl.items("chatmodels")
    return len(items) == count and all((m.get("status") or {}).get("phase") == "Ready" for m in items)


def test_killed_mid_reconcile_converges_on_restart_without_duplicates(
    kubectl: Kubectl, start_operator: Callable[..., OperatorProcess]
) -> None:
    first = start_operator()
    kubectl.apply(models(12))
    wait_until(lambda: kubectl.items("deployments"), 30, "the first reconciles to begin")
    first.kill()
    start_operator()
    wait_until(lambda: _all_ready(kubectl, 12), 120, "all 12 ChatModels Ready after the restart")
    for kind in ("deployments", "services", "serviceaccounts", "roles", "rolebindings"):
        assert len(kubectl.items(kind, "app.kubernetes.io/managed-by=kubechat-operator")) == 12, kind
    assert len(kubectl.items("configmaps", "app.kubernetes.io/managed-by=kubechat-operator")) == 24
    assert len(kubectl.items("replicasets")) == 12  # no spurious rollout on restart
    assert len(kubectl.items("pods")) == 12


def test_two_replicas_one_leads_and_the_other_takes_over(
    kubectl: Kubectl, start_operator: Callable[..., OperatorProcess]
) -> None:
    lease = [f"--lease-namespace={kubectl.namespace}", "--leader-elect"]
    leader = start_operator(*lease, "--identity=replica-a")
    standby = start_operator(*lease, "--identity=replica-b")
    holder = wait_until(
        lambda: (kubectl.get("lease", "kubechat-operator") or {}).get("spec", {}).get("holderIdentity"),
        30,
        "a lease holder",
    )
    assert holder == "replica-a"
    kubectl.apply(models(1, "before"))
    kubectl.wait_phase("chatmodel", "before0", "Ready")
    assert "waiting to lead" in standby.log()

    leader.kill()  # no release: the standby must wait for the lease to expire
    wait_until(
        lambda: kubectl.get("lease", "kubechat-operator")["spec"]["holderIdentity"] == "replica-b",
        40,
        "failover",
    )
    kubectl.apply(models(1, "after"))
    kubectl.wait_phase("chatmodel", "after0", "Ready", timeout=60)


def test_liveness_and_prometheus_metrics(kubectl: Kubectl, operator: OperatorProcess) -> None:
    kubectl.apply(models(2))
    wait_until(lambda: _all_ready(kubectl, 2), 60, "2 ChatModels Ready")
    assert operator.http(operator.liveness_port, "/healthz")[0] == 200
    status, body = operator.http(operator.metrics_port, "/metrics")
    assert status == 200
    samples = {
        line.split(" ")[0]: float(line.split(" ")[1])
        for line in body.splitlines()
        if line and not line.startswith("#")
    }
    assert samples['kubechat_operator_reconciles_total{kind="ChatModel"}'] >= 2
    assert samples['kubechat_operator_time_to_ready_seconds_count{kind="ChatModel"}'] == 2
    assert 'kubechat_operator_reconcile_duration_seconds_count{kind="ChatModel"}' in samples
    assert samples.get('kubechat_operator_reconcile_errors_total{kind="ChatModel"}', 0) == 0


def test_transitions_are_recorded_as_events_on_the_chatmodel(
    kubectl: Kubectl, operator: OperatorProcess
) -> None:
    kubectl.apply(models(1))
    kubectl.wait_phase("chatmodel", "m0", "Ready")
    events = wait_until(
        lambda: [
            e
            for e in kubectl.items("events")
            if e["involvedObject"].get("kind") == "ChatModel" and e["reason"] == "Ready"
        ],
        20,
        "a Ready event",
    )
    assert events[0]["involvedObject"]["name"] == "m0"
    assert events[0]["source"]["component"] == "kubechat-operator"


def test_cluster_wide_operator_serves_any_namespace(
    kubectl: Kubectl, start_operator: Callable[..., OperatorProcess]
) -> None:
    start_operator("--all-namespaces")
    kubectl.apply(models(1))
    kubectl.wait_phase("chatmodel", "m0", "Ready")
