"""The apiserver enforces a CRD's CEL validation rules at `kubectl apply`."""

from __future__ import annotations

import json

import pytest

pytestmark = pytest.mark.controlplane

RULE_MESSAGE = "minReplicas must not exceed maxReplicas"

CRD = {
    "apiVersion": "apiextensions.k8s.io/v1",
    "kind": "CustomResourceDefinition",
    "metadata": {"name": "celchecks.test.kubechat.dev"},
    "spec": {
        "group": "test.kubechat.dev",
        "scope": "Namespaced",
        "names": {"plural": "celchecks", "singular": "celcheck", "kind": "CelCheck"},
        "versions": [
            {
                "name": "v1",
                "served": True,
                "storage": True,
                "schema": {
                    "openAPIV3Schema": {
                        "type": "object",
                        "properties": {
                            "spec": {
                                "type": "object",
                                "properties": {
                                    "minReplicas": {"type": "integer"},
                                    "maxReplicas": {"type": "integer"},
                                },
                                "x-kubernetes-validations": [
                                    {"rule": "self.minReplicas <= self.maxReplicas", "message": RULE_MESSAGE}
                                ],
                            }
                        },
                    }
                },
            }
        ],
    },
}


def cel_check(name: str, min_replicas: int, max_replicas: int) -> str:
    return json.dumps(
        {
            "apiVersion": "test.kubechat.dev/v1",
            "kind": "CelCheck",
            "metadata": {"name": name},
            "spec": {"minReplicas": min_replicas, "maxReplicas": max_replicas},
        }
    )


@pytest.fixture
def cel_crd(control_plane):
    control_plane.kubectl("apply", "-f", "-", input=json.dumps(CRD))
    control_plane.kubectl(
        "wait", "--for=condition=Established", f"crd/{CRD['metadata']['name']}", "--timeout=30s"
    )
    yield
    control_plane.kubectl("delete", "crd", CRD["metadata"]["name"], "--wait=false")


def test_cel_rule_rejects_an_invalid_object_at_kubectl_apply(control_plane, namespace, cel_crd):
    control_plane.kubectl("apply", "-n", namespace, "-f", "-", input=cel_check("valid", 1, 3))

    rejected = control_plane.kubectl(
        "apply", "-n", namespace, "-f", "-", input=cel_check("invalid", 5, 2), check=False
    )

    assert rejected.returncode != 0
    assert "Invalid value" in rejected.stderr
    assert RULE_MESSAGE in rejected.stderr
    assert control_plane.kubectl("get", "-n", namespace, "celcheck", "invalid", check=False).returncode != 0
