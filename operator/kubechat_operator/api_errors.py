"""An apiserver refusal turned into a status reason and message: what `kubectl describe` should say."""

from __future__ import annotations

import json

from kubernetes.client.rest import ApiException

from kubechat_operator.status import Blocker

MESSAGE_LIMIT = 1000


def api_message(error: ApiException) -> str:
    """The apiserver's own message (a Status object's `message`), else the HTTP reason."""
    try:
        body = json.loads(error.body or "")
    except (TypeError, ValueError):
        body = None
    if isinstance(body, dict) and body.get("message"):
        return str(body["message"])
    return str(error.body or error.reason or f"HTTP {error.status}")


def api_error_blocker(error: ApiException, doing: str) -> Blocker:
    """Ready=False for a refused request. Refusals that need a person (invalid child, forbidden, quota) make
    the phase Failed; throttling and server errors, which pass by themselves, make it Degraded. Either way the
    reconcile is retried with the resource's exponential backoff."""
    status = error.status or 0
    message = api_message(error)
    if status in (400, 422):
        reason = "InvalidChild"
    elif status == 403:
        reason = "QuotaExceeded" if "exceeded quota" in message else "Forbidden"
    elif status == 409:
        reason = "Conflict"
    elif status == 429:
        reason = "TooManyRequests"
    elif status >= 500 or status == 0:
        reason = "ApiServerError"
    else:
        reason = "ApiError"
    transient = status == 429 or status >= 500 or status == 0
    return Blocker(
        reason,
        f"{doing}: HTTP {status}: {message}"[:MESSAGE_LIMIT],
        phase="Degraded" if transient else "Failed",
        api_error=True,
    )
