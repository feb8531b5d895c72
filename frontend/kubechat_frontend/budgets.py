"""Token budgets per API key: model tokens per period, charged from the usage the model server reports.

Before a request, a key whose tokens of this period are used up is refused (429 with `Retry-After`, the
time until the period renews). After it, the tokens the model server reported (`usage.total_tokens`) are
added to the key's count. A streamed answer is asked for its usage (`stream_options.include_usage`); the
usage chunk that adds is taken out of the stream again when the client did not ask for it. The count is the
rate limits' atomic counter in the shared store (one fixed window per period, `tokens:<caller>`), so every
worker and replica charges one total. The request that crosses the budget completes (its size is known
only at its end); the next one is refused. An answer the client stops early is charged only if the model
server reported usage before the stop.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from flask import g, has_request_context

from kubechat_frontend.errors import ApiError
from kubechat_frontend.http_pool import UpstreamResponse, WholeBody
from kubechat_frontend.store import Store
from kubechat_frontend.upstream import ModelClient


@dataclass(frozen=True)
class TokenMeter:
    """Where one request's tokens are charged."""

    store: Store
    name: str
    period_s: int

    def charge(self, tokens: int) -> None:
        if tokens > 0:
            self.store.hit(self.name, self.period_s, tokens)


def period_words(period_s: int) -> str:
    for seconds, word in ((86400, "day"), (3600, "hour"), (60, "minute")):
        if period_s == seconds:
            return word
    return f"{period_s} s"


def enforce(store: Store, caller: str, budget: int | None, period_s: int) -> None:
    """Refuse `caller` (429) when its tokens this period reached `budget`; otherwise meter this request's
    model calls. No budget (None or 0): nothing is counted."""
    if not budget:
        return
    name = f"tokens:{caller}"
    used = store.hit(name, period_s, 0)
    if used.count >= budget:
        retry_after = max(1, math.ceil(used.reset_in))
        raise ApiError(
            429,
            f"Token budget of {budget} tokens per {period_words(period_s)} used up ({used.count} used); "
            f"it renews in {retry_after} s.",
            "token_budget_exceeded",
            retry_after=retry_after,
        )
    g.token_meter = TokenMeter(store, name, period_s)


class MeteredModelClient(ModelClient):
    """The model client, charging the request's token meter (if `enforce` set one) with each answer's usage.
    Every path to a model (page turns, the JSON API, the gateway, the OpenAI pass-through) goes through
    `open`, so this is the one place usage is read."""

    def open(self, model: str, body: dict[str, Any] | bytes, **kwargs: Any) -> UpstreamResponse:
        meter: TokenMeter | None = g.get("token_meter") if has_request_context() else None
        if meter is None:
            return super().open(model, body, **kwargs)
        request = json.loads(body) if isinstance(body, bytes) else dict(body)
        hide_usage = False
        options = request.get("stream_options") or {}
        if request.get("stream") and isinstance(options, dict):
            hide_usage = not options.get("include_usage")
            request["stream_options"] = {**options, "include_usage": True}
        response = super().open(model, request, **kwargs)
        return MeteredResponse(response, meter, hide_usage)  # type: ignore[return-value]


class MeteredResponse(WholeBody):
    """An `UpstreamResponse` that charges the reported usage as it is read (once)."""

    def __init__(self, response: UpstreamResponse, meter: TokenMeter, hide_usage: bool) -> None:
        self._response = response
        self._meter = meter
        self._hide_usage = hide_usage
        self._charged = False
        self.status_code = response.status_code
        self.headers = response.headers

    def _charge(self, usage: Any) -> None:
        if self._charged or not isinstance(usage, dict):
            return
        tokens = usage.get("total_tokens")
        if not isinstance(tokens, int):
            tokens = sum(
                v
                for k, v in usage.items()
                if k in {"prompt_tokens", "completion_tokens"} and isinstance(v, int)
            )
        self._charged = True
        self._meter.charge(tokens)

    def _usage_only(self, line: str) -> bool:
        """Charge a usage chunk's tokens; whether the line is a chunk that carries nothing but usage."""
        if not line.startswith("data:") or '"usage"' not in line:
            return False
        try:
            chunk = json.loads(line[5:])
        except ValueError:
            return False
        if not isinstance(chunk, dict) or not isinstance(chunk.get("usage"), dict):
            return False
        self._charge(chunk["usage"])
        return not chunk.get("choices")

    def iter_lines(self) -> Iterator[str]:
        for line in self._response.iter_lines():
            if self._usage_only(line) and self._hide_usage:
                continue
            yield line

    def iter_raw(self) -> Iterator[bytes]:
        # Line by line (not raw chunks), so that the usage chunk can be read, and left out if not asked for.
        for line in self.iter_lines():
            yield (line + "\n").encode()

    def read(self) -> bytes:
        body = self._response.read()
        try:
            completion = json.loads(body)
        except ValueError:
            return body
        if isinstance(completion, dict):
            self._charge(completion.get("usage"))
        return body

    def close(self) -> None:
        self._response.close()
