"""Prometheus metrics of one server (its own registry, so several apps in one process never clash)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

LATENCY_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120)
BATCH_BUCKETS = (1, 2, 4, 8, 12, 16, 24, 32, 48, 64)


class ServerMetrics:
    """Request count and latency, time to first token, generated tokens, queue depth, batch size."""

    def __init__(self, model: str):
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "kubechat_requests_total",
            "HTTP requests by endpoint and status code",
            ["endpoint", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "kubechat_request_latency_seconds",
            "Time from request to the last byte of the response",
            ["endpoint"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.ttft = Histogram(
            "kubechat_time_to_first_token_seconds",
            "Time from a generation request entering the queue to its first generated token",
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.generated_tokens = Counter(
            "kubechat_generated_tokens_total", "Tokens generated", registry=self.registry
        )
        self.prompt_tokens = Counter(
            "kubechat_prompt_tokens_total", "Prompt tokens processed", registry=self.registry
        )
        self.queue_depth = Gauge(
            "kubechat_queue_depth", "Generation requests waiting for a batch", registry=self.registry
        )
        self.batch_size = Histogram(
            "kubechat_batch_size",
            "Requests generated together in one batch",
            buckets=BATCH_BUCKETS,
            registry=self.registry,
        )
        self.info = Gauge("kubechat_model_info", "The served model", ["model"], registry=self.registry)
        self.info.labels(model=model).set(1)

    def render(self) -> bytes:
        return generate_latest(self.registry)
