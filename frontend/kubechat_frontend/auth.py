"""API keys from a mounted Secret file and admin key: kept as SHA-256 digests, compared in constant time."""

from __future__ import annotations

import hashlib
import hmac
import logging
import os
import threading
from dataclasses import dataclass
from pathlib import Path

from flask import Request

from kubechat_frontend.errors import ApiError

log = logging.getLogger("kubechat_frontend")


@dataclass(frozen=True)
class Identity:
    """Who is calling: `id` names an API key by a prefix of its digest (never the key), or `ip:<addr>`."""

    id: str
    admin: bool = False
    token_budget: int | None = None  # model tokens per budget period for this key; None = the default


def digest(key: str) -> bytes:
    return hashlib.sha256(key.encode()).digest()


def presented_key(request: Request) -> str | None:
    """The key in `Authorization: Bearer …` (what OpenAI clients send) or `X-API-Key`."""
    header = request.headers.get("Authorization", "")
    if header.lower().startswith("bearer "):
        return header[7:].strip()
    return request.headers.get("X-API-Key")


def parse_key_line(line: str) -> tuple[str, int | None] | None:
    """One line of the keys file: `KEY`, or `KEY TOKENS` giving that key its own token budget per period
    (`0`: no budget); None for blank lines and `#` comments."""
    fields = line.split()
    if not fields or fields[0].startswith("#"):
        return None
    if len(fields) == 1:
        return fields[0], None
    if len(fields) > 2 or not fields[1].isdigit():
        # Say which line without showing the key: a prefix of its digest, as the logs name keys.
        raise ValueError(
            f"keys file: key:{digest(fields[0]).hex()[:12]} must be followed by a token count only"
        )
    return fields[0], int(fields[1])


class KeyRing:
    """The keys a caller may present. Re-reads the keys file when it changes (a Secret update in the pod)."""

    def __init__(self, keys_file: str = "", admin_key: str = "") -> None:
        self._file = Path(keys_file) if keys_file else None
        self._admin = digest(admin_key) if admin_key else None
        self._digests: list[bytes] = []
        self._budgets: list[int | None] = []  # per key, in the order of `_digests`
        self._mtime: float | None = None
        self._lock = threading.Lock()
        self._reload()

    def _reload(self) -> None:
        if self._file is None:
            return
        mtime = os.stat(self._file).st_mtime
        if mtime == self._mtime:
            return
        try:
            parsed = [parse_key_line(line) for line in self._file.read_text().splitlines()]
        except ValueError as error:
            if self._mtime is None:
                raise  # at start: refuse to run with a keys file that says something else than meant
            log.error("%s; keeping the keys read before", error)  # an edit gone wrong locks nobody out
            self._mtime = mtime
            return
        entries = [entry for entry in parsed if entry is not None]
        with self._lock:
            self._digests = [digest(key) for key, _ in entries]
            self._budgets = [budget for _, budget in entries]
            self._mtime = mtime

    def is_admin(self, key: str) -> bool:
        """Whether `key` is the admin key (compared in constant time)."""
        return self._admin is not None and hmac.compare_digest(digest(key), self._admin)

    @property
    def required(self) -> bool:
        """Keys are required once any key is configured; without any, the API is open (per-IP limits)."""
        return self._file is not None or self._admin is not None

    def identify(self, key: str | None, remote_addr: str) -> Identity:
        """The caller's identity; 401 without a key where one is required, 403 for a wrong one."""
        if not key:
            if self.required:
                raise ApiError(
                    401, "An API key is required (Authorization: Bearer <key>).", "missing_api_key"
                )
            return Identity(f"ip:{remote_addr}")
        self._reload()
        presented = digest(key)
        if self._admin is not None and hmac.compare_digest(presented, self._admin):
            return Identity("admin", admin=True)
        with self._lock:
            entries = list(zip(self._digests, self._budgets, strict=True))
        # Compare against every key without stopping early, so timing says nothing about which one matched.
        matched, budget = False, None
        for known, known_budget in entries:
            if hmac.compare_digest(presented, known):
                matched, budget = True, known_budget
        if not matched:
            raise ApiError(403, "The API key is not valid.", "invalid_api_key")
        return Identity("key:" + presented.hex()[:12], token_budget=budget)
