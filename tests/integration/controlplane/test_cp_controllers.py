"""The controller manager's controllers run: garbage collection and horizontal pod autoscaling."""

from __future__ import annotations

import json

import pytest
from kubernetes import client

pytestmark = pytest.mark.controlplane


def test_deleting_an_owner_garbage_collects_its_configmap(control_plane, namespace):
    with control_plane.api_client() as api_client:
        core = client.CoreV1Api(api_client)
        owner = core.create_namespaced_config_map(namespace, client.V1ConfigMap(metadata={"name": "owner"}))
        reference = client.V1OwnerReference(
            api_version="v1",
            kind="ConfigMap",
            name="owner",
            uid=owner.metadata.uid,
            block_owner_deletion=True,
        )
        core.create_namespaced_config_map(
            namespace,
            client.V1ConfigMap(metadata={"name": "owned", "ownerReferences": [reference]}, data={"k": "v"}),
        )

        core.delete_namespaced_config_map("owner", namespace)

    control_plane.kubectl("wait", "-n", namespace, "--for=delete", "configmap/owned", "--timeout=60s")


def test_autoscaling_v2_hpa_is_created_and_picked_up_by_the_hpa_controller(control_plane, namespace):
    control_plane.kubectl("create", "deployment", "web", "--image=registry.invalid/web:1", "-n", namespace)
    hpa = {
        "apiVersion": "autoscaling/v2",
        "kind": "HorizontalPodAutoscaler",
        "metadata": {"name": "web"},
        "spec": {
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"},
            "minReplicas": 1,
            "maxReplicas": 4,
            "metrics": [
                {
                    "type": "Resource",
                    "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": 70}},
                }
            ],
        },
    }
    control_plane.kubectl("apply", "-n", namespace, "-f", "-", input=json.dumps(hpa))

    # No metrics server runs here, so the controller can only say it is able to scale the target: that
    # condition appearing proves the HPA controller saw the object.
    control_plane.kubectl("wait", "-n", namespace, "--for=condition=AbleToScale", "hpa/web", "--timeout=60s")
    stored = json.loads(control_plane.kubectl("get", "-n", namespace, "hpa/web", "-o", "json").stdout)
    assert stored["apiVersion"] == "autoscaling/v2"
    assert stored["spec"]["metrics"][0]["resource"]["target"]["averageUtilization"] == 70
