"""Prometheus metrics of one server (its own registry, so several apps in one process never clash).

Two families: kubechat's own (``kubechat_*``) and the names vLLM exports (``vllm:*``, labelled
``model_name``), which dashboards, KEDA scalers and the Gateway API inference extension already read.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

if TYPE_CHECKING:
    from kubechat_server.engine.requests import Finished, GenerationRequest

LATENCY_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120)
BATCH_BUCKETS = (1, 2, 4, 8, 12, 16, 24, 32, 48, 64)
# vLLM's own buckets for the time per output token.
TPOT_BUCKETS = (0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0)


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
        self.dropped = Counter(
            "kubechat_requests_dropped_total",
            "Generation requests answered without a prefill: cancelled or expired while queued",
            ["reason"],
            registry=self.registry,
        )
        for reason in ("cancelled", "expired"):  # exported at 0 from the start, so rate() sees the first one
            self.dropped.labels(reason=reason)
        self.info = Gauge("kubechat_model_info", "The served model", ["model"], registry=self.registry)
        self.info.labels(model=model).set(1)
        self.vllm = VllmMetrics(model, self.registry)

    def set_waiting(self, waiting: int) -> None:
        self.queue_depth.set(waiting)
        self.vllm.waiting.set(waiting)

    def set_running(self, running: int) -> None:
        self.vllm.running.set(running)

    def request_finished(self, request: GenerationRequest, finished: Finished) -> None:
        """Called once per generation request as it ends (on the engine thread)."""
        self.vllm.observe(request, finished)

    def render(self) -> bytes:
        return generate_latest(self.registry)


class VllmMetrics:
    """The vLLM metric names and shapes, all labelled with ``model_name``."""

    def __init__(self, model: str, registry: CollectorRegistry):
        label = {"model_name": model}

        def gauge(name: str, help_: str) -> Gauge:
            return Gauge(name, help_, ["model_name"], registry=registry).labels(**label)

        def histogram(name: str, help_: str, buckets) -> Histogram:
            return Histogram(name, help_, ["model_name"], buckets=buckets, registry=registry).labels(**label)

        def counter(name: str, help_: str) -> Counter:
            return Counter(name, help_, ["model_name"], registry=registry).labels(**label)

        self.running = gauge("vllm:num_requests_running", "Number of requests in model execution batches")
        self.waiting = gauge("vllm:num_requests_waiting", "Number of requests waiting to be processed")
        self.ttft = histogram(
            "vllm:time_to_first_token_seconds", "Histogram of time to first token in seconds", LATENCY_BUCKETS
        )
        self.tpot = histogram(
            "vllm:time_per_output_token_seconds",
            "Histogram of time per output token in seconds",
            TPOT_BUCKETS,
        )
        self.e2e = histogram(
            "vllm:e2e_request_latency_seconds",
            "Histogram of end to end request latency in seconds",
            LATENCY_BUCKETS,
        )
        self.prompt_tokens = counter("vllm:prompt_tokens", "Number of prefill tokens processed")
        self.generation_tokens = counter("vllm:generation_tokens", "Number of generation tokens processed")
        self._success = Counter(
            "vllm:request_success",
            "Count of successfully processed requests",
            ["model_name", "finished_reason"],
            registry=registry,
        )
        self._model = model
        for reason in ("stop", "length", "abort"):
            self._success.labels(model_name=model, finished_reason=reason)

    def observe(self, request: GenerationRequest, finished: Finished) -> None:
        now = time.monotonic()
        self.e2e.observe(now - request.submitted)
        self.prompt_tokens.inc(finished.prompt_tokens)
        self.generation_tokens.inc(finished.completion_tokens)
        if request.first_token_at is not None:
            self.ttft.observe(request.first_token_at - request.submitted)
            if finished.completion_tokens > 1:
                per_token = (now - request.first_token_at) / (finished.completion_tokens - 1)
                self.tpot.observe(per_token)
        # vLLM's reasons: stop, length, and abort for anything cut short (cancelled, timeout, error).
        reason = finished.reason if finished.reason in ("stop", "length") else "abort"
        self._success.labels(model_name=self._model, finished_reason=reason).inc()
