"""The CRDs as the apiserver serves them: `kubectl explain` teaches, short names and the category resolve."""

from __future__ import annotations

import pytest
from operator_harness import Kubectl, wait_until

pytestmark = pytest.mark.controlplane


def _explain(kubectl: Kubectl, field: str) -> str:
    # The apiserver publishes a new CRD's OpenAPI a moment after the CRD is Established.
    return wait_until(
        lambda: (r := kubectl("explain", field, check=False)).returncode == 0 and r.stdout,
        30,
        f"explain {field}",
    )


def test_kubectl_explain_documents_nested_fields(kubectl: Kubectl) -> None:
    generation = _explain(kubectl, "chatmodel.spec.generation")
    assert "Generation defaults" in generation
    assert "maxNewTokens" in generation
    gpu = _explain(kubectl, "chatmodel.spec.resources.gpu.resourceName")
    assert "nvidia.com/gpu" in gpu
    service = _explain(kubectl, "chatfrontend.spec.service.nodePort")
    assert "NodePort only" in service


def test_short_names_and_category_resolve(kubectl: Kubectl) -> None:
    resources = kubectl.plane.kubectl("api-resources", "--api-group=kubechat.dev", "-o", "wide").stdout
    assert "cmodel,chatm" in resources and "chatfe,cfe" in resources
    for name in ("cmodel", "chatm", "chatfe", "cfe", "kubechat"):
        assert kubectl("get", name).returncode == 0
    builtin = kubectl.plane.kubectl("api-resources", "--api-group=", "-o", "name").stdout
    assert "configmaps" in builtin  # `cm` stays ConfigMap's
    assert kubectl("get", "cm", "-o", "name").stdout.startswith("configmap/")
