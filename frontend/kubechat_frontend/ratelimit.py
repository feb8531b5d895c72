"""Per-caller request limits, counted in the shared store so that every replica enforces the same budget.

Why not Flask-Limiter: its storages are memory, Redis, Memcached and MongoDB; with the SQL stores (the
default SQLite, and PostgreSQL) it would count per worker process, so 2 workers x N replicas would let a
caller through 2N times the limit. One atomic upsert / INCR in the store the frontend already has is the
whole limiter (one fixed window), tested across replicas in tests/integration/frontend/test_fe_store.py.
"""

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
