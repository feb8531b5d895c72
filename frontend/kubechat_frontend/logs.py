"""Structured JSON request logs: one line per request, written when its response (or stream) ends.

Message bodies are never logged; only who asked, what, how it ended and how long it took.
"""

from __future__ import annotations

import json
import logging
import re
import sys
import time
import uuid
from typing import Any

from flask import Flask, Response, g, request

from kubechat_frontend import metrics

access_log = logging.getLogger("kubechat_frontend.access")

QUIET_PATHS = {"/health", "/readyz", "/favicon.ico", "/metrics"}


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry = {"ts": round(record.created, 3), "level": record.levelname.lower(), "logger": record.name}
        fields = getattr(record, "fields", None)
        if fields:
            entry.update(fields)
        else:
            entry["msg"] = record.getMessage()
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


def configure_logging() -> None:
    """JSON lines on stderr for the frontend's loggers (done once per process)."""
    logger = logging.getLogger("kubechat_frontend")
    if not any(getattr(h, "kubechat", False) for h in logger.handlers):
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(JsonFormatter())
        handler.kubechat = True  # type: ignore[attr-defined]
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)
        logger.propagate = False


_REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")


def request_id(presented: str) -> str:
    """The client's (or proxy's) X-Request-ID when it is a sane token, else a new one: it is echoed into logs
    and headers, so anything else (newlines, megabytes) is replaced, not trusted."""
    return presented if _REQUEST_ID.fullmatch(presented) else uuid.uuid4().hex


def log_fields() -> dict[str, Any]:
    """This request's log entry; views (and the streams they return) add fields such as `model`, `pod`."""
    return g.log_fields


def init_app(app: Flask) -> None:
    configure_logging()

    @app.before_request
    def _start() -> None:
        g.started = time.perf_counter()
        g.request_id = request_id(request.headers.get("X-Request-ID", ""))
        g.log_fields = {
            "method": request.method, "path": request.path, "ip": request.remote_addr,
            "request_id": g.request_id,
        }  # fmt: skip

    @app.after_request
    def _finish(response: Response) -> Response:
        if "request_id" in g:
            response.headers["X-Request-ID"] = g.request_id
        route = request.url_rule.rule if request.url_rule else "unmatched"
        metrics.REQUESTS.labels(route, str(response.status_code)).inc()
        if request.path in QUIET_PATHS or request.path.startswith("/static/"):
            return response  # probes and assets would drown the lines that matter
        if "log_fields" not in g:
            _start()  # an earlier before_request hook (the CSRF check) refused the request before ours ran
        fields, started = g.log_fields, g.started
        fields["status"] = response.status_code

        def write() -> None:
            fields["duration_ms"] = round((time.perf_counter() - started) * 1000, 2)
            access_log.info("request", extra={"fields": fields})

        # For a stream this runs when the last chunk has gone out, so the duration covers the whole answer.
        response.call_on_close(write)
        return response
