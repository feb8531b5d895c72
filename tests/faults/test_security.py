"""Security review as tests: the chart's RBAC lets the operator do what it needs and nothing else (asked of
the real apiserver with `kubectl auth can-i`), the pods the operator builds run locked down, and no secret
value ever lands in a ConfigMap, a status, an Event, a Deployment's plain env or a log line."""

from __future__ import annotations

import json
import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from chart_harness import CHART, Helm
from operator_harness import Kubectl, OperatorProcess, wait_until

from tests.support.controlplane import ControlPlane
from tests.support.frontend import make_keys, run_frontend
from tests.support.model_server import running_model_server
from tests.support.tiny_models import tiny_model_dir

pytestmark = [pytest.mark.controlplane, pytest.mark.slow]


class OperatorAccount:
    """The chart's ServiceAccount and RBAC, rendered for one release and applied to the control plane."""

    def __init__(self, plane: ControlPlane, namespace: str, release: str) -> None:
        self.plane, self.namespace, self.release = plane, namespace, release
        self.user = f"system:serviceaccount:{namespace}:{release}-kubechat"

    def can(self, verb: str, resource: str, namespace: str | None = None, subresource: str = "") -> bool:
        args = [
            "auth",
            "can-i",
            verb,
            resource,
            f"--as={self.user}",
            f"--namespace={namespace or self.namespace}",
        ]
        if subresource:
            args.append(f"--subresource={subresource}")
        result = self.plane.kubectl(*args, check=False)
        assert result.stdout.strip() in ("yes", "no"), result.stderr
        return result.stdout.strip() == "yes"


@pytest.fixture
def chart_rbac(control_plane: ControlPlane, namespace: str, tmp_path: Path, request) -> Iterator:
    """`chart_rbac(*helm_set_args)`: the chart's RBAC applied for a release of this test; removed after."""
    helm = Helm(control_plane.bin_dir, tmp_path / "helm")
    applied: list[str] = []

    def apply(*values: str) -> OperatorAccount:
        release = f"sec{secrets.token_hex(3)}"
        manifests = helm(
            "template", release, str(CHART), f"--namespace={namespace}", *values,
            "--show-only=templates/serviceaccount.yaml", "--show-only=templates/rbac.yaml",
        ).stdout  # fmt: skip
        control_plane.kubectl("apply", f"--namespace={namespace}", "-f", "-", input=manifests)
        applied.append(manifests)
        return OperatorAccount(control_plane, namespace, release)

    yield apply
    for manifests in applied:
        control_plane.kubectl(
            "delete", "--ignore-not-found", "--wait=false", "-f", "-", input=manifests, check=False
        )


NEEDED = [
    ("get", "chatmodels.kubechat.dev", ""),
    ("watch", "chatfrontends.kubechat.dev", ""),
    ("patch", "chatmodels.kubechat.dev", "status"),
    ("patch", "chatmodels.kubechat.dev", "scale"),  # the request autoscaler
    ("create", "deployments.apps", ""),
    ("patch", "services", ""),
    ("delete", "horizontalpodautoscalers.autoscaling", ""),
    ("create", "roles.rbac.authorization.k8s.io", ""),
    ("list", "pods", ""),
    ("create", "secrets", ""),  # a ChatFrontend's session-key Secret, made once (never read or patched)
    ("create", "events", ""),
]
NOT_NEEDED = [
    ("get", "secrets", ""),  # a missing Secret shows as the pods' CreateContainerConfigError
    ("list", "secrets", ""),
    ("watch", "secrets", ""),
    ("patch", "secrets", ""),  # the session key is never rewritten
    ("update", "secrets", ""),
    ("update", "chatmodels.kubechat.dev", ""),  # the user's spec is the user's
    ("patch", "chatmodels.kubechat.dev", ""),
    ("patch", "chatfrontends.kubechat.dev", "scale"),
    ("delete", "chatfrontends.kubechat.dev", ""),
    ("create", "pods", ""),
    ("delete", "pods", ""),
    ("create", "pods", "exec"),
    ("create", "serviceaccounts", "token"),
    ("bind", "roles.rbac.authorization.k8s.io", ""),
    ("escalate", "roles.rbac.authorization.k8s.io", ""),
    ("create", "clusterroles.rbac.authorization.k8s.io", ""),
    ("impersonate", "serviceaccounts", ""),
    ("patch", "nodes", ""),
    ("create", "customresourcedefinitions.apiextensions.k8s.io", ""),
    ("delete", "namespaces", ""),
    ("*", "*", ""),
]


def test_operator_service_account_can_do_what_it_needs_and_nothing_else(chart_rbac) -> None:
    account = chart_rbac()
    wait_until(lambda: account.can("create", "deployments.apps"), 30, "the RBAC to apply")
    missing = [n for n in NEEDED if not account.can(n[0], n[1], subresource=n[2])]
    excess = [n for n in NOT_NEEDED if account.can(n[0], n[1], subresource=n[2])]
    assert not missing, f"the operator lacks {missing}"
    assert not excess, f"the operator may {excess}"
    rules = account.plane.kubectl("auth", "can-i", "--list", f"--as={account.user}").stdout
    assert not [line for line in rules.splitlines() if "*" in line.split()[0:1] or "[*]" in line], rules


def test_with_watched_namespaces_the_operator_can_write_nowhere_else(chart_rbac, namespace: str) -> None:
    account = chart_rbac(f"--set=operator.watchNamespaces={{{namespace}}}")
    wait_until(lambda: account.can("create", "deployments.apps"), 30, "the RBAC to apply")
    for verb, resource in [("create", "deployments.apps"), ("create", "secrets"), ("patch", "configmaps")]:
        assert not account.can(verb, resource, namespace="default"), (verb, resource)
        assert not account.can(verb, resource, namespace="kube-system"), (verb, resource)


def _secret(kubectl: Kubectl, name: str, key: str) -> str:
    value = f"s3cret-{name}-{secrets.token_hex(8)}"
    kubectl("create", "secret", "generic", name, f"--from-literal={key}={value}")
    return value


def _containers(deployment: dict) -> list[dict]:
    spec = deployment["spec"]["template"]["spec"]
    return spec.get("initContainers", []) + spec["containers"]


def test_pods_are_locked_down_and_no_secret_value_leaks_into_configmaps_status_events_env_or_logs(
    kubectl: Kubectl, operator: OperatorProcess
) -> None:
    values = [
        _secret(kubectl, "hf", "token"),
        _secret(kubectl, "db", "password"),
        _secret(kubectl, "keys", "keys"),
        _secret(kubectl, "admin", "admin-key"),
        _secret(kubectl, "flask", "secret-key"),
    ]
    kubectl.apply(
        "apiVersion: kubechat.dev/v1alpha1\nkind: ChatModel\nmetadata: {name: godel}\nspec:\n"
        "  model: {id: meta-llama/Llama-2-7b-chat-hf, tokenSecretRef: {name: hf, key: token}}\n"
    )
    kubectl.apply(
        "apiVersion: kubechat.dev/v1alpha1\nkind: ChatFrontend\nmetadata: {name: chat}\nspec:\n"
        "  models: [{name: godel}]\n"
        "  store: {url: 'postgresql://kubechat@db:5432/chat', passwordSecretRef: {name: db}}\n"
        "  apiKeysSecretRef: {name: keys}\n  adminKeySecretRef: {name: admin}\n"
        "  secretKeySecretRef: {name: flask}\n"
    )
    kubectl.wait_phase("chatmodel", "godel", "Ready", timeout=90)
    kubectl.wait_phase("chatfrontend", "chat", "Ready", timeout=90)

    deployments = kubectl.items("deployments")
    assert {d["metadata"]["name"] for d in deployments} == {"godel", "chat-frontend"}
    for deployment in deployments:
        pod = deployment["spec"]["template"]["spec"]
        assert pod["securityContext"]["runAsNonRoot"] is True
        assert not pod.get("hostNetwork") and not pod.get("hostPID") and not pod.get("hostIPC")
        assert not [v for v in pod.get("volumes", []) if "hostPath" in v]
        for container in _containers(deployment):
            context = container["securityContext"]
            assert context["allowPrivilegeEscalation"] is False, container["name"]
            assert context["readOnlyRootFilesystem"] is True, container["name"]
            assert context["capabilities"]["drop"] == ["ALL"], container["name"]
            assert not context.get("privileged"), container["name"]

    places = {
        "configmaps": json.dumps([c.get("data") for c in kubectl.items("configmaps")]),
        "status": json.dumps(
            [m.get("status") for k in ("chatmodels", "chatfrontends") for m in kubectl.items(k)]
        ),
        "events": json.dumps([e.get("message") for e in kubectl.items("events")]),
        "plain env": json.dumps([c.get("env") for d in deployments for c in _containers(d)]),
        "annotations": json.dumps(
            [d["spec"]["template"]["metadata"].get("annotations") for d in deployments]
        ),
        "operator log": operator.log_path.read_text(errors="replace"),
    }
    leaks = [(where, value) for where, text in places.items() for value in values if value in text]
    assert not leaks, leaks


def test_model_server_and_frontend_never_log_tokens_or_keys(tmp_path: Path) -> None:
    admin_token, hf_token = secrets.token_urlsafe(24), f"hf_{secrets.token_hex(16)}"
    env = {"KUBECHAT_ADMIN_TOKEN": admin_token, "HF_TOKEN": hf_token, "KUBECHAT_MAX_NEW_TOKENS": "4"}
    with running_model_server(tiny_model_dir("llama"), env=env) as server:
        wrong = requests.post(
            f"{server.url}/shutdown", headers={"Authorization": f"Bearer {admin_token}x"}, timeout=10
        )
        assert wrong.status_code in (401, 403)
        health = requests.get(f"{server.url}/healthz", timeout=10).text
        chat = {"messages": [{"role": "user", "content": "hi"}]}
        assert requests.post(f"{server.url}/v1/chat/completions", json=chat, timeout=60).status_code == 200
        keys = make_keys(tmp_path)
        settings = {
            "STORE": f"sqlite:///{tmp_path}/history.db",
            "MODELS": [{"name": "llama", "url": server.url}],
            "API_KEYS_FILE": keys.file, "ADMIN_KEY": keys.admin_key, "SECRET_KEY": secrets.token_hex(16),
        }  # fmt: skip
        with run_frontend(settings, tmp_path / "frontend.log") as frontend:
            for headers in (
                keys.user_headers,
                keys.admin_headers,
                {"Authorization": f"Bearer {keys.user_key}x"},
            ):
                requests.post(f"{frontend.url}/v1/chat/completions", json=chat, headers=headers, timeout=60)
        frontend_log = (tmp_path / "frontend.log").read_text(errors="replace")
    server_log = server.log()
    for secret in (admin_token, hf_token):
        assert secret not in server_log and secret not in health
    for secret in (keys.user_key, keys.admin_key, settings["SECRET_KEY"]):
        assert secret not in frontend_log
