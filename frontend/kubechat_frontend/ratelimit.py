"""Per-caller request limits, counted in the shared store so that every replica enforces the same budget."""

from __future__ import annotations

import math

from kubechat_frontend.errors import ApiError
from kubechat_frontend.store import Store

WINDOW_S = 60


def enforce(store: Store, caller: str, per_minute: int) -> None:
    """Count one request for `caller`; 429 with `Retry-After` once it is over `per_minute` (0 = no limit)."""
    if per_minute <= 0:
        return
    hit = store.hit(caller, WINDOW_S)
    if hit.count > per_minute:
        retry_after = max(1, math.ceil(hit.reset_in))
        raise ApiError(
            429,
            f"Rate limit of {per_minute} requests per minute reached; retry in {retry_after} s.",
            "rate_limited",
            retry_after=retry_after,
        )
