"""Liveness and readiness: ready when the store answers and the default model passes its readiness check."""

from __future__ import annotations

import logging
import time

from flask import Blueprint, Response, jsonify

from kubechat_frontend.services import services

bp = Blueprint("health", __name__)
log = logging.getLogger("kubechat_frontend")


@bp.get("/health")
def health() -> Response:
    return jsonify(status="ok")


def _check() -> tuple[bool, dict]:
    svc = services()
    detail: dict = {"models": {}}
    try:
        svc.store.ping()
        detail["store"] = "ok"
    except Exception as error:  # any driver error means not ready; the log says which, not anonymous callers
        log.warning("readiness: store unavailable: %s: %s", type(error).__name__, error)
        detail["store"] = "unavailable"
    for name in svc.models.names:
        ok, why = svc.models.ready(name)
        detail["models"][name] = "ready" if ok else why
    ready = detail["store"] == "ok" and detail["models"].get(svc.models.default) == "ready"
    return ready, detail


@bp.get("/readyz")
def readyz() -> Response:
    # Probes from kubelets and load balancers arrive often; ask the model servers at most every few seconds.
    svc = services()
    with svc.readiness_lock:
        if svc.readiness is None or time.monotonic() - svc.readiness[0] > svc.settings["READY_CACHE_S"]:
            svc.readiness = (time.monotonic(), *_check())
        _, ready, detail = svc.readiness
    response = jsonify(ready=ready, **detail)
    response.status_code = 200 if ready else 503
    return response
