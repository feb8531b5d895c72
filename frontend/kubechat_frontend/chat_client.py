"""The terminal client's side of the frontend's JSON API (`/api/chat/stream`, `/api/sessions/<id>`)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx

from kubechat_frontend.cluster_target import Target


class ChatError(Exception):
    """The frontend (or the apiserver in front of it) refused or failed; the message is meant for the user."""


class ChatClient:
    """The frontend's JSON API, streamed."""

    def __init__(self, target: Target, api_key: str = "", model: str = "", persona: str = "") -> None:
        # The key goes in X-API-Key, not Authorization: through the apiserver's service proxy, Authorization
        # carries the cluster credentials, and the apiserver removes it once it has authenticated the caller.
        headers = {**target.headers, **({"X-API-Key": api_key} if api_key else {})}
        self._http = httpx.Client(
            base_url=target.url.rstrip("/"),
            headers=headers,
            verify=target.verify,
            timeout=httpx.Timeout(300, connect=10),
        )
        self.model = model
        self.persona = persona
        self.session_id = ""

    def stream(self, message: str) -> Iterator[dict[str, Any]]:
        """The answer's events (`waking` while the model wakes, then `meta`, `delta`, `done`); `ChatError`
        for refusals and broken streams."""
        body: dict[str, Any] = {"message": message}
        if self.session_id:
            body["session_id"] = self.session_id
        else:
            body.update({k: v for k, v in (("model", self.model), ("persona", self.persona)) if v})
        try:
            with self._http.stream("POST", "/api/chat/stream", json=body) as response:
                if response.status_code >= 400:
                    response.read()
                    raise ChatError(describe_error(response))
                for line in response.iter_lines():
                    if not line.startswith("data:"):
                        continue
                    event = json.loads(line[5:])
                    if event["type"] == "error":
                        raise ChatError(event.get("message", "the answer broke off"))
                    if event["type"] == "meta":
                        self.session_id = event["session_id"]
                    yield event
        except httpx.HTTPError as error:
            raise ChatError(f"cannot reach {self._http.base_url}: {error}") from error

    def end(self) -> None:
        """End (delete) the current conversation on the server."""
        if self.session_id:
            response = self._http.delete(f"/api/sessions/{self.session_id}")
            if response.status_code not in (204, 404):
                raise ChatError(describe_error(response))
            self.session_id = ""

    def close(self) -> None:
        self._http.close()


def describe_error(response: httpx.Response) -> str:
    """The frontend's JSON error message, or the apiserver's Status message (its proxy's own refusals)."""
    try:
        body = response.json()
        message = body["error"]["message"] if "error" in body else body["message"]
    except (ValueError, KeyError, TypeError):
        message = response.text[:200] or response.reason_phrase
    retry = response.headers.get("Retry-After")
    return f"{message} (HTTP {response.status_code}{f', retry after {retry} s' if retry else ''})"
