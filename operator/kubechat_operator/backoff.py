"""Per-resource exponential backoff, the shape of controller-runtime's per-item rate limiter.

Kept here (20 lines) rather than taken from a retry library: those retry one call in place, while a reconcile
must be rescheduled on the work queue (other resources keep being served), with the failure count kept
between attempts and dropped on the first success.
"""

from __future__ import annotations

from collections.abc import Hashable


class Backoff:
    """Delays base, 2·base, 4·base … up to cap for consecutive failures of one key."""

    def __init__(self, base_s: float, cap_s: float) -> None:
        self.base_s, self.cap_s = base_s, cap_s
        self._failures: dict[Hashable, int] = {}

    def next_delay(self, key: Hashable) -> float:
        """Count one more failure of key; the delay before its next attempt."""
        failures = self._failures.get(key, 0)
        self._failures[key] = failures + 1
        return min(self.cap_s, self.base_s * 2 ** min(failures, 32))

    def reset(self, key: Hashable) -> None:
        """key succeeded: its next failure starts from base again."""
        self._failures.pop(key, None)
