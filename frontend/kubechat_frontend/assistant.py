"""The VirtualAssistant seed's API: `POST /` with a plain-text question answers in plain text.

Each question stands alone (the seed keeps nothing between requests); it goes to the default model as it
is configured (its ChatModel's prompt and persona). Callers are identified and limited as API callers are
(a key when keys are configured, else per client IP).
"""

from __future__ import annotations

from flask import Blueprint, Response, request

from kubechat_frontend import conversations, ratelimit
from kubechat_frontend.auth import presented_key
from kubechat_frontend.errors import ApiError
from kubechat_frontend.logs import log_fields
from kubechat_frontend.scratchpad import without_scratchpad
from kubechat_frontend.services import services
from kubechat_frontend.upstream import Delta, Origin

bp = Blueprint("assistant", __name__)


@bp.post("/")
def ask() -> Response:
    svc = services()
    identity = svc.keys.identify(presented_key(request), request.remote_addr or "")
    log_fields()["caller"] = identity.id
    if not identity.admin:
        ratelimit.enforce(svc.store, identity.id, svc.settings["RATE_LIMIT"])
    if request.mimetype != "text/plain":
        raise ApiError(415, "Send the question as text: Content-Type: text/plain.", "unsupported_media_type")
    question = conversations.validate_message(
        request.get_data(as_text=True), svc.settings["MAX_MESSAGE_CHARS"]
    )
    model = svc.models.resolve(None)
    stream = svc.models.chat(model, [{"role": "user", "content": question}], stream=False)
    parts = []
    try:
        for event in stream:
            if isinstance(event, Origin):
                log_fields().update(pod=event.pod, node=event.node, model=event.model)
            elif isinstance(event, Delta):
                parts.append(event.text)
    finally:
        stream.close()
    return Response(without_scratchpad("".join(parts)) + "\n", mimetype="text/plain")
