"""The CRDs in crds/ teach through `kubectl explain` and are structural (checked without a cluster)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

CRD_DIR = Path(__file__).resolve().parents[3] / "crds"
CRD_FILES = sorted(CRD_DIR.glob("chat*.yaml"))
BUILTIN_SHORT_NAMES = {
    "cm", "cs", "ds", "deploy", "ep", "ev", "hpa", "ing", "limits", "netpol", "no", "ns", "pdb", "po", "pv",
    "pvc", "quota", "rc", "rs", "sa", "sc", "sts", "svc", "crd", "crds", "csr", "pc", "ingclass", "vac",
}  # fmt: skip


def _schema_nodes(node: dict, path: str) -> Iterator[tuple[str, dict]]:
    yield path, node
    for name, child in node.get("properties", {}).items():
        yield from _schema_nodes(child, f"{path}.{name}")
    if "items" in node:
        yield from _schema_nodes(node["items"], f"{path}[]")
    if isinstance(node.get("additionalProperties"), dict):
        yield from _schema_nodes(node["additionalProperties"], f"{path}{{}}")


def _crd(path: Path) -> dict:
    return yaml.safe_load(path.read_text())


def test_both_crds_are_present() -> None:
    assert [p.name for p in CRD_FILES] == ["chatfrontends.yaml", "chatmodels.yaml"]


@pytest.mark.parametrize("path", CRD_FILES, ids=lambda p: p.name)
def test_every_spec_and_status_field_has_a_description(path: Path) -> None:
    schema = _crd(path)["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    missing = [
        where
        for part in ("spec", "status")
        for where, node in _schema_nodes(schema["properties"][part], part)
        if not node.get("description") and not where.endswith("{}")
    ]
    assert missing == []


@pytest.mark.parametrize("path", CRD_FILES, ids=lambda p: p.name)
def test_every_schema_node_is_structural(path: Path) -> None:
    schema = _crd(path)["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    untyped = [
        where
        for where, node in _schema_nodes(schema, "")
        if "type" not in node and not node.get("x-kubernetes-int-or-string")
    ]
    assert untyped == []


@pytest.mark.parametrize("path", CRD_FILES, ids=lambda p: p.name)
def test_short_names_clash_with_no_builtin_and_category_is_kubechat(path: Path) -> None:
    names = _crd(path)["spec"]["names"]
    assert not set(names["shortNames"]) & BUILTIN_SHORT_NAMES
    assert names["categories"] == ["kubechat"]


@pytest.mark.parametrize("path", CRD_FILES, ids=lambda p: p.name)
def test_scale_subresource_points_at_replicas_and_selector(path: Path) -> None:
    scale = _crd(path)["spec"]["versions"][0]["subresources"]["scale"]
    assert scale == {
        "specReplicasPath": ".spec.replicas",
        "statusReplicasPath": ".status.replicas",
        "labelSelectorPath": ".status.selector",
    }
