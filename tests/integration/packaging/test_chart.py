"""The Helm chart as files and rendered manifests: lint, CRDs from the one source, schema, security, RBAC."""

from __future__ import annotations

import filecmp
from pathlib import Path

import pytest
import yaml
from chart_harness import CHART, Helm

from tests.support.procs import REPO_ROOT

CRD_SOURCE = REPO_ROOT / "crds"
CHART_CRDS = CHART / "files" / "crds"


def by_kind(manifests: list[dict], kind: str) -> list[dict]:
    return [m for m in manifests if m["kind"] == kind]


def test_chart_crd_files_are_copies_of_the_crds_folder() -> None:
    source = sorted(p.name for p in CRD_SOURCE.glob("*.yaml"))
    assert source, "crds/ has no CRDs"
    assert sorted(p.name for p in CHART_CRDS.glob("*.yaml")) == source, "run hack/sync-chart-crds"
    _, mismatch, errors = filecmp.cmpfiles(CRD_SOURCE, CHART_CRDS, source, shallow=False)
    assert not mismatch and not errors, f"{mismatch + errors} differ from crds/: run hack/sync-chart-crds"


def test_rendered_crds_equal_the_crds_folder_plus_keep_policy(chart_tool: Helm) -> None:
    rendered = {m["metadata"]["name"]: m for m in by_kind(chart_tool.template(), "CustomResourceDefinition")}
    for path in CRD_SOURCE.glob("*.yaml"):
        source = yaml.safe_load(path.read_text())
        crd = rendered.pop(source["metadata"]["name"])
        annotations = crd["metadata"].pop("annotations")
        assert annotations == {"helm.sh/resource-policy": "keep"}
        # The chart adds its own labels and nothing else.
        labels = crd["metadata"].pop("labels")
        assert labels.items() >= source["metadata"].pop("labels", {}).items()
        source["metadata"].pop("annotations", None)
        crd["metadata"].pop("labels", None)
        assert crd == source, f"{path.name}: the chart's CRD differs from crds/"
    assert not rendered, f"the chart renders CRDs that crds/ lacks: {sorted(rendered)}"


def test_crds_can_be_left_out_and_deleted_on_uninstall(chart_tool: Helm) -> None:
    assert not by_kind(chart_tool.template("--set", "crds.install=false"), "CustomResourceDefinition")
    crds = by_kind(chart_tool.template("--set", "crds.keep=false"), "CustomResourceDefinition")
    assert crds and all("helm.sh/resource-policy" not in c["metadata"].get("annotations", {}) for c in crds)


def test_helm_lint_is_clean(chart_tool: Helm) -> None:
    result = chart_tool("lint", "--strict", str(CHART))
    assert "0 chart(s) failed" in result.stdout, result.stdout
    assert "[WARNING]" not in result.stdout and "[ERROR]" not in result.stdout, result.stdout


@pytest.mark.parametrize(
    "values",
    [
        ["--set", "no.such.key=1"],
        ["--set", "image.pullPolicy=Sometimes"],
        ["--set", "metrics.port=70000"],
        ["--set-json", 'operator.watchNamespaces=["Not_A_Namespace"]'],
    ],
    ids=["unknown-key", "bad-pull-policy", "port-out-of-range", "bad-namespace-name"],
)
def test_values_schema_rejects_invalid_values(chart_tool: Helm, values: list[str]) -> None:
    result = chart_tool("template", "kubechat", str(CHART), *values, check=False)
    assert result.returncode != 0
    assert "values don't meet the specifications of the schema" in result.stderr, result.stderr


def test_operator_pod_is_locked_down_and_probed(chart_tool: Helm) -> None:
    (deployment,) = by_kind(chart_tool.template(), "Deployment")
    pod = deployment["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert container["securityContext"]["allowPrivilegeEscalation"] is False
    assert container["securityContext"]["capabilities"] == {"drop": ["ALL"]}
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "health"}
    assert f"--liveness-port={ports['health']}" in container["args"]
    assert f"--metrics-port={ports['metrics']}" in container["args"]
    assert {"name": "tmp", "mountPath": "/tmp"} in container["volumeMounts"]


def test_rbac_names_every_verb_and_resource_explicitly(chart_tool: Helm) -> None:
    manifests = chart_tool.template("--set-json", 'operator.watchNamespaces=["team-a","team-b"]')
    roles = by_kind(manifests, "ClusterRole") + by_kind(manifests, "Role")
    rules = [rule for role in roles for rule in role["rules"]]
    assert rules
    for rule in rules:
        assert "*" not in rule["verbs"] and "*" not in rule["resources"] and "*" not in rule["apiGroups"]
        assert not {"escalate", "bind", "impersonate"} & set(rule["verbs"])
    namespaced = {r["metadata"]["namespace"] for r in by_kind(manifests, "Role")}
    assert namespaced == {"team-a", "team-b"}
    (cluster_role,) = by_kind(manifests, "ClusterRole")
    cluster_resources = {res for rule in cluster_role["rules"] for res in rule["resources"]}
    assert cluster_resources == {"customresourcedefinitions", "namespaces"}, "namespaced rights leaked"


def test_optional_pieces_render_when_enabled(chart_tool: Helm) -> None:
    manifests = chart_tool.template("--set", "metrics.serviceMonitor.enabled=true", "--set", "replicaCount=2")
    (monitor,) = by_kind(manifests, "ServiceMonitor")
    assert monitor["spec"]["endpoints"][0]["port"] == "metrics"
    (deployment,) = by_kind(manifests, "Deployment")
    assert "--leader-elect" in deployment["spec"]["template"]["spec"]["containers"][0]["args"]
    leases = [r for r in by_kind(manifests, "Role") if r["rules"][0]["resources"] == ["leases"]]
    assert leases, "leader election needs a Role for its Lease"
    assert by_kind(manifests, "PodDisruptionBudget")


def test_chart_packages_with_its_crds(chart_tool: Helm, tmp_path: Path) -> None:
    import tarfile

    chart_tool("package", str(CHART), "--destination", str(tmp_path))
    (archive,) = tmp_path.glob("kubechat-*.tgz")
    with tarfile.open(archive) as tar:
        names = tar.getnames()
    assert {"kubechat/files/crds/chatmodels.yaml", "kubechat/files/crds/chatfrontends.yaml"} <= set(names)
    assert "kubechat/values.schema.json" in names


def test_chart_app_version_is_the_project_version_hack_images_tags() -> None:
    import tomllib

    chart = yaml.safe_load((CHART / "Chart.yaml").read_text())
    project = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]
    # The chart's default image tags are its appVersion; hack/images tags images with the project version.
    assert chart["appVersion"] == project["version"]
