"""Errors the frontend answers with, in the model server's JSON shape `{"error": {message, type, code}}`."""

from __future__ import annotations

import logging
from typing import Any

import redis.exceptions
import sqlalchemy.exc
from flask import Flask, Response, jsonify
from flask_wtf.csrf import CSRFError
from werkzeug.exceptions import HTTPException

log = logging.getLogger("kubechat_frontend")

# A database that is restarting, unreachable or out of pooled connections: the request may simply be retried.
STORE_DOWN = (
    sqlalchemy.exc.OperationalError,
    sqlalchemy.exc.TimeoutError,
    redis.exceptions.ConnectionError,
    redis.exceptions.TimeoutError,
)


def store_unavailable() -> ApiError:
    return ApiError(
        503,
        "The history store cannot be reached right now. Your conversation is safe; try again shortly.",
        "store_unavailable",
        retry_after=5,
    )


class ApiError(Exception):
    """An error with an HTTP status that a client should see as is (and may retry after `retry_after`)."""

    def __init__(self, status: int, message: str, code: str, retry_after: int | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.code = code
        self.retry_after = retry_after

    def to_dict(self) -> dict[str, Any]:
        kind = "invalid_request_error" if self.status < 500 else "server_error"
        return {"error": {"message": self.message, "type": kind, "code": self.code}}


def error_response(error: ApiError) -> Response:
    response = jsonify(error.to_dict())
    response.status_code = error.status
    if error.retry_after is not None:
        response.headers["Retry-After"] = str(error.retry_after)
    return response


def init_app(app: Flask) -> None:
    """Answer every error as JSON: the page's script, the CLI and API clients all read the same shape."""

    @app.errorhandler(ApiError)
    def _api_error(error: ApiError) -> Response:
        return error_response(error)

    def _store_down(error: Exception) -> Response:
        # The driver's words (hosts, ports, user names) go to the log, not to the caller.
        log.error("history store unavailable: %s: %s", type(error).__name__, error)
        return error_response(store_unavailable())

    for kind in STORE_DOWN:
        app.register_error_handler(kind, _store_down)

    @app.errorhandler(CSRFError)
    def _csrf_error(error: CSRFError) -> Response:
        return error_response(ApiError(400, f"CSRF check failed: {error.description}", "csrf_failed"))

    @app.errorhandler(HTTPException)
    def _http_error(error: HTTPException) -> Response:
        code = (error.name or "error").lower().replace(" ", "_")
        return error_response(ApiError(error.code or 500, error.description or error.name, code))
