"""ChatModel → ConfigMap, progress ConfigMap, RBAC, Deployment, Service, HPA and PVC (pure functions)."""

from __future__ import annotations

import json
import math

from kubechat_operator.builders.common import (
    CHECKSUM_ANNOTATION,
    HTTP_PORT,
    Manifest,
    config_checksum,
    container_security_context,
    downward_env,
    env_config_map,
    horizontal_pod_autoscaler,
    http_get,
    merge_env,
    metadata,
    pod_security_context,
    resource_block,
    secret_env,
    selector_labels,
    service,
)
from kubechat_operator.config import OperatorConfig
from kubechat_operator.spec import ChatModelSpec, ModelResources, Resource

COMPONENT = "model-server"
CACHE_DIR = "/cache"
MODELS_DIR = "/models"
STARTUP_PROBE_PERIOD_S = 10


def config_map_name(name: str) -> str:
    return f"{name}-config"


def progress_config_map_name(name: str) -> str:
    return f"{name}-progress"


def service_account_name(name: str) -> str:
    return f"{name}-model-server"


def cache_claim_name(name: str) -> str:
    return f"{name}-cache"


def model_endpoint(name: str, namespace: str) -> str:
    """The in-cluster URL of a ChatModel's Service."""
    return f"http://{name}.{namespace}.svc:{HTTP_PORT}"


def model_path(spec: ChatModelSpec) -> str:
    """What the server loads: the Hub id, or for pvc://claim/path the path where the claim is mounted."""
    pvc = spec.model.pvc
    return f"{MODELS_DIR}/{pvc[0]}/{pvc[1]}".rstrip("/") if pvc else spec.model.id


def cpu_threads(resources: ModelResources) -> int | None:
    """Threads for the engine: the CPU request (else limit) rounded up. torch and llama.cpp would size
    their pools to the node's cores, and that many threads on a few CPUs' quota crawl (issue 14)."""
    cpu = resources.requests.cpu or resources.limits.cpu
    if cpu is None:
        return None
    text = str(cpu)
    cores = int(text[:-1]) / 1000 if text.endswith("m") else float(text)
    return max(1, math.ceil(cores))


def server_env(owner: Resource, spec: ChatModelSpec) -> dict[str, str]:
    """The model server's configuration as env vars (docs/contracts.md), the data of <name>-config."""
    env = {
        "KUBECHAT_MODEL_ID": model_path(spec),
        "KUBECHAT_SERVED_MODEL_NAME": owner.name,
        "KUBECHAT_ARCHITECTURE": spec.model.architecture,
        "KUBECHAT_PROMPT_FORMAT": spec.model.prompt_format,
        "KUBECHAT_INSTRUCTION": spec.prompt.instruction,
        "KUBECHAT_STOP": json.dumps(spec.generation.stop),
        "KUBECHAT_MAX_BATCH_SIZE": str(spec.serving.max_batch_size),
        "KUBECHAT_MAX_QUEUE_DELAY_MS": str(spec.serving.max_queue_delay_ms),
        "KUBECHAT_MAX_QUEUE": str(spec.serving.max_queue),
        "KUBECHAT_MAX_INPUT_TOKENS": str(spec.serving.max_input_tokens),
        "KUBECHAT_REQUEST_TIMEOUT_S": str(spec.serving.request_timeout_seconds),
        "KUBECHAT_PORT": str(HTTP_PORT),
        "KUBECHAT_PROGRESS_CONFIGMAP": progress_config_map_name(owner.name),
    }
    if spec.model.revision:
        env["KUBECHAT_MODEL_REVISION"] = spec.model.revision
    env["KUBECHAT_ENGINE"] = spec.engine
    threads = cpu_threads(spec.resources)
    if threads:
        env["KUBECHAT_TORCH_THREADS"] = str(threads)
    if spec.prompt.knowledge_from is None:
        env["KUBECHAT_KNOWLEDGE"] = spec.prompt.knowledge
    if spec.prompt.persona is not None:
        env["KUBECHAT_PERSONA_CHARACTER"] = spec.prompt.persona.character
        env["KUBECHAT_PERSONA_WORLD"] = spec.prompt.persona.world
        env["KUBECHAT_PERSONA_SCRATCHPAD"] = str(spec.prompt.persona.scratchpad).lower()
    generation = spec.generation
    for key, value in (
        ("KUBECHAT_MAX_NEW_TOKENS", generation.max_new_tokens),
        ("KUBECHAT_TEMPERATURE", generation.temperature),
        ("KUBECHAT_TOP_P", generation.top_p),
    ):
        if value is not None:
            env[key] = str(value)
    if generation.do_sample is not None:
        env["KUBECHAT_DO_SAMPLE"] = str(generation.do_sample).lower()
    return env


def build_progress_config_map(owner: Resource) -> Manifest:
    """The ConfigMap the pods merge-patch with their load progress; we own its metadata, not its data."""
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": metadata(owner, progress_config_map_name(owner.name), COMPONENT),
    }


def build_service_account(owner: Resource) -> Manifest:
    return {
        "apiVersion": "v1",
        "kind": "ServiceAccount",
        "metadata": metadata(owner, service_account_name(owner.name), COMPONENT),
    }


def build_role(owner: Resource) -> Manifest:
    """Lets the model pods read and patch their progress ConfigMap and nothing else."""
    return {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "Role",
        "metadata": metadata(owner, service_account_name(owner.name), COMPONENT),
        "rules": [
            {
                "apiGroups": [""],
                "resources": ["configmaps"],
                "resourceNames": [progress_config_map_name(owner.name)],
                "verbs": ["get", "patch"],
            }
        ],
    }


def build_role_binding(owner: Resource) -> Manifest:
    name = service_account_name(owner.name)
    return {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "RoleBinding",
        "metadata": metadata(owner, name, COMPONENT),
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": name},
        "subjects": [{"kind": "ServiceAccount", "name": name, "namespace": owner.namespace}],
    }


def build_cache_claim(owner: Resource, spec: ChatModelSpec) -> Manifest | None:
    """The weight-cache PVC, or None when the ChatModel asks for none (an emptyDir is used then)."""
    if spec.cache is None:
        return None
    claim: Manifest = {
        "accessModes": [spec.cache.access_mode],
        "resources": {"requests": {"storage": str(spec.cache.size)}},
    }
    if spec.cache.storage_class_name:
        claim["storageClassName"] = spec.cache.storage_class_name
    return {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": metadata(owner, cache_claim_name(owner.name), COMPONENT),
        "spec": claim,
    }


def _volumes(owner: Resource, spec: ChatModelSpec) -> tuple[list[Manifest], list[Manifest]]:
    """Pod volumes and container mounts: writable /tmp and /cache, and the read-only model claim if any."""
    cache_source: Manifest = (
        {"persistentVolumeClaim": {"claimName": cache_claim_name(owner.name)}}
        if spec.cache
        else {"emptyDir": {}}
    )
    volumes = [{"name": "tmp", "emptyDir": {}}, {"name": "cache", **cache_source}]
    mounts = [{"name": "tmp", "mountPath": "/tmp"}, {"name": "cache", "mountPath": CACHE_DIR}]
    pvc = spec.model.pvc
    if pvc:
        volumes.append({"name": "model", "persistentVolumeClaim": {"claimName": pvc[0], "readOnly": True}})
        mounts.append({"name": "model", "mountPath": f"{MODELS_DIR}/{pvc[0]}", "readOnly": True})
    return volumes, mounts


def _container_env(spec: ChatModelSpec) -> list[Manifest]:
    env = [*downward_env(), {"name": "HF_HOME", "value": CACHE_DIR}]
    if spec.model.token_secret_ref:
        env.append(secret_env("HF_TOKEN", spec.model.token_secret_ref.name, spec.model.token_secret_ref.key))
    if spec.prompt.knowledge_from:
        ref = spec.prompt.knowledge_from.config_map_key_ref
        env.append(
            {
                "name": "KUBECHAT_KNOWLEDGE",
                "valueFrom": {"configMapKeyRef": {"name": ref.name, "key": ref.key}},
            }
        )
    return merge_env(env, spec.env)


def _tolerations(spec: ChatModelSpec) -> list[Manifest]:
    """The user's tolerations plus one for the usual taint on GPU nodes (key = the GPU resource name)."""
    tolerations = list(spec.tolerations)
    gpu = spec.resources.gpu
    if gpu.count > 0 and not any(t.get("key") == gpu.resource_name for t in tolerations):
        tolerations.append({"key": gpu.resource_name, "operator": "Exists", "effect": "NoSchedule"})
    return tolerations


def build_deployment(owner: Resource, spec: ChatModelSpec, config: OperatorConfig) -> Manifest:
    """The model-server Deployment.

    The pod template carries a checksum of the rendered config, so prompt or generation changes roll the pods
    while a replica change (outside the template) does not.
    """
    gpu = spec.resources.gpu
    extended = {gpu.resource_name: str(gpu.count)} if gpu.count > 0 else None
    volumes, mounts = _volumes(owner, spec)
    container: Manifest = {
        "name": COMPONENT,
        "image": spec.image or config.model_server_image,
        "imagePullPolicy": spec.image_pull_policy,
        "ports": [{"name": "http", "containerPort": HTTP_PORT, "protocol": "TCP"}],
        "envFrom": [{"configMapRef": {"name": config_map_name(owner.name)}}],
        "env": _container_env(spec),
        "resources": resource_block(spec.resources.requests, spec.resources.limits, extended),
        "startupProbe": http_get(
            "/health",
            STARTUP_PROBE_PERIOD_S,
            max(1, math.ceil(spec.startup_budget_seconds / STARTUP_PROBE_PERIOD_S)),
        ),
        "livenessProbe": http_get("/health", 10, 3),
        "readinessProbe": http_get("/readyz", 5, 3),
        "securityContext": container_security_context(),
        "volumeMounts": mounts,
    }
    pod: Manifest = {
        "serviceAccountName": service_account_name(owner.name),
        "securityContext": pod_security_context(),
        "containers": [container],
        "volumes": volumes,
        "terminationGracePeriodSeconds": 30,
    }
    optional = {
        "nodeSelector": spec.node_selector or None,
        "tolerations": _tolerations(spec) or None,
        "affinity": spec.affinity,
        "runtimeClassName": spec.runtime_class_name,
        "priorityClassName": spec.priority_class_name,
        "imagePullSecrets": [{"name": s.name} for s in spec.image_pull_secrets] or None,
    }
    pod.update({k: v for k, v in optional.items() if v is not None})
    # A GPU pod cannot surge: the extra pod would wait for a free GPU. Replace pods one at a time instead.
    strategy = {"maxSurge": 0, "maxUnavailable": 1} if gpu.count > 0 else {"maxSurge": 1, "maxUnavailable": 0}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": metadata(owner, owner.name, COMPONENT),
        "spec": {
            "replicas": spec.replicas,
            "selector": {"matchLabels": selector_labels(owner, COMPONENT)},
            "strategy": {"type": "RollingUpdate", "rollingUpdate": strategy},
            "template": {
                "metadata": {
                    "labels": metadata(owner, owner.name, COMPONENT)["labels"],
                    "annotations": {
                        **spec.pod_annotations,
                        CHECKSUM_ANNOTATION: config_checksum(server_env(owner, spec)),
                    },
                },
                "spec": pod,
            },
        },
    }


def build_model_children(owner: Resource, spec: ChatModelSpec, config: OperatorConfig) -> list[Manifest]:
    """Every child of a ChatModel, in the order they should be applied (config and RBAC before the pods)."""
    children = [
        env_config_map(owner, config_map_name(owner.name), COMPONENT, server_env(owner, spec)),
        build_progress_config_map(owner),
        build_service_account(owner),
        build_role(owner),
        build_role_binding(owner),
        build_cache_claim(owner, spec),
        build_deployment(owner, spec, config),
        service(owner, COMPONENT, HTTP_PORT),
        horizontal_pod_autoscaler(owner, COMPONENT, spec.autoscaling) if spec.autoscaling else None,
    ]
    return [child for child in children if child is not None]
