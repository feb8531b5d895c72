"""API keys from a mounted Secret file and admin key: kept as SHA-256 digests, compared in constant time."""

from __future__ import annotations

import hashlib
import hmac
import os
import threading
from dataclasses import dataclass
from pathlib import Path

from flask import Request

from kubechat_frontend.errors import ApiError


@dataclass(frozen=True)
class Identity:
    """Who is calling: `id` names an API key by a prefix of its digest (never the key), or `ip:<addr>`."""

    id: str
    admin: bool = False


def digest(key: str) -> bytes:
    return hashlib.sha256(key.encode()).digest()


def presented_key(request: Request) -> str | None:
    """The key in `Authorization: Bearer …` (what OpenAI clients send) or `X-API-Key`."""
    header = request.headers.get("Authorization", "")
    if header.lower().startswith("bearer "):
        return header[7:].strip()
    return request.headers.get("X-API-Key")


class KeyRing:
    """The keys a caller may present. Re-reads the keys file when it changes (a Secret update in the pod)."""

    def __init__(self, keys_file: str = "", admin_key: str = "") -> None:
        self._file = Path(keys_file) if keys_file else None
        self._admin = digest(admin_key) if admin_key else None
        self._digests: list[bytes] = []
        self._mtime: float | None = None
        self._lock = threading.Lock()
        self._reload()

    def _reload(self) -> None:
        if self._file is None:
            return
        mtime = os.stat(self._file).st_mtime
        if mtime == self._mtime:
            return
        keys = [line.strip() for line in self._file.read_text().splitlines()]
        with self._lock:
            self._digests = [digest(k) for k in keys if k and not k.startswith("#")]
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
            digests = list(self._digests)
        # Compare against every key without stopping early, so timing says nothing about which one matched.
        matched = False
        for known in digests:
            matched |= hmac.compare_digest(presented, known)
        if not matched:
            raise ApiError(403, "The API key is not valid.", "invalid_api_key")
        return Identity("key:" + presented.hex()[:12])
