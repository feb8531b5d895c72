"""ChatModel → ConfigMap, progress ConfigMap, RBAC, Deployment, Service, HPA, PVC, PodDisruptionBudget and
NetworkPolicy (pure functions)."""

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
    pod_placement,
    pod_security_context,
    resource_block,
    role_binding,
    secret_env,
    selector_labels,
    service,
    workload_name,
)
from kubechat_operator.config import OperatorConfig
from kubechat_operator.spec import ChatModelSpec, ModelAutoscaling, ModelResources, Resource

COMPONENT = "model-server"
CACHE_DIR = "/cache"
MODELS_DIR = "/models"
STARTUP_PROBE_PERIOD_S = 10
# A terminating pod: the preStop pause lets kube-proxy and the frontends' connection pools drop the pod
# before SIGTERM; then the server drains (KUBECHAT_DRAIN_SECONDS of 503 on readiness, then in-flight requests
# up to their timeout). The grace period covers all of it plus a margin, so no chat is cut by SIGKILL.
PRE_STOP_S = 5
DRAIN_S = 5
GRACE_MARGIN_S = 10
# The rollout's progress deadline beyond the startup budget: scheduling and an image pull come first.
PROGRESS_DEADLINE_MARGIN_S = 600
OPERATOR_POD_LABELS = {"app.kubernetes.io/name": "kubechat", "app.kubernetes.io/component": "operator"}
# Label on frontend pods naming each ChatModel they may call: models.kubechat.dev/<model>: "true".
MODEL_CLIENT_LABEL_PREFIX = "models.kubechat.dev/"


def config_map_name(name: str) -> str:
    return f"{name}-config"


def progress_config_map_name(name: str) -> str:
    return f"{name}-progress"


def service_account_name(name: str) -> str:
    return f"{name}-model-server"


def cache_claim_name(name: str) -> str:
    return f"{name}-cache"


def model_client_label(model: str) -> str:
    """The pod label (value "true") that lets a pod through the model's NetworkPolicy."""
    return MODEL_CLIENT_LABEL_PREFIX + model


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
        "KUBECHAT_DRAIN_SECONDS": str(DRAIN_S),
        "KUBECHAT_PORT": str(HTTP_PORT),
        "KUBECHAT_PROGRESS_CONFIGMAP": progress_config_map_name(owner.name),
    }
    if spec.model.revision:
        env["KUBECHAT_MODEL_REVISION"] = spec.model.revision
    if spec.model.file:
        env["KUBECHAT_MODEL_FILE"] = spec.model.file
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
        ("KUBECHAT_TOP_K", generation.top_k),
        ("KUBECHAT_MIN_NEW_TOKENS", generation.min_new_tokens),
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
    return role_binding(owner, service_account_name(owner.name), COMPONENT)


def shared_cache(spec: ChatModelSpec) -> bool:
    """Whether the replicas share one cache claim: only a ReadWriteMany one can be mounted on every node."""
    return spec.cache is not None and spec.cache.access_mode == "ReadWriteMany"


def _claim_spec(spec: ChatModelSpec) -> Manifest:
    assert spec.cache is not None
    claim: Manifest = {
        "accessModes": [spec.cache.access_mode],
        "resources": {"requests": {"storage": str(spec.cache.size)}},
    }
    if spec.cache.storage_class_name:
        claim["storageClassName"] = spec.cache.storage_class_name
    return claim


def build_cache_claim(owner: Resource, spec: ChatModelSpec) -> Manifest | None:
    """The shared weight-cache PVC (ReadWriteMany caches only), else None."""
    if not shared_cache(spec):
        return None
    return {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": metadata(owner, cache_claim_name(owner.name), COMPONENT),
        "spec": _claim_spec(spec),
    }


def _cache_volume(owner: Resource, spec: ChatModelSpec) -> Manifest:
    """The /cache volume: the shared claim (ReadWriteMany); a claim per pod (ReadWriteOnce, ReadWriteOncePod:
    a generic ephemeral volume, kept across container restarts and deleted with its pod), since a one-node
    claim shared by replicas on several nodes hangs them in Multi-Attach; else an emptyDir."""
    if spec.cache is None:
        return {"emptyDir": {}}
    if shared_cache(spec):
        return {"persistentVolumeClaim": {"claimName": cache_claim_name(owner.name)}}
    return {
        "ephemeral": {
            "volumeClaimTemplate": {
                "metadata": {"labels": selector_labels(owner, COMPONENT)},
                "spec": _claim_spec(spec),
            }
        }
    }


def _volumes(owner: Resource, spec: ChatModelSpec) -> tuple[list[Manifest], list[Manifest]]:
    """Pod volumes and container mounts: writable /tmp and /cache, and the read-only model claim if any."""
    volumes = [{"name": "tmp", "emptyDir": {}}, {"name": "cache", **_cache_volume(owner, spec)}]
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


def termination_grace_seconds(spec: ChatModelSpec) -> int:
    """Long enough for the preStop pause, the drain and the longest request, so no chat is cut."""
    return PRE_STOP_S + DRAIN_S + spec.serving.request_timeout_seconds + GRACE_MARGIN_S


def rolling_update(spec: ChatModelSpec) -> Manifest:
    """Keep serving through a rollout. One replica: surge a new pod first (a GPU model waits for a free GPU
    while the old pod serves). Several GPU replicas: replace one at a time (no spare GPU is assumed; the
    others serve). CPU replicas surge."""
    if spec.resources.gpu.count > 0 and spec.replicas > 1:
        return {"maxSurge": 0, "maxUnavailable": 1}
    return {"maxSurge": 1, "maxUnavailable": 0}


def build_pod_disruption_budget(owner: Resource, spec: ChatModelSpec) -> Manifest | None:
    """At most one model pod evicted at a time (node drains, cluster upgrades) when there are several.

    One replica gets none: a budget of zero evictions would block every node drain forever. Unhealthy pods
    may always be evicted, so a crash-looping pod does not block a drain either."""
    if spec.replicas <= 1 and (spec.autoscaling is None or spec.autoscaling.max_replicas <= 1):
        return None
    return {
        "apiVersion": "policy/v1",
        "kind": "PodDisruptionBudget",
        "metadata": metadata(owner, workload_name(owner), COMPONENT),
        "spec": {
            "maxUnavailable": 1,
            "selector": {"matchLabels": selector_labels(owner, COMPONENT)},
            "unhealthyPodEvictionPolicy": "AlwaysAllow",
        },
    }


def build_network_policy(owner: Resource, spec: ChatModelSpec, config: OperatorConfig) -> Manifest | None:
    """Only the ChatFrontends that offer this model (their pods carry model_client_label) and the operator may
    reach the model pods; anyone else would bypass the frontends' keys and rate limits. Opt out with
    spec.networkPolicy.enabled: false."""
    if not spec.network_policy.enabled:
        return None
    peers: list[Manifest] = [{"podSelector": {"matchLabels": {model_client_label(owner.name): "true"}}}]
    if config.operator_namespace:
        peers.append(
            {
                "namespaceSelector": {
                    "matchLabels": {"kubernetes.io/metadata.name": config.operator_namespace}
                },
                # The chart's operator pods (kubechat.selectorLabels): the request autoscaler reads the
                # model pods' /metrics on this port.
                "podSelector": {"matchLabels": OPERATOR_POD_LABELS},
            }
        )
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": metadata(owner, workload_name(owner), COMPONENT),
        "spec": {
            "podSelector": {"matchLabels": selector_labels(owner, COMPONENT)},
            "policyTypes": ["Ingress"],
            "ingress": [{"from": peers, "ports": [{"protocol": "TCP", "port": HTTP_PORT}]}],
        },
    }


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
        "lifecycle": {"preStop": {"sleep": {"seconds": PRE_STOP_S}}},
    }
    pod: Manifest = {
        "serviceAccountName": service_account_name(owner.name),
        "securityContext": pod_security_context(),
        "containers": [container],
        "volumes": volumes,
        "terminationGracePeriodSeconds": termination_grace_seconds(spec),
    }
    pod.update(pod_placement(owner, COMPONENT, spec, _tolerations(spec)))
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": metadata(owner, owner.name, COMPONENT),
        "spec": {
            "replicas": spec.replicas,
            "selector": {"matchLabels": selector_labels(owner, COMPONENT)},
            "strategy": {"type": "RollingUpdate", "rollingUpdate": rolling_update(spec)},
            # A rollout is stuck only once a new pod had its whole startup budget (a 45-minute download is
            # progress, not a failure; the default 600 s would report it Degraded at minute 10).
            "progressDeadlineSeconds": spec.startup_budget_seconds + PROGRESS_DEADLINE_MARGIN_S,
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


def build_cpu_autoscaler(owner: Resource, autoscaling: ModelAutoscaling) -> Manifest:
    """The HPA of metric cpu. The ChatModel's stabilisation windows become its behavior, so they mean the same
    with either metric (the request autoscaler applies them itself)."""
    behavior = {
        "scaleUp": {"stabilizationWindowSeconds": autoscaling.scale_up_stabilization_seconds},
        "scaleDown": {"stabilizationWindowSeconds": autoscaling.scale_down_stabilization_seconds},
    }
    return horizontal_pod_autoscaler(owner, COMPONENT, autoscaling, behavior)


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
        # metric requests: the operator scales (autoscaler.py) and a leftover CPU HPA is pruned.
        build_cpu_autoscaler(owner, spec.autoscaling)
        if spec.autoscaling and not spec.scales_on_requests
        else None,
        build_pod_disruption_budget(owner, spec),
        build_network_policy(owner, spec, config),
    ]
    return [child for child in children if child is not None]


def optional_model_children(owner: Resource) -> list[tuple[str, str]]:
    """(kind, name) of the children only some specs ask for; the ones not asked for are pruned."""
    return [
        ("HorizontalPodAutoscaler", workload_name(owner)),
        ("PersistentVolumeClaim", cache_claim_name(owner.name)),
        ("PodDisruptionBudget", workload_name(owner)),
        ("NetworkPolicy", workload_name(owner)),
    ]
