"""The application factory: ``create_app(config)`` builds the FastAPI app around one model service.

Configuration comes from defaults, then the environment (the ChatModel's ConfigMap), then the caller's
overrides. The model loads on a background thread when the app starts, so probes answer at once.
"""

from __future__ import annotations

import logging
import time
from contextlib import asynccontextmanager

from fastapi import FastAPI

from kubechat_server.config import ServerConfig, config_from_env, validate
from kubechat_server.errors import APIError, error_response, install_error_handlers
from kubechat_server.metrics import ServerMetrics
from kubechat_server.progress import ConfigMapPatcher, ProgressReporter
from kubechat_server.routes import openai_api, ops, seed_api
from kubechat_server.service import ModelService

log = logging.getLogger("kubechat_server")

MAX_BODY_BYTES = 1 << 20


def make_reporter(config: ServerConfig) -> ProgressReporter:
    """A reporter that also patches the progress ConfigMap when one is configured."""
    patcher = None
    if config.progress_configmap:
        pod = config.pod_name or "unknown-pod"
        try:
            patcher = ConfigMapPatcher.in_cluster(config.progress_configmap, pod, config.pod_namespace)
        except (OSError, KeyError) as exc:
            log.warning("load progress will not reach the ConfigMap: %s", exc)
    return ProgressReporter(patcher)


class ServingMiddleware:
    """Counts requests and their latency per route (streams until their last byte); refuses bodies over
    ``max_body`` bytes with a 413, whether the client announced the size or sent chunks."""

    def __init__(self, app, metrics: ServerMetrics, max_body: int = MAX_BODY_BYTES):
        self.app, self.metrics, self.max_body = app, metrics, max_body

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        too_large = error_response(
            APIError(413, f"the request body is over {self.max_body} bytes", "request_too_large")
        )
        length = dict(scope.get("headers", [])).get(b"content-length", b"0")
        if length.isdigit() and int(length) > self.max_body:
            return await too_large(scope, receive, send)
        if scope["method"] in ("POST", "PUT", "PATCH"):
            # Read the (bounded) body first, so an endless chunked upload is cut off at the limit.
            body = bytearray()
            more = True
            while more:
                message = await receive()
                if message["type"] == "http.disconnect":
                    return None
                body += message.get("body", b"")
                more = message.get("more_body", False)
                if len(body) > self.max_body:
                    return await too_large(scope, receive, send)
            receive = _replay(bytes(body), receive)
        started = time.monotonic()
        status = {"code": 500}

        async def watch(message):
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, watch)
        finally:
            route = scope.get("route")
            endpoint = getattr(route, "path", "unmatched")
            self.metrics.requests.labels(endpoint=endpoint, status=str(status["code"])).inc()
            self.metrics.latency.labels(endpoint=endpoint).observe(time.monotonic() - started)


def _replay(body: bytes, receive):
    """An ASGI ``receive`` that hands the app the body read already, then the client's later messages."""
    sent = False

    async def replay():
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay


def create_app(config: ServerConfig | None = None, **overrides) -> FastAPI:
    """The server for ``config`` (default: from the environment), with ``overrides`` applied on top."""
    config = validate((config or config_from_env()).with_overrides(**overrides))
    metrics = ServerMetrics(config.model_name)
    service = ModelService(config, metrics, make_reporter(config))

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        service.start_loading()
        yield
        service.close()

    app = FastAPI(
        title="kubechat model server",
        version="0.1.0",
        description="Serves one GODEL or Llama-2 style model: the seeds' API and the OpenAI API.",
        lifespan=lifespan,
    )
    app.state.service = service
    install_error_handlers(app)
    app.include_router(ops.router)
    app.include_router(seed_api.router)
    app.include_router(openai_api.router)
    app.add_middleware(ServingMiddleware, metrics=metrics)
    return app
