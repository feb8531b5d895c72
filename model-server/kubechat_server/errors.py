"""JSON errors in OpenAI's shape, ``{"error": {"message", "type", "param", "code"}}``, with the right status.

400 malformed or invalid (as OpenAI and vLLM answer, with the offending ``param`` named), 413 too large,
429/503 with ``Retry-After`` when the server cannot take the request now; a bad request never becomes a 500.
"""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from kubechat_server.engine.engine import EngineStoppedError, QueueFullError
from kubechat_server.engine.prompts import PromptError

log = logging.getLogger("kubechat_server.errors")


class APIError(Exception):
    """An error response; raise it anywhere in a route."""

    def __init__(
        self,
        status: int,
        message: str,
        code: str,
        type_: str = "invalid_request_error",
        retry_after: int | None = None,
        param: str | None = None,
    ):
        super().__init__(message)
        self.status, self.message, self.code, self.type = status, message, code, type_
        self.retry_after, self.param = retry_after, param


def error_body(message: str, type_: str, code: str, param: str | None = None) -> dict:
    return {"error": {"message": message, "type": type_, "param": param, "code": code}}


def error_response(error: APIError) -> JSONResponse:
    headers = {"Retry-After": str(error.retry_after)} if error.retry_after is not None else None
    body = error_body(error.message, error.type, error.code, error.param)
    return JSONResponse(body, error.status, headers=headers)


def not_ready(message: str = "the model is still loading") -> APIError:
    return APIError(503, message, "model_not_ready", "service_unavailable", retry_after=5)


def _validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
    errors = exc.errors()
    if any(e.get("type") == "json_invalid" for e in errors):
        return error_response(APIError(400, "the request body is not valid JSON", "malformed_json"))
    details = "; ".join(f"{_location(e) or 'body'}: {e['msg']}" for e in errors)
    param = _location(errors[0]) if errors else None
    return error_response(APIError(400, details or "invalid request", "invalid_parameters", param=param))


def _location(error: dict) -> str | None:
    """``messages.0.content`` for an error at body -> messages -> 0 -> content (None for the whole body)."""
    return ".".join(str(p) for p in error.get("loc", ())[1:]) or None


def install_error_handlers(app: FastAPI) -> None:
    """Map every failure a request can cause to the JSON error shape."""

    @app.exception_handler(APIError)
    async def api_error(request: Request, exc: APIError) -> JSONResponse:
        return error_response(exc)

    @app.exception_handler(PromptError)
    async def prompt_error(request: Request, exc: PromptError) -> JSONResponse:
        return error_response(APIError(400, str(exc), exc.code))

    @app.exception_handler(QueueFullError)
    async def queue_full(request: Request, exc: QueueFullError) -> JSONResponse:
        return error_response(APIError(429, str(exc), "queue_full", "rate_limit_error", retry_after=1))

    @app.exception_handler(EngineStoppedError)
    async def stopped(request: Request, exc: EngineStoppedError) -> JSONResponse:
        return error_response(APIError(503, str(exc), "shutting_down", "service_unavailable", retry_after=5))

    app.add_exception_handler(RequestValidationError, _validation_error)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        codes = {404: "not_found", 405: "method_not_allowed"}
        error = APIError(exc.status_code, str(exc.detail), codes.get(exc.status_code, "http_error"))
        return error_response(error)

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unexpected error on %s %s", request.method, request.url.path)
        return error_response(APIError(500, "internal error", "internal_error", "server_error"))
