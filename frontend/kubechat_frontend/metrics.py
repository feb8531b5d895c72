"""Prometheus metrics at `/metrics`: requests by route and status, open answer streams, requests waiting for
a model to wake, the model server's time per turn and the time to the first piece of an answer as the user
sees it.

gunicorn runs several worker processes; each writes its samples to files in `PROMETHEUS_MULTIPROC_DIR`
(made by `kubechat-frontend` at start, on the pod's /tmp) and `/metrics` adds them up, so any worker
answers for the whole pod. Without that directory (tests, one process) the process's own registry is used.
"""

from __future__ import annotations

import os

from flask import Blueprint, Response
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)

bp = Blueprint("metrics", __name__)

REQUESTS = Counter(
    "kubechat_frontend_requests_total", "Requests answered, by route and status.", ["route", "code"]
)
OPEN_STREAMS = Gauge(
    "kubechat_frontend_open_streams", "Answers streaming to clients right now.", multiprocess_mode="livesum"
)
# Requests held while their model wakes (kubechat_frontend.wake), summed over the pod's live workers: the
# operator's autoscaler scrapes it and scales a ChatModel at zero up when it is above 0.
WAITING = Gauge(
    "kubechat_frontend_waiting_requests",
    "Requests waiting for their model to have a ready replica, by ChatModel.",
    ["model"],
    multiprocess_mode="livesum",
)
UPSTREAM = Histogram(
    "kubechat_frontend_upstream_seconds",
    "The model server's time per turn, from request to last byte.",
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120),
)
FIRST_TOKEN = Histogram(
    "kubechat_frontend_time_to_first_token_seconds",
    "From starting a turn to the first piece of the answer sent to the client.",
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)


@bp.get("/metrics")
def metrics() -> Response:
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
    else:
        registry = REGISTRY
    return Response(generate_latest(registry), mimetype=CONTENT_TYPE_LATEST)
