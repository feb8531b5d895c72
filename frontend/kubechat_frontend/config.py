"""The frontend's settings: defaults, the ChatFrontend's environment (docs/contracts.md), then overrides."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from typing import Any

ENV_PREFIX = "KUBECHAT_FRONTEND_"

DEFAULTS: dict[str, Any] = {
    "MODELS": [],
    "PERSONAS": [],
    "TITLE": "kubechat",
    "GREETING": "Hello! How can I help you today?",
    "STORE": "sqlite:///kubechat-history.db",
    "STORE_PASSWORD": "",
    "RATE_LIMIT": 60,
    "API_KEYS_FILE": "",
    "ADMIN_KEY": "",
    "SECRET_KEY": "",
    "COOKIE_SECURE": True,
    "TRUSTED_PROXIES": 0,
    "MAX_REQUEST_BYTES": 64 * 1024,
    "MAX_MESSAGE_CHARS": 4000,
    "MAX_HISTORY_TURNS": 20,
    "UPSTREAM_TIMEOUT_S": 120.0,
    "READY_CACHE_S": 2.0,
    "RETENTION_DAYS": 0.0,
    "SAVE_RETRIES": 4,
    # Holding requests while a model wakes (kubechat_frontend.wake; docs/frontend.md).
    "WAKE_TIMEOUT_S": 180.0,
    "WAKE_MAX_WAITING": 32,
    "KUBE_API": "auto",
    "SA_DIR": "",
    "NAMESPACE": "",
    "TOKEN_BUDGET": 0,
    "TOKEN_BUDGET_PERIOD_S": 86400,
}

# Settings whose environment value is JSON or a number rather than a plain string.
_JSON = {"MODELS", "PERSONAS"}
_INT = {
    "SAVE_RETRIES",
    "TOKEN_BUDGET",
    "TOKEN_BUDGET_PERIOD_S",
    "RATE_LIMIT",
    "TRUSTED_PROXIES",
    "MAX_REQUEST_BYTES",
    "MAX_MESSAGE_CHARS",
    "MAX_HISTORY_TURNS",
    "WAKE_MAX_WAITING",
}
_FLOAT = {"UPSTREAM_TIMEOUT_S", "READY_CACHE_S", "RETENTION_DAYS", "WAKE_TIMEOUT_S"}
_BOOL = {"COOKIE_SECURE"}


def _parse(name: str, raw: str) -> Any:
    if name in _JSON:
        return json.loads(raw)
    if name in _INT:
        return int(raw)
    if name in _FLOAT:
        return float(raw)
    if name in _BOOL:
        return raw.strip().lower() in {"1", "true", "yes", "on"}
    return raw


def load_settings(
    overrides: Mapping[str, Any] | None = None, environ: Mapping[str, str] | None = None
) -> dict[str, Any]:
    """Settings keyed without the `KUBECHAT_FRONTEND_` prefix: defaults < environment < `overrides`."""
    environ = os.environ if environ is None else environ
    settings = dict(DEFAULTS)
    for name in DEFAULTS:
        raw = environ.get(ENV_PREFIX + name)
        if raw is not None and raw != "":
            settings[name] = _parse(name, raw)
    settings.update(overrides or {})
    settings["MODELS"] = normalise_models(settings["MODELS"])
    settings["PERSONAS"] = normalise_personas(settings["PERSONAS"])
    return settings


def normalise_models(models: list[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Validated model entries `{name, url, default}`; exactly one is the default (the first if none says)."""
    entries = []
    for model in models:
        if not model.get("name") or not model.get("url"):
            raise ValueError(f"each model needs a name and a url, got {dict(model)!r}")
        entries.append(
            {
                "name": str(model["name"]),
                "url": str(model["url"]).rstrip("/"),
                "default": bool(model.get("default")),
            }
        )
    if entries and not any(m["default"] for m in entries):
        entries[0]["default"] = True
    if sum(m["default"] for m in entries) > 1:
        raise ValueError("only one model may be the default")
    return entries


def normalise_personas(personas: list[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Validated persona entries `{name, character, world, scratchpad}` with unique names."""
    entries = []
    for persona in personas:
        if not persona.get("name"):
            raise ValueError(f"each persona needs a name, got {dict(persona)!r}")
        entries.append(
            {
                "name": str(persona["name"]),
                "character": str(persona.get("character", "")),
                "world": str(persona.get("world", "")),
                "scratchpad": bool(persona.get("scratchpad", False)),
            }
        )
    names = [p["name"] for p in entries]
    if len(names) != len(set(names)):
        raise ValueError("persona names must be unique")
    return entries
