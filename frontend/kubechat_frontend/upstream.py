"""The client for the model servers' OpenAI-compatible API (`/v1/chat/completions`, streaming)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from flask import g, has_request_context

from kubechat_frontend.errors import ApiError
from kubechat_frontend.http_pool import ConnectFailed, ConnectionPool, TransportError, UpstreamResponse
from kubechat_frontend.text import clean_text
from kubechat_frontend.wake import NOT_READY_CODES, WaitingRoom


@dataclass(frozen=True)
class Delta:
    """A piece of the answer as the model generates it."""

    text: str


@dataclass(frozen=True)
class Origin:
    """Which pod and node answer (the `kubechat` field of the first chunk), for the page's badge."""

    pod: str
    node: str
    model: str


def unavailable(model: str, detail: str) -> ApiError:
    return ApiError(
        503,
        f"The model {model!r} cannot be reached right now ({detail}). "
        "Your conversation is safe; try again shortly.",
        "model_unavailable",
        retry_after=5,
    )


def model_removed(model: str) -> ApiError:
    """A conversation's model that this frontend no longer offers (taken out of the ChatFrontend)."""
    return ApiError(
        409,
        f"The model {model!r} of this conversation is no longer offered here; start a new chat.",
        "model_removed",
    )


def upstream_error(model: str, response: UpstreamResponse) -> ApiError:
    """The model server's error as the frontend's own, keeping its status and `Retry-After`."""
    try:
        detail = response.json()["error"]
        message, code = str(detail.get("message", "")), str(detail.get("code") or "model_error")
    except (ValueError, KeyError, TypeError, AttributeError):
        message, code = response.text[:200], "model_error"
    retry_after = response.headers.get("Retry-After")
    if response.status_code in (429, 503):
        message = f"The model {model!r} is loading or busy, please retry shortly. ({message})"
    status = response.status_code if 400 <= response.status_code < 600 else 502
    return ApiError(status, message, code, retry_after=int(float(retry_after)) if retry_after else None)


def _not_ready(response: UpstreamResponse) -> bool:
    """The model server has no model ready to answer (loading, draining); the request itself is fine."""
    if response.status_code != 503:
        return False
    try:
        return response.json()["error"]["code"] in NOT_READY_CODES
    except (ValueError, KeyError, TypeError):
        return False


def _drain(response: UpstreamResponse) -> None:
    """Read an error answer whole (its body is kept for `upstream_error`) and let its connection go."""
    try:
        response.read()
    finally:
        response.close()


def _origin(info: dict[str, Any] | None) -> Origin:
    info = info or {}
    return Origin(str(info.get("pod", "")), str(info.get("node", "")), str(info.get("model", "")))


class ChatStream:
    """An answer on its way; the request has already succeeded (errors so far were raised as `ApiError`).

    Iterate it for `Origin` (once, first) and `Delta` events; always `close()` it. A streamed answer comes
    as many deltas; a whole one (asked without streaming) as one.
    """

    def __init__(self, model: str, response: UpstreamResponse, streamed: bool) -> None:
        self._model = model
        self._response = response
        self._streamed = streamed

    def __iter__(self) -> Iterator[Delta | Origin]:
        try:
            yield from self._events() if self._streamed else self._whole()
        except TransportError as error:
            raise unavailable(self._model, f"the answer broke off: {type(error).__name__}") from error
        except (ValueError, KeyError, IndexError, TypeError) as error:
            raise ApiError(
                502, f"The model server's answer was malformed ({error}).", "model_error"
            ) from error

    def _whole(self) -> Iterator[Delta | Origin]:
        completion = self._response.json()
        yield _origin(completion.get("kubechat"))
        text = clean_text(completion["choices"][0]["message"].get("content") or "")
        if text:
            yield Delta(text)

    def _events(self) -> Iterator[Delta | Origin]:
        origin_sent = done = False
        for line in self._response.iter_lines():
            # After [DONE], read on to the end of the body: only a fully read response lets its
            # connection go back to the pool (a fresh connection per turn costs more than the rest).
            if done or not line.startswith("data:"):
                continue
            payload = line[5:].strip()
            if payload == "[DONE]":
                done = True
                continue
            chunk = json.loads(payload)
            if "error" in chunk:
                error = chunk["error"]
                raise ApiError(502, str(error.get("message", error)), str(error.get("code") or "model_error"))
            if not origin_sent:
                origin_sent = True
                yield _origin(chunk.get("kubechat"))
            for choice in chunk.get("choices", []):
                text = clean_text((choice.get("delta") or {}).get("content") or "")
                if text:
                    yield Delta(text)

    def close(self) -> None:
        self._response.close()


class ModelClient:
    """Talks to the ChatFrontend's model servers by name, over pooled keep-alive connections."""

    def __init__(self, models: list[dict[str, Any]], timeout_s: float) -> None:
        self._models = {m["name"]: m for m in models}
        self.default = next((m["name"] for m in models if m["default"]), "")
        self._pools = {m["name"]: ConnectionPool(m["url"], 5.0, timeout_s) for m in models}
        # Where requests wait for a model with no ready pod (kubechat_frontend.wake); None: they fail at once.
        self.waiting_room: WaitingRoom | None = None

    @property
    def names(self) -> list[str]:
        return list(self._models)

    def resolve(self, name: str | None) -> str:
        """The model's name (the default when `name` is empty); 400 for a model this frontend lacks."""
        name = name or self.default
        # Any JSON may arrive as the name (a list, an object): only a string can name a model.
        if not isinstance(name, str) or name not in self._models:
            offered = ", ".join(self._models) or "none configured"
            raise ApiError(400, f"Unknown model {name!r}; this frontend offers: {offered}.", "unknown_model")
        return name

    def open(
        self, model: str, body: dict[str, Any] | bytes, *, path: str = "/v1/chat/completions"
    ) -> UpstreamResponse:
        """POST to the model's server and return the streaming response once its status is known to be 2xx."""
        if model not in self._pools:
            raise model_removed(model)
        content = body if isinstance(body, bytes) else json.dumps(body).encode()
        # The caller's request id travels on, so one id finds the request in both services' logs.
        request_id = g.get("request_id", "") if has_request_context() else ""
        headers = {"X-Request-ID": request_id} if request_id else {}
        response = self._answer(model, path, content, headers)
        if response.status_code >= 400:
            raise upstream_error(model, response)
        return response

    def _answer(self, model: str, path: str, content: bytes, headers: dict[str, str]) -> UpstreamResponse:
        """The model server's answer; while the model has no ready pod, the request waits for one."""
        try:
            response = self._send(model, path, content, headers)
        except ConnectFailed as error:
            if self.waiting_room is None:
                raise unavailable(model, type(error).__name__) from error
        except TransportError as error:
            # Sent, then lost (a read timeout, a reset): asking again could double the work; say so.
            raise unavailable(model, type(error).__name__) from error
        else:
            if self.waiting_room is None or not _not_ready(response):
                return response
        # Nothing listens (no ready endpoint: scaled to zero), or only pods that are not ready answer: wait
        # for a ready one (503 when it takes too long), then ask again, once.
        self.waiting_room.wait(model)
        try:
            return self._send(model, path, content, headers)
        except TransportError as error:
            raise unavailable(model, type(error).__name__) from error

    def _send(self, model: str, path: str, content: bytes, headers: dict[str, str]) -> UpstreamResponse:
        """One POST; an error answer is read whole before it is returned."""
        pool = self._pools[model]
        response = pool.request("POST", path, content, headers)
        if response.status_code == 503 and response.reused:
            # A pod draining in a rollout or scale-down answers 503 on the kept-alive connections it still
            # holds, while its Service already sends new connections to a ready pod. Nothing of the answer
            # came yet: ask once more on a fresh connection, and drop the idle ones (they lead there too).
            _drain(response)
            pool.discard_idle()
            response = pool.request("POST", path, content, headers, fresh=True)
        if response.status_code >= 400:
            _drain(response)
        return response

    def chat(
        self,
        model: str,
        messages: list[dict[str, str]],
        persona: dict[str, Any] | None = None,
        *,
        stream: bool = True,
    ) -> ChatStream:
        """Start a chat completion, streamed unless a caller wants only the whole answer (one response
        instead of a wake-up per token); raises `ApiError` if the model refuses or cannot be reached."""
        body: dict[str, Any] = {"model": model, "messages": messages, "stream": stream}
        if persona:
            fields = ("character", "world", "scratchpad")
            body["kubechat"] = {"persona": {k: persona[k] for k in fields}}
        return ChatStream(model, self.open(model, body), streamed=stream)

    def ready(self, model: str) -> tuple[bool, str]:
        """Whether the model's server passes its own readiness check, and why not."""
        try:
            status, _ = self._pools[model].get("/readyz", timeout=2.0)
        except TransportError as error:
            return False, type(error).__name__
        return status == 200, f"readyz answered {status}"

    def readiness(self, model: str) -> tuple[bool, dict[str, Any] | None]:
        """Whether the model's server is ready, and its readiness answer (load progress); None when nothing
        answered. A model this frontend no longer offers is the 409 that names it, before anything waits."""
        pool = self._pools.get(model)
        if pool is None:
            raise model_removed(model)
        try:
            status, body = pool.get("/readyz", timeout=2.0)
        except TransportError:
            return False, None
        try:
            answer = json.loads(body)
        except ValueError:
            answer = None
        # kubechat's server answers 503 while it loads or drains; another OpenAI-compatible server may have no
        # /readyz at all (a 404): only "unavailable" answers mean "not ready"; such a server is not waited on.
        return status not in (502, 503, 504), answer if isinstance(answer, dict) else None

    def close(self) -> None:
        for pool in self._pools.values():
            pool.close()
        if self.waiting_room is not None:
            self.waiting_room.states.close()
