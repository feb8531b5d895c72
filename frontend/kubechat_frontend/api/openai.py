"""The OpenAI-compatible pass-through, so API users of the model servers get keys, limits and logs too."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator

from flask import Blueprint, Response, jsonify

from kubechat_frontend.api import authenticate, json_body, meter_tokens
from kubechat_frontend.errors import ApiError
from kubechat_frontend.http_pool import TransportError
from kubechat_frontend.logs import log_fields
from kubechat_frontend.services import services

bp = Blueprint("openai", __name__, url_prefix="/v1")
bp.before_request(authenticate)


@bp.post("/chat/completions")
def chat_completions() -> Response:
    """Forward the request to the named model's server (the default one when `model` is absent)."""
    svc = services()
    meter_tokens()
    body = json_body()
    model = svc.models.resolve(body.get("model"))
    body["model"] = model
    log_fields().update(model=model, stream=bool(body.get("stream")))
    upstream = svc.models.open(model, json.dumps(body).encode())
    headers = {"Content-Type": upstream.headers.get("Content-Type", "application/json")}
    if not body.get("stream"):
        try:
            content = upstream.read()
        except TransportError as error:
            message = f"The model server broke off its answer ({type(error).__name__})."
            raise ApiError(502, message, "model_error") from error
        finally:
            upstream.close()
        return Response(content, status=upstream.status_code, headers=headers)

    def relay() -> Iterator[bytes]:
        try:
            yield from upstream.iter_raw()
        except TransportError as error:
            log_entry["stream_error"] = type(error).__name__
        finally:
            upstream.close()

    log_entry = log_fields()
    headers["Cache-Control"] = "no-cache"
    return Response(relay(), status=upstream.status_code, headers=headers)


@bp.get("/models")
def list_models() -> Response:
    names = services().models.names
    now = int(time.time())
    return jsonify(
        object="list",
        data=[{"id": n, "object": "model", "created": now, "owned_by": "kubechat"} for n in names],
    )
