"""Probes, metrics and shutdown.

``/health`` is liveness (the process answers); ``/healthz`` and ``/readyz`` are readiness: 200 only once the
model answered its warm-up request, 503 while loading, after a failed load and while draining, always
with the load progress of docs/contracts.md under ``load``.
"""

from __future__ import annotations

import hmac
import os
import signal

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response

from kubechat_server.errors import APIError, error_body
from kubechat_server.service import ModelService

router = APIRouter(tags=["ops"])


def _service(http: Request) -> ModelService:
    return http.app.state.service


@router.get("/")
async def root() -> dict:
    """The Llama-2 seed's "is the server up" check."""
    return {"status": "Server is running"}


@router.get("/health")
async def health(http: Request) -> JSONResponse:
    """Liveness: the process answers (the model may still be loading); 503 once the engine failed, so that
    the kubelet restarts the pod."""
    service = _service(http)
    if service.fault:
        body = error_body(f"the engine failed: {service.fault}", "service_unavailable", "engine_fault")
        return JSONResponse({"status": "failed", **service.identity(), **body}, status_code=503)
    return JSONResponse({"status": "ok", **service.identity()})


def _readiness(http: Request) -> JSONResponse:
    service = _service(http)
    body = {**service.identity(), "load": service.reporter.current.to_json()}
    if service.is_ready:
        body.update(status="ready", **service.loaded.device_facts(), promptFormat=service.prompt_format.name)
        return JSONResponse(body)
    if service.fault:
        status, message = "faulted", f"the engine failed: {service.fault}"
    elif service.draining:
        status, message = "draining", "the server is shutting down"
    elif service.failure:
        status, message = "failed", f"the model failed to load: {service.failure}"
    else:
        status, message = "loading", "the model is still loading"
    body.update(status=status, **error_body(message, "service_unavailable", f"model_{status}"))
    return JSONResponse(body, status_code=503, headers={"Retry-After": "5"})


@router.get("/healthz")
async def healthz(http: Request) -> JSONResponse:
    """Readiness, device and GPU facts, load progress (the Llama-2 seed's name)."""
    return _readiness(http)


@router.get("/readyz")
async def readyz(http: Request) -> JSONResponse:
    """Readiness (the Kubernetes habit's name); same as ``/healthz``."""
    return _readiness(http)


@router.get("/metrics")
async def metrics(http: Request) -> Response:
    """Prometheus metrics."""
    service = _service(http)
    if service.engine is not None:
        service.metrics.set_waiting(service.engine.queue_depth)
    return Response(service.metrics.render(), media_type="text/plain; version=0.0.4; charset=utf-8")


@router.post("/shutdown", status_code=202)
async def shutdown(http: Request) -> dict:
    """Graceful drain then exit, like SIGTERM. Off unless an admin token is configured; needs that token."""
    token = _service(http).config.admin_token
    if not token:
        raise APIError(404, "shutdown is disabled: no admin token is configured", "not_found")
    given = http.headers.get("authorization", "").removeprefix("Bearer ").strip()
    given = given or http.headers.get("x-admin-token", "")
    if not hmac.compare_digest(given.encode(), token.encode()):
        raise APIError(403, "a valid admin token is required", "forbidden", "permission_error")
    # The same path as a pod's SIGTERM: the CLI's handler drains, then exits.
    os.kill(os.getpid(), signal.SIGTERM)
    return {"status": "draining"}
