"""The services one app instance shares between requests, built once by `create_app`."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any

from flask import current_app

from kubechat_frontend.auth import KeyRing
from kubechat_frontend.store import Store
from kubechat_frontend.upstream import ModelClient


@dataclass
class Services:
    settings: dict[str, Any]
    store: Store
    models: ModelClient
    keys: KeyRing
    # The last readiness verdict (monotonic time, ready, detail), shared by the probes of this process.
    readiness: tuple[float, bool, dict[str, Any]] | None = None
    readiness_lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def personas(self) -> dict[str, dict[str, Any]]:
        return {p["name"]: p for p in self.settings["PERSONAS"]}

    def close(self) -> None:
        self.models.close()
        self.store.close()


def services() -> Services:
    """The current app's services."""
    return current_app.extensions["kubechat"]
