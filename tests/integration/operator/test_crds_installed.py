"""The CRDs as the apiserver serves them: `kubectl explain` teaches, short names and the category resolve."""

from __future__ import annotations

import pytest
from operator_harness import Kubectl

pytestmark = pytest.mark.controlplane


def test_kubectl_explain_documents_nested_fields(kubectl: Kubectl) -> None:
    generation = kubectl("explain", "chatmodel.spec.generation").stdout
    assert "Generation defaults" in generation
    assert "maxNewTokens" in generation
    gpu = kubectl("explain", "chatmodel.spec.resources.gpu.resourceName").stdout
    assert "nvidia.com/gpu" in gpu
    service = kubectl("explain", "chatfrontend.spec.service.nodePort").stdout
    assert "NodePort only" in service


def test_short_names_and_category_resolve(kubectl: Kubectl) -> None:
    resources = kubectl.plane.kubectl("api-resources", "--api-group=kubechat.dev", "-o", "wide").stdout
    assert "cmodel,chatm" in resources and "chatfe,cfe" in resources
    for name in ("cmodel", "chatm", "chatfe", "cfe", "kubechat"):
        assert kubectl("get", name).returncode == 0
    builtin = kubectl.plane.kubectl("api-resources", "--api-group=", "-o", "name").stdout
    assert "configmaps" in builtin  # `cm` stays ConfigMap's
    assert kubectl("get", "cm", "-o", "name").stdout.startswith("configmap/")
