"""Typed views of the ChatModel and ChatFrontend CRDs (crds/): handlers never dig through dicts.

Defaults repeat the CRDs' so a spec built in a unit test (no apiserver defaulting) means the same as one
read from the cluster.
"""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

Quantity = str | int


class _Spec(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="ignore", frozen=True)


class SecretKeyRef(_Spec):
    name: str
    key: str = "token"


class ApiKeysRef(SecretKeyRef):
    key: str = "keys"


class AdminKeyRef(SecretKeyRef):
    key: str = "admin-key"


class SessionSecretRef(SecretKeyRef):
    key: str = "secret-key"


class PasswordRef(SecretKeyRef):
    key: str = "password"


class ConfigMapKeyRef(_Spec):
    name: str
    key: str


class KnowledgeSource(_Spec):
    config_map_key_ref: ConfigMapKeyRef


class ModelSource(_Spec):
    id: str
    file: str | None = None
    revision: str | None = None
    architecture: Literal["auto", "seq2seq", "causal"] = "auto"
    prompt_format: Literal["auto", "godel", "llama-2", "chat-template", "plain"] = "auto"
    token_secret_ref: SecretKeyRef | None = None

    @property
    def pvc(self) -> tuple[str, str] | None:
        """(claim, path inside the claim) for a pvc://claim/path id, else None."""
        match = re.fullmatch(r"pvc://([^/]+)/?(.*)", self.id)
        return (match.group(1), match.group(2)) if match else None


class Persona(_Spec):
    character: str = ""
    world: str = ""
    scratchpad: bool = False


class Prompt(_Spec):
    instruction: str = ""
    knowledge: str = ""
    knowledge_from: KnowledgeSource | None = None
    persona: Persona | None = None


class Generation(_Spec):
    max_new_tokens: int | None = None
    temperature: float | None = None
    top_p: float | None = None
    top_k: int | None = None
    min_new_tokens: int | None = None
    do_sample: bool | None = None
    stop: list[str] = Field(default_factory=list)


class Gpu(_Spec):
    count: int = 0
    resource_name: str = "nvidia.com/gpu"


class CpuMemory(_Spec):
    cpu: Quantity | None = None
    memory: Quantity | None = None

    def as_dict(self) -> dict[str, str]:
        return {k: str(v) for k, v in (("cpu", self.cpu), ("memory", self.memory)) if v is not None}


class ModelResources(_Spec):
    gpu: Gpu = Gpu()
    requests: CpuMemory = CpuMemory()
    limits: CpuMemory = CpuMemory()


class Autoscaling(_Spec):
    min_replicas: int = 1
    max_replicas: int
    target_cpu_utilization_percentage: int = Field(default=70, alias="targetCPUUtilizationPercentage")


class ModelAutoscaling(Autoscaling):
    """A ChatModel's autoscaling: on requests (the operator's own loop, autoscaler.py) or on CPU (an HPA)."""

    metric: Literal["requests", "cpu"] = "requests"
    target_requests_per_replica: int | None = None
    scale_to_zero_after_seconds: int = 300
    scale_up_stabilization_seconds: int = 0
    scale_down_stabilization_seconds: int = 300


class Serving(_Spec):
    max_batch_size: int = 16
    max_queue_delay_ms: int = 10
    max_queue: int = 256
    max_input_tokens: int = 1024
    request_timeout_seconds: int = 120


class Cache(_Spec):
    size: Quantity
    storage_class_name: str | None = None
    access_mode: str = "ReadWriteOnce"


class NetworkPolicy(_Spec):
    enabled: bool = True


class LocalObjectReference(_Spec):
    name: str


class PodSettings(_Spec):
    """The pod settings a platform team sets on both kinds' pods: placement, pulling and extra env."""

    node_selector: dict[str, str] = Field(default_factory=dict)
    tolerations: list[dict[str, Any]] = Field(default_factory=list)
    affinity: dict[str, Any] | None = None
    topology_spread_constraints: list[dict[str, Any]] = Field(default_factory=list)
    runtime_class_name: str | None = None
    pod_annotations: dict[str, str] = Field(default_factory=dict)
    priority_class_name: str | None = None
    image: str | None = None
    image_pull_policy: str = "IfNotPresent"
    image_pull_secrets: list[LocalObjectReference] = Field(default_factory=list)
    env: list[dict[str, Any]] = Field(default_factory=list)


class ChatModelSpec(PodSettings):
    model: ModelSource
    prompt: Prompt = Prompt()
    generation: Generation = Generation()
    replicas: int = 1
    resources: ModelResources = ModelResources()
    autoscaling: ModelAutoscaling | None = None
    serving: Serving = Serving()
    cache: Cache | None = None
    network_policy: NetworkPolicy = NetworkPolicy()
    startup_budget: str = "30m"
    engine: Literal["auto", "transformers", "llama.cpp"] = "auto"

    @property
    def scales_on_requests(self) -> bool:
        """Whether the operator's request autoscaler (not an HPA) drives spec.replicas."""
        return self.autoscaling is not None and self.autoscaling.metric == "requests"

    @property
    def target_requests_per_replica(self) -> int:
        """In-flight + queued requests per pod to aim for: the spec's, else half a full batch (a pod keeps
        headroom for the minutes a new pod takes to load)."""
        explicit = self.autoscaling.target_requests_per_replica if self.autoscaling else None
        return explicit or max(1, self.serving.max_batch_size // 2)

    @property
    def startup_budget_seconds(self) -> int:
        """The startup budget ("1h30m", "45m", "90s") in seconds."""
        units = {"h": 3600, "m": 60, "s": 1}
        return sum(int(n) * units[u] for n, u in re.findall(r"(\d+)([hms])", self.startup_budget))


class ModelRef(_Spec):
    name: str
    default: bool = False


class FrontendPersona(_Spec):
    name: str
    character: str
    world: str = ""
    scratchpad: bool = False


class FrontendResources(_Spec):
    requests: CpuMemory = CpuMemory()
    limits: CpuMemory = CpuMemory()


class FrontendService(_Spec):
    type: Literal["ClusterIP", "NodePort", "LoadBalancer"] = "ClusterIP"
    port: int = 80
    node_port: int | None = None
    annotations: dict[str, str] = Field(default_factory=dict)


class IngressTls(_Spec):
    secret_name: str


class FrontendIngress(_Spec):
    enabled: bool = True
    class_name: str | None = None
    host: str | None = None
    annotations: dict[str, str] = Field(default_factory=dict)
    tls: IngressTls | None = None


class Store(_Spec):
    url: str = "sqlite:////data/history.db"
    password_secret_ref: PasswordRef | None = None
    volume: Literal["PersistentVolumeClaim", "EmptyDir"] = "PersistentVolumeClaim"  # SQLite's /data
    size: str = "1Gi"  # the SQLite history PVC
    storage_class_name: str | None = None
    retention_days: int = 0  # conversations idle longer are deleted; 0 keeps them


class RateLimit(_Spec):
    requests_per_minute: int = 60


class Wake(_Spec):
    """Holding requests while a model with no ready replica wakes (docs/frontend.md)."""

    timeout_seconds: int = 180
    max_waiting: int = 32


class TokenBudget(_Spec):
    """The default token budget per API key (docs/frontend.md, "Token budgets"); 0 tokens: none."""

    tokens: int = 0
    period_seconds: int = 86400


class ChatFrontendSpec(PodSettings):
    models: list[ModelRef]
    title: str = "kubechat"
    greeting: str = "Hello! How can I help you today?"
    secure_cookies: bool = True
    personas: list[FrontendPersona] = Field(default_factory=list)
    replicas: int = 1
    pod_labels: dict[str, str] = Field(default_factory=dict)
    resources: FrontendResources = FrontendResources()
    service: FrontendService = FrontendService()
    ingress: FrontendIngress | None = None
    store: Store = Store()
    api_keys_secret_ref: ApiKeysRef | None = None
    admin_key_secret_ref: AdminKeyRef | None = None
    secret_key_secret_ref: SessionSecretRef | None = None
    rate_limit: RateLimit = RateLimit()
    trusted_proxies: int | None = None
    autoscaling: Autoscaling | None = None
    wake: Wake = Wake()
    token_budget: TokenBudget = TokenBudget()

    @property
    def ingress_enabled(self) -> bool:
        return self.ingress is not None and self.ingress.enabled

    @property
    def proxy_hops(self) -> int:
        """Proxies whose X-Forwarded-For the frontend trusts: as set, else the Ingress controller's one hop
        when an Ingress is enabled (otherwise every user behind it would share one rate limit), else 0."""
        if self.trusted_proxies is not None:
            return self.trusted_proxies
        return 1 if self.ingress_enabled else 0

    @property
    def default_model(self) -> str:
        """The model a request that names none goes to: the one marked default, else the first."""
        return next((m.name for m in self.models if m.default), self.models[0].name)


class Resource(_Spec):
    """What a builder needs of a custom resource besides its spec: identity for names and ownerReferences."""

    api_version: str
    kind: str
    name: str
    namespace: str
    uid: str
    generation: int = 1

    @classmethod
    def from_body(cls, body: Any) -> Resource:
        meta = body["metadata"]
        return cls(
            api_version=body["apiVersion"],
            kind=body["kind"],
            name=meta["name"],
            namespace=meta["namespace"],
            uid=meta["uid"],
            generation=meta.get("generation", 1),
        )
