"""The chart's RBAC on the real apiserver: no Secret anywhere, and no way for the operator's ServiceAccount to
create Roles or RoleBindings that grant more than it holds (the apiserver's escalation check, with no
escalate/bind verbs to get around it)."""

from __future__ import annotations

import secrets
import subprocess
from collections.abc import Iterator

import pytest
import yaml
from operator_harness import Kubectl

from tests.support.procs import REPO_ROOT

pytestmark = [pytest.mark.controlplane]

CHART = REPO_ROOT / "charts" / "kubechat"


@pytest.fixture
def operator_account(kubectl: Kubectl) -> Iterator[str]:
    """The chart's ServiceAccount and RBAC (cluster-wide mode) rendered by helm and applied; its username."""
    release = f"rbac-{secrets.token_hex(3)}"
    rendered = subprocess.run(
        [
            "helm",
            "template",
            release,
            str(CHART),
            f"--namespace={kubectl.namespace}",
            "--show-only=templates/rbac.yaml",
            "--show-only=templates/serviceaccount.yaml",
        ],
        env=kubectl.plane.env(),
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    documents = [d for d in yaml.safe_load_all(rendered) if d]
    account = next(d for d in documents if d["kind"] == "ServiceAccount")["metadata"]["name"]
    kubectl.plane.kubectl("apply", "-f", "-", input=rendered)
    try:
        yield f"system:serviceaccount:{kubectl.namespace}:{account}"
    finally:
        for document in documents:
            if document["kind"].startswith("Cluster"):
                kubectl.plane.kubectl(
                    "delete", document["kind"], document["metadata"]["name"], "--wait=false", check=False
                )


def _as(kubectl: Kubectl, user: str, *args: str, input: str | None = None) -> subprocess.CompletedProcess:
    return kubectl(f"--as={user}", *args, input=input, check=False)


def test_the_operator_may_read_no_secret_in_any_namespace(kubectl: Kubectl, operator_account: str) -> None:
    for verb in ("get", "list", "watch"):
        result = kubectl.plane.kubectl(
            "auth", "can-i", verb, "secrets", "--all-namespaces", f"--as={operator_account}", check=False
        )
        assert result.stdout.strip() == "no", (verb, result.stdout, result.stderr)
    assert _as(kubectl, operator_account, "get", "secrets").returncode != 0


def test_the_operator_cannot_grant_what_it_does_not_hold(kubectl: Kubectl, operator_account: str) -> None:
    reader = """
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata: {name: secret-reader}
rules: [{apiGroups: [""], resources: [secrets], verbs: [get]}]
"""
    refused = _as(kubectl, operator_account, "apply", "-f", "-", input=reader)
    assert refused.returncode != 0 and "attempting to grant RBAC permissions" in refused.stderr, (
        refused.stderr
    )

    name = operator_account.rsplit(":", 1)[1]
    to_admin = f"""
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {{name: grab-admin}}
roleRef: {{apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: cluster-admin}}
subjects: [{{kind: ServiceAccount, name: {name}, namespace: {kubectl.namespace}}}]
"""
    refused = _as(kubectl, operator_account, "apply", "-f", "-", input=to_admin)
    assert refused.returncode != 0 and "forbidden" in refused.stderr, refused.stderr
    for verb in ("escalate", "bind"):
        result = kubectl.plane.kubectl(
            "auth", "can-i", verb, "roles", "--all-namespaces", f"--as={operator_account}", check=False
        )
        assert result.stdout.strip() == "no", (verb, result.stdout)

    # What the model pods need (their progress ConfigMap) it may still grant: the check is not vacuous.
    progress = """
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata: {name: progress-writer}
rules: [{apiGroups: [""], resources: [configmaps], resourceNames: [x-progress], verbs: [get, patch]}]
"""
    allowed = _as(kubectl, operator_account, "apply", "--server-side", "-f", "-", input=progress)
    assert allowed.returncode == 0, allowed.stderr
