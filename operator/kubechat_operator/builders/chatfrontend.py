"""ChatFrontend → session Secret, ConfigMap, history PVC, Deployment, Service and HPA (pure functions)."""

from __future__ import annotations

import base64
import json

from kubechat_operator.builders.chatmodel import model_client_label, model_endpoint
from kubechat_operator.builders.common import (
    CHECKSUM_ANNOTATION,
    FRONTEND_SUFFIX,
    HTTP_PORT,
    Manifest,
    config_checksum,
    container_security_context,
    downward_env,
    env_config_map,
    horizontal_pod_autoscaler,
    merge_env,
    metadata,
    pod_placement,
    pod_security_context,
    resource_block,
    role_binding,
    secret_env,
    selector_labels,
    service,
    workload_name,
)
from kubechat_operator.builders.frontend_ingress import build_ingress
from kubechat_operator.config import OperatorConfig
from kubechat_operator.spec import ChatFrontendSpec, Resource, SessionSecretRef

COMPONENT = "frontend"
API_KEYS_DIR = "/etc/kubechat/api-keys"
DATA_DIR = "/data"


def config_map_name(name: str) -> str:
    return f"{name}{FRONTEND_SUFFIX}-config"


def history_claim_name(name: str) -> str:
    return f"{name}-history"


def session_secret_ref(owner: Resource, spec: ChatFrontendSpec) -> SessionSecretRef:
    """The Secret key that signs session cookies: the one the spec names, else the operator's own
    `<name>-session`. Every worker of every replica must sign with the same key, or a cookie from one is
    refused by the next (CSRF failures)."""
    return spec.secret_key_secret_ref or SessionSecretRef(name=f"{owner.name}-session")


def build_session_secret(owner: Resource, secret_key: str) -> Manifest:
    """The operator-made session Secret holding `secret_key` (random, chosen once by the handler)."""
    ref = SessionSecretRef(name=f"{owner.name}-session")
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": metadata(owner, ref.name, COMPONENT),
        "type": "Opaque",
        "data": {ref.key: base64.b64encode(secret_key.encode()).decode()},
    }


def stores_on_volume(spec: ChatFrontendSpec) -> bool:
    """SQLite keeps history in a file on the pod's /data volume, which is then a PVC (a pod restart, a
    reschedule or a rollout keeps every conversation) unless the spec asks for a throwaway emptyDir."""
    return spec.store.url.startswith("sqlite:") and spec.store.volume == "PersistentVolumeClaim"


def build_history_claim(owner: Resource, spec: ChatFrontendSpec) -> Manifest | None:
    """The PVC for SQLite history, or None for PostgreSQL and Redis (the pod keeps nothing then)."""
    if not stores_on_volume(spec):
        return None
    claim: Manifest = {
        "accessModes": ["ReadWriteOnce"],
        "resources": {"requests": {"storage": spec.store.size}},
    }
    if spec.store.storage_class_name:
        claim["storageClassName"] = spec.store.storage_class_name
    return {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": metadata(owner, history_claim_name(owner.name), COMPONENT),
        "spec": claim,
    }


def frontend_env(owner: Resource, spec: ChatFrontendSpec) -> dict[str, str]:
    """The frontend's configuration as env vars (docs/contracts.md), the data of <name>-config."""
    default = spec.default_model
    models = [
        {"name": m.name, "url": model_endpoint(m.name, owner.namespace), "default": m.name == default}
        for m in spec.models
    ]
    personas = [p.model_dump(exclude_none=True) for p in spec.personas]
    env = {
        "KUBECHAT_FRONTEND_MODELS": json.dumps(models),
        "KUBECHAT_FRONTEND_TITLE": spec.title,
        "KUBECHAT_FRONTEND_GREETING": spec.greeting,
        "KUBECHAT_FRONTEND_COOKIE_SECURE": "true" if spec.secure_cookies else "false",
        "KUBECHAT_FRONTEND_PERSONAS": json.dumps(personas),
        "KUBECHAT_FRONTEND_STORE": spec.store.url,
        "KUBECHAT_FRONTEND_RATE_LIMIT": str(spec.rate_limit.requests_per_minute),
        "KUBECHAT_FRONTEND_PORT": str(HTTP_PORT),
        "KUBECHAT_FRONTEND_RETENTION_DAYS": str(spec.store.retention_days),
        "KUBECHAT_FRONTEND_TRUSTED_PROXIES": str(spec.proxy_hops),
        "KUBECHAT_FRONTEND_WAKE_TIMEOUT_S": str(spec.wake.timeout_seconds),
        "KUBECHAT_FRONTEND_WAKE_MAX_WAITING": str(spec.wake.max_waiting),
        "KUBECHAT_FRONTEND_TOKEN_BUDGET": str(spec.token_budget.tokens),
        "KUBECHAT_FRONTEND_TOKEN_BUDGET_PERIOD_S": str(spec.token_budget.period_seconds),
    }
    if spec.api_keys_secret_ref:
        env["KUBECHAT_FRONTEND_API_KEYS_FILE"] = f"{API_KEYS_DIR}/keys"
    return env


def _secret_env(owner: Resource, spec: ChatFrontendSpec) -> list[Manifest]:
    refs = (
        ("KUBECHAT_FRONTEND_STORE_PASSWORD", spec.store.password_secret_ref),
        ("KUBECHAT_FRONTEND_ADMIN_KEY", spec.admin_key_secret_ref),
        ("KUBECHAT_FRONTEND_SECRET_KEY", session_secret_ref(owner, spec)),
    )
    return [secret_env(name, ref.name, ref.key) for name, ref in refs if ref is not None]


def build_deployment(owner: Resource, spec: ChatFrontendSpec, config: OperatorConfig) -> Manifest:
    """The frontend Deployment; a checksum of its config in the pod template rolls the pods on change."""
    data_volume: Manifest = (
        {"persistentVolumeClaim": {"claimName": history_claim_name(owner.name)}}
        if stores_on_volume(spec)
        else {"emptyDir": {}}
    )
    volumes: list[Manifest] = [{"name": "tmp", "emptyDir": {}}, {"name": "data", **data_volume}]
    mounts: list[Manifest] = [{"name": "tmp", "mountPath": "/tmp"}, {"name": "data", "mountPath": DATA_DIR}]
    if spec.api_keys_secret_ref:
        ref = spec.api_keys_secret_ref
        volumes.append(
            {
                "name": "api-keys",
                "secret": {"secretName": ref.name, "items": [{"key": ref.key, "path": "keys"}]},
            }
        )
        mounts.append({"name": "api-keys", "mountPath": API_KEYS_DIR, "readOnly": True})
    # Readiness is the frontend's own /health, not /readyz (which follows the model): while a model loads
    # or is down, the page must stay reachable to say so, instead of the Service losing its endpoints.
    health_probe = {
        "httpGet": {"path": "/health", "port": "http"},
        "periodSeconds": 10,
        "failureThreshold": 3,
    }
    container: Manifest = {
        "name": COMPONENT,
        "image": spec.image or config.frontend_image,
        "imagePullPolicy": spec.image_pull_policy,
        "ports": [{"name": "http", "containerPort": HTTP_PORT, "protocol": "TCP"}],
        "envFrom": [{"configMapRef": {"name": config_map_name(owner.name)}}],
        "env": merge_env([*downward_env(), *_secret_env(owner, spec)], spec.env),
        "resources": resource_block(spec.resources.requests, spec.resources.limits),
        "livenessProbe": health_probe,
        "readinessProbe": {**health_probe, "periodSeconds": 5},
        "securityContext": container_security_context(),
        "volumeMounts": mounts,
    }
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": metadata(owner, workload_name(owner), COMPONENT),
        "spec": {
            "replicas": spec.replicas,
            # A ReadWriteOnce history volume attaches to one node: the old pod must let go before the new
            # one starts (the CRD allows SQLite only with one replica).
            "strategy": {"type": "Recreate"} if stores_on_volume(spec) else {"type": "RollingUpdate"},
            "selector": {"matchLabels": selector_labels(owner, COMPONENT)},
            "template": {
                "metadata": {
                    "labels": {
                        # The CRD keeps podLabels off our keys; ours come last all the same.
                        **spec.pod_labels,
                        **metadata(owner, workload_name(owner), COMPONENT)["labels"],
                        # Lets the pods through each model's NetworkPolicy.
                        **{model_client_label(m.name): "true" for m in spec.models},
                    },
                    "annotations": {
                        **spec.pod_annotations,
                        CHECKSUM_ANNOTATION: config_checksum(frontend_env(owner, spec)),
                    },
                },
                "spec": with_reader_account(
                    {
                        "securityContext": pod_security_context(),
                        "containers": [container],
                        "volumes": volumes,
                        **pod_placement(owner, COMPONENT, spec),
                    },
                    owner,
                ),
            },
        },
    }


def reader_account_name(name: str) -> str:
    return f"{name}{FRONTEND_SUFFIX}"


def build_reader_account(owner: Resource) -> Manifest:
    """The frontend pods' identity: it reads its ChatModels' status (what a waking model is doing)."""
    return {
        "apiVersion": "v1",
        "kind": "ServiceAccount",
        "metadata": metadata(owner, reader_account_name(owner.name), COMPONENT),
        "automountServiceAccountToken": False,  # mounted by the pod spec, which opts in
    }


def build_reader_role(owner: Resource) -> Manifest:
    """Read-only access to the ChatModels of its own namespace, and nothing else (no Secrets, no writes).
    The operator may grant it: it holds the same verbs on chatmodels itself."""
    return {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "Role",
        "metadata": metadata(owner, reader_account_name(owner.name), COMPONENT),
        "rules": [
            {"apiGroups": ["kubechat.dev"], "resources": ["chatmodels"], "verbs": ["get", "list", "watch"]}
        ],
    }


def build_reader_role_binding(owner: Resource) -> Manifest:
    return role_binding(owner, reader_account_name(owner.name), COMPONENT)


def with_reader_account(pod: Manifest, owner: Resource) -> Manifest:
    """The pod spec running as the reader account, its token mounted (the frontend reads it per request)."""
    return {
        **pod,
        "serviceAccountName": reader_account_name(owner.name),
        "automountServiceAccountToken": True,
    }


def build_service(owner: Resource, spec: ChatFrontendSpec) -> Manifest:
    manifest = service(owner, COMPONENT, spec.service.port, spec.service.type)
    if spec.service.node_port is not None:
        manifest["spec"]["ports"][0]["nodePort"] = spec.service.node_port
    if spec.service.annotations:  # e.g. a cloud load balancer's settings
        manifest["metadata"]["annotations"] = dict(spec.service.annotations)
    return manifest


def build_frontend_children(
    owner: Resource, spec: ChatFrontendSpec, config: OperatorConfig
) -> list[Manifest]:
    """Every child of a ChatFrontend, config first; the handler makes the random-keyed session Secret."""
    children = [
        build_reader_account(owner),
        build_reader_role(owner),
        build_reader_role_binding(owner),
        env_config_map(owner, config_map_name(owner.name), COMPONENT, frontend_env(owner, spec)),
        build_history_claim(owner, spec),
        build_deployment(owner, spec, config),
        build_service(owner, spec),
        horizontal_pod_autoscaler(owner, COMPONENT, spec.autoscaling) if spec.autoscaling else None,
        build_ingress(owner, COMPONENT, spec.ingress) if spec.ingress and spec.ingress.enabled else None,
    ]
    return [child for child in children if child is not None]


def optional_frontend_children(owner: Resource) -> list[tuple[str, str]]:
    """(kind, name) of the children only some specs ask for; the ones not asked for are pruned."""
    return [("HorizontalPodAutoscaler", workload_name(owner)), ("Ingress", workload_name(owner))]
