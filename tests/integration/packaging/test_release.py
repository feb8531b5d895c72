"""The chart's life on a real apiserver: install, the operator it deploys reconciling an example (run
locally with the Deployment's command, args, env and ServiceAccount), `helm test`, an upgrade whose CRD gains
a field, and an uninstall that leaves no operator object behind."""

from __future__ import annotations

import json
import secrets
import shutil
import subprocess
import sys
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypeVar

import pytest
import yaml
from chart_harness import CHART, RELEASE_NAMESPACE, Helm, wait_for

from hack.localpod import Kubectl, LocalProcess, translate
from tests.support.controlplane import ControlPlane
from tests.support.procs import REPO_ROOT, python_env

pytestmark = [pytest.mark.controlplane, pytest.mark.slow]
T = TypeVar("T")

RELEASE = "kubechat"
OPERATOR = "kubechat"  # the Deployment, ServiceAccount and Service are named after the release
INSTANCE_SELECTOR = f"app.kubernetes.io/instance={RELEASE}"
NAMESPACED_KINDS = ",".join(
    (
        "deployments",
        "replicasets",
        "pods",
        "services",
        "serviceaccounts",
        "poddisruptionbudgets",
        "roles",
        "rolebindings",
    )
)
CLUSTER_KINDS = "clusterroles,clusterrolebindings"


def install(helm: Helm, chart: Path = CHART, *args: str) -> None:
    """Install or upgrade to `chart` with exactly `args` (--reset-values: a plain `helm upgrade` would
    silently keep the values of the previous revision)."""
    helm(
        "upgrade", "--install", RELEASE, str(chart), "--namespace", RELEASE_NAMESPACE, "--create-namespace",
        "--wait", "--timeout=120s", "--reset-values", *args,
    )  # fmt: skip


@pytest.fixture
def release(helm: Helm) -> str:
    """The chart installed (or upgraded back to the checkout's chart) as release `kubechat`."""
    install(helm)
    return RELEASE


@pytest.fixture
def workload_namespace(plane: ControlPlane) -> Iterator[str]:
    name = f"demo-{secrets.token_hex(3)}"
    plane.kubectl("create", "namespace", name)
    plane.kubectl("wait", "--for=create", f"--namespace={name}", "serviceaccount/default", "--timeout=30s")
    yield name
    plane.kubectl("delete", "namespace", name, "--wait=false", check=False)


@pytest.fixture
def operator(release: str, run_deployment: Callable[..., LocalProcess]) -> LocalProcess:
    """The chart's operator Deployment, run here as a process with its ServiceAccount's token."""
    return start_operator(run_deployment)


def health_port(process: LocalProcess) -> int:
    """The container port the operator serves /healthz on (its local port is in the argv)."""
    ports = process.spec.ports
    return next(port for port in ports if f"--liveness-port={ports[port]}" in process.spec.argv)


def status_of(kubectl: Kubectl, kind: str, name: str, namespace: str) -> dict:
    return kubectl.get(kind, name, namespace).get("status") or {}


def start_operator(run_deployment: Callable[..., LocalProcess]) -> LocalProcess:
    process = run_deployment(OPERATOR, RELEASE_NAMESPACE)
    process.wait_http(process.spec.url(health_port(process), "/healthz"), timeout=60)
    return process


def assert_reconciles_quickstart(operator: LocalProcess, kubectl: Kubectl, namespace: str) -> None:
    """examples/quickstart.yaml becomes Ready, with no 403 in the operator's log (it runs with the token of
    the chart's ServiceAccount, so any rule the chart lacks would show up as one)."""
    kubectl.run("apply", "-n", namespace, "-f", str(REPO_ROOT / "examples" / "quickstart.yaml"))

    def ready(kind: str, name: str) -> bool:
        return status_of(kubectl, kind, name, namespace).get("phase") == "Ready"

    wait_for(lambda: ready("chatmodel", "quickstart"), 180, "ChatModel quickstart Ready")
    wait_for(lambda: ready("chatfrontend", "quickstart-chat"), 180, "ChatFrontend quickstart-chat Ready")
    deployments = json.loads(kubectl.run("get", "deployments", "-n", namespace, "-o", "json"))
    assert {d["metadata"]["name"] for d in deployments["items"]} == {"quickstart", "quickstart-chat-frontend"}
    log = operator.log_path.read_text()
    assert "Forbidden" not in log and " 403" not in log, operator.log_tail(60)


def test_installed_operator_reconciles_the_quickstart_example_with_only_the_charts_rbac(
    operator: LocalProcess, kubectl: Kubectl, workload_namespace: str
) -> None:
    assert health_port(operator) == 8081, operator.spec.argv
    assert_reconciles_quickstart(operator, kubectl, workload_namespace)
    metrics_port = next(p for p in operator.spec.ports if p != health_port(operator))
    with urllib.request.urlopen(operator.spec.url(metrics_port, "/metrics"), timeout=10) as response:
        assert response.status == 200


def test_namespaced_install_reconciles_with_roles_in_the_watched_namespace_only(
    helm: Helm, kubectl: Kubectl, workload_namespace: str, run_deployment: Callable[..., LocalProcess]
) -> None:
    try:
        install(helm, CHART, "--set-json", f'operator.watchNamespaces=["{workload_namespace}"]')
        roles = kubectl.run("get", "roles", "-A", "-l", INSTANCE_SELECTOR, "-o", "name").split()
        assert roles == ["role.rbac.authorization.k8s.io/kubechat"]
        operator = start_operator(run_deployment)
        assert f"--namespace={workload_namespace}" in operator.spec.argv
        assert_reconciles_quickstart(operator, kubectl, workload_namespace)
    finally:
        install(helm)  # back to the default, cluster-wide release for the tests that follow


def test_helm_test_hook_checks_the_operator_through_its_service(
    operator: LocalProcess, helm: Helm, kubectl: Kubectl, tmp_path: Path
) -> None:
    """`helm test` for real: this test plays the kubelet for the hook pod (kwok runs no containers). It
    runs the pod's container here, its Service URL pointing at the local operator, and reports the exit
    code as the pod's phase; helm then passes or fails on that phase."""
    pod_name = f"{RELEASE}-test-alive"
    helm_test = subprocess.Popen(
        [helm.binary, "test", RELEASE, "--namespace", RELEASE_NAMESPACE, "--timeout=90s"],
        env=helm.env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        pod = wait_for(lambda: _try(lambda: kubectl.get("pod", pod_name, RELEASE_NAMESPACE)), 30, "hook pod")
        port = health_port(operator)
        container = translate(
            pod,
            kubectl,
            python=sys.executable,
            workdir=tmp_path,
            ports={},
            service_urls={
                (OPERATOR, RELEASE_NAMESPACE, port): f"http://127.0.0.1:{operator.spec.ports[port]}"
            },
            base_env=python_env(),
        )
        hook = LocalProcess(container, tmp_path / "hook.log")
        exit_code = hook.process.wait(30)
        phase = "Succeeded" if exit_code == 0 else "Failed"
        kubectl.run(
            "patch", "pod", pod_name, "-n", RELEASE_NAMESPACE, "--subresource=status", "--type=merge",
            "-p", json.dumps({"status": {"phase": phase}}),
        )  # fmt: skip
        output, _ = helm_test.communicate(timeout=120)
    finally:
        helm_test.kill()
        helm_test.wait()
        kubectl.run("delete", "pod", pod_name, "-n", RELEASE_NAMESPACE, "--ignore-not-found", "--wait=false")
    assert exit_code == 0, hook.log_tail()
    assert "/healthz 200" in hook.log_tail()
    assert helm_test.returncode == 0, output
    assert "Phase:          Succeeded" in output, output


def chart_with_new_crd_field(tmp_path: Path) -> Path:
    """A copy of the chart whose ChatModel CRD serves one more spec field, `upgradeCanary`."""
    chart = tmp_path / "kubechat"
    shutil.copytree(CHART, chart)
    crd_path = chart / "files" / "crds" / "chatmodels.yaml"
    crd = yaml.safe_load(crd_path.read_text())
    spec = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]
    spec["properties"]["upgradeCanary"] = {"type": "string", "description": "Added by the upgrade test."}
    crd_path.write_text(yaml.safe_dump(crd))
    meta = yaml.safe_load((chart / "Chart.yaml").read_text())
    meta["version"] = meta["version"] + "-upgrade"
    (chart / "Chart.yaml").write_text(yaml.safe_dump(meta))
    return chart


def test_helm_upgrade_serves_the_field_a_new_crd_adds(
    release: str, helm: Helm, kubectl: Kubectl, workload_namespace: str, tmp_path: Path
) -> None:
    def explain() -> str:
        return kubectl.run("explain", "chatmodel.spec.upgradeCanary")

    with pytest.raises(RuntimeError, match="does not exist"):
        explain()
    try:
        install(helm, chart_with_new_crd_field(tmp_path))
        assert "Added by the upgrade test." in wait_for(lambda: _try(explain), 30, "the new field in explain")
        example = yaml.safe_load_all((REPO_ROOT / "examples" / "quickstart.yaml").read_text())
        model = next(doc for doc in example if doc["kind"] == "ChatModel")
        model["spec"]["upgradeCanary"] = "kept"
        kubectl.run("apply", "-n", workload_namespace, "-f", "-", input=json.dumps(model))
        stored = kubectl.get("chatmodel", "quickstart", workload_namespace)
        assert stored["spec"]["upgradeCanary"] == "kept", "the apiserver pruned the upgraded CRD's field"
    finally:
        install(helm)  # back to the checkout's chart for the tests that follow


def _try(read: Callable[[], T]) -> T | None:
    try:
        return read()
    except RuntimeError:
        return None


def test_helm_uninstall_leaves_no_operator_objects_but_keeps_the_crds(
    release: str, helm: Helm, kubectl: Kubectl
) -> None:
    def leftovers() -> list[str]:
        names = kubectl.run("get", NAMESPACED_KINDS, "-A", "-l", INSTANCE_SELECTOR, "-o", "name")
        names += kubectl.run("get", CLUSTER_KINDS, "-l", INSTANCE_SELECTOR, "-o", "name")
        return names.split()

    assert len(leftovers()) >= 8, leftovers()  # sanity: the selector does find the release's objects
    helm("uninstall", RELEASE, "--namespace", RELEASE_NAMESPACE, "--wait", "--timeout=60s")
    wait_for(lambda: not leftovers(), 60, "the release's objects (and their pods) to be gone")
    # helm.sh/resource-policy: keep — the CRDs, and so every user's ChatModels, survive an uninstall.
    for crd in ("chatmodels.kubechat.dev", "chatfrontends.kubechat.dev"):
        kept = kubectl.get("crd", crd, "default")
        assert kept["metadata"]["annotations"]["helm.sh/resource-policy"] == "keep"
    assert RELEASE not in helm("list", "--all-namespaces", "-q").stdout.split()


def test_every_example_manifest_passes_server_side_dry_run(
    release: str, kubectl: Kubectl, workload_namespace: str
) -> None:
    examples = sorted((REPO_ROOT / "examples").glob("*.yaml"))
    assert len(examples) >= 2
    for example in examples:
        kubectl.run("apply", "--dry-run=server", "-n", workload_namespace, "-f", str(example))


def test_gitops_overlays_build_and_pass_server_side_dry_run(release: str, kubectl: Kubectl) -> None:
    overlays = sorted(p for p in (REPO_ROOT / "examples" / "gitops" / "overlays").iterdir() if p.is_dir())
    assert overlays
    for overlay in overlays:
        docs = list(yaml.safe_load_all(kubectl.run("kustomize", str(overlay))))
        (namespace,) = [d["metadata"]["name"] for d in docs if d["kind"] == "Namespace"]
        # A server-side dry run cannot create the namespace the other objects go into: make it first.
        kubectl.run("create", "namespace", namespace)
        try:
            kubectl.run("apply", "--dry-run=server", "-k", str(overlay))
        finally:
            kubectl.run("delete", "namespace", namespace, "--wait=false")
        kinds = {d["kind"] for d in docs}
        assert {"ChatModel", "ChatFrontend"} <= kinds, f"{overlay.name}: {kinds}"
