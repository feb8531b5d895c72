"""Metadata, labels and pod pieces shared by the ChatModel and ChatFrontend builders."""

from __future__ import annotations

import hashlib
import json
from typing import Any

from kubechat_operator import GROUP
from kubechat_operator.spec import Autoscaling, CpuMemory, PodSettings, Resource

MANAGED_BY = "kubechat-operator"
MANAGED_BY_LABEL = "app.kubernetes.io/managed-by"
CHECKSUM_ANNOTATION = f"{GROUP}/config-checksum"
HTTP_PORT = 8080
NON_ROOT_UID = 1000

Manifest = dict[str, Any]

# A ChatModel's Deployment and Service keep the CR's name (the Service is the endpoint clients know); every
# ChatFrontend child ends in this suffix, which the ChatModel CRD forbids at the end of a name. So a ChatModel
# and a ChatFrontend can share a name, and no child of one kind can ever be named like a child of the other.
FRONTEND_SUFFIX = "-frontend"


def workload_name(owner: Resource) -> str:
    """Name of the owner's Deployment, Service, HPA and PodDisruptionBudget."""
    return owner.name + FRONTEND_SUFFIX if owner.kind == "ChatFrontend" else owner.name


def owner_label(owner: Resource) -> str:
    """The label naming a child's owner, e.g. kubechat.dev/chatmodel."""
    return f"{GROUP}/{owner.kind.lower()}"


def selector_labels(owner: Resource, component: str) -> dict[str, str]:
    """Labels that select the owner's pods (stable for the Deployment's immutable selector)."""
    return {owner_label(owner): owner.name, "app.kubernetes.io/component": component}


def labels(owner: Resource, component: str) -> dict[str, str]:
    """All labels of a child: the selector labels plus the recommended app.kubernetes.io set."""
    return {
        **selector_labels(owner, component),
        "app.kubernetes.io/name": f"kubechat-{component}",
        "app.kubernetes.io/instance": owner.name,
        "app.kubernetes.io/part-of": "kubechat",
        MANAGED_BY_LABEL: MANAGED_BY,
    }


def metadata(owner: Resource, name: str, component: str) -> Manifest:
    """Metadata of a child: namespace, labels and a controller ownerReference (deleting the CR deletes it)."""
    return {
        "name": name,
        "namespace": owner.namespace,
        "labels": labels(owner, component),
        "ownerReferences": [
            {
                "apiVersion": owner.api_version,
                "kind": owner.kind,
                "name": owner.name,
                "uid": owner.uid,
                "controller": True,
                "blockOwnerDeletion": True,
            }
        ],
    }


def role_binding(owner: Resource, name: str, component: str) -> Manifest:
    """Binds the owner's Role `name` to its ServiceAccount of the same name."""
    return {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "RoleBinding",
        "metadata": metadata(owner, name, component),
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": name},
        "subjects": [{"kind": "ServiceAccount", "name": name, "namespace": owner.namespace}],
    }


def env_config_map(owner: Resource, name: str, component: str, env: dict[str, str]) -> Manifest:
    """A ConfigMap whose keys are a container's environment variables (loaded with ``envFrom``)."""
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": metadata(owner, name, component),
        "data": env,
    }


def selector_string(owner: Resource, component: str) -> str:
    """The pods' label selector as a string (status.selector, read by the scale subresource)."""
    return ",".join(f"{k}={v}" for k, v in sorted(selector_labels(owner, component).items()))


def config_checksum(data: dict[str, str]) -> str:
    """A digest of a ConfigMap's data; in the pod template it makes a config change roll the pods."""
    return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()[:16]


def resource_block(
    requests: CpuMemory, limits: CpuMemory, extended: dict[str, str] | None = None
) -> Manifest:
    """A container's resources; extended resources (GPUs) go into both requests and limits, as required."""
    block: Manifest = {}
    req = {**requests.as_dict(), **(extended or {})}
    lim = {**limits.as_dict(), **(extended or {})}
    if req:
        block["requests"] = req
    if lim:
        block["limits"] = lim
    return block


def downward_env() -> list[Manifest]:
    """POD_NAME, POD_NAMESPACE and NODE_NAME from the downward API (echoed in answers, keyed progress)."""
    return [
        {"name": env, "valueFrom": {"fieldRef": {"fieldPath": path}}}
        for env, path in (
            ("POD_NAME", "metadata.name"),
            ("POD_NAMESPACE", "metadata.namespace"),
            ("NODE_NAME", "spec.nodeName"),
        )
    ]


def secret_env(name: str, secret: str, key: str) -> Manifest:
    """An env var read from a Secret key."""
    return {"name": name, "valueFrom": {"secretKeyRef": {"name": secret, "key": key}}}


def pod_security_context() -> Manifest:
    """Non-root pods with the runtime's default seccomp profile; fsGroup makes volumes writable."""
    return {
        "runAsNonRoot": True,
        "runAsUser": NON_ROOT_UID,
        "runAsGroup": NON_ROOT_UID,
        "fsGroup": NON_ROOT_UID,
        "seccompProfile": {"type": "RuntimeDefault"},
    }


def container_security_context() -> Manifest:
    """Read-only root filesystem, no privilege escalation, no capabilities (writable paths are volumes)."""
    return {
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "capabilities": {"drop": ["ALL"]},
    }


def http_get(path: str, period: int, failures: int, timeout: int = 5) -> Manifest:
    """An HTTP probe on the container's named port http."""
    return {
        "httpGet": {"path": path, "port": "http"},
        "periodSeconds": period,
        "timeoutSeconds": timeout,
        "failureThreshold": failures,
    }


def service(owner: Resource, component: str, port: int, service_type: str = "ClusterIP") -> Manifest:
    """The owner's Service (workload_name) that forwards port to the pods' http port."""
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": metadata(owner, workload_name(owner), component),
        "spec": {
            "type": service_type,
            "selector": selector_labels(owner, component),
            "ports": [{"name": "http", "port": port, "targetPort": "http", "protocol": "TCP"}],
        },
    }


def horizontal_pod_autoscaler(
    owner: Resource, component: str, autoscaling: Autoscaling, behavior: Manifest | None = None
) -> Manifest:
    """An autoscaling/v2 HPA that scales the custom resource itself through its scale subresource.

    Scaling the CR (not the Deployment) keeps spec.replicas the one source of truth the operator applies.
    behavior (spec.behavior: scaleUp / scaleDown) is left to the HPA's defaults when None.
    """
    hpa_spec: Manifest = {
        "scaleTargetRef": {"apiVersion": owner.api_version, "kind": owner.kind, "name": owner.name},
        "minReplicas": autoscaling.min_replicas,
        "maxReplicas": autoscaling.max_replicas,
        "metrics": [
            {
                "type": "Resource",
                "resource": {
                    "name": "cpu",
                    "target": {
                        "type": "Utilization",
                        "averageUtilization": autoscaling.target_cpu_utilization_percentage,
                    },
                },
            }
        ],
    }
    if behavior is not None:
        hpa_spec["behavior"] = behavior
    return {
        "apiVersion": "autoscaling/v2",
        "kind": "HorizontalPodAutoscaler",
        "metadata": metadata(owner, workload_name(owner), component),
        "spec": hpa_spec,
    }


def merge_env(ours: list[Manifest], theirs: list[Manifest]) -> list[Manifest]:
    """Our env with the user's extra env appended; a user variable of the same name replaces ours."""
    overridden = {e["name"] for e in theirs}
    return [e for e in ours if e["name"] not in overridden] + list(theirs)


def pod_placement(
    owner: Resource, component: str, spec: PodSettings, tolerations: list[Manifest] | None = None
) -> Manifest:
    """The pod-spec fields a user sets for where pods run and how images are pulled, those that are set.

    tolerations replaces spec.tolerations when the builder adds its own (the GPU taint's). A topology spread
    constraint without a labelSelector spreads the owner's own pods (the user cannot know our labels)."""
    spread = [
        {"labelSelector": {"matchLabels": selector_labels(owner, component)}, **constraint}
        for constraint in spec.topology_spread_constraints
    ]
    fields = {
        "nodeSelector": spec.node_selector or None,
        "tolerations": (spec.tolerations if tolerations is None else tolerations) or None,
        "affinity": spec.affinity,
        "topologySpreadConstraints": spread or None,
        "runtimeClassName": spec.runtime_class_name,
        "priorityClassName": spec.priority_class_name,
        "imagePullSecrets": [{"name": s.name} for s in spec.image_pull_secrets] or None,
    }
    return {k: v for k, v in fields.items() if v is not None}
