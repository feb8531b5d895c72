"""Checked fields of a gateway request body: a clear 400 naming the field, never a 500 on odd JSON."""

from __future__ import annotations

from typing import Any

from kubechat_frontend.errors import ApiError
from kubechat_frontend.text import clean_text


def text(payload: dict[str, Any], name: str, max_chars: int) -> str:
    value = payload.get(name)
    if not isinstance(value, str) or not value.strip():
        raise ApiError(400, f"{name} must be a non-empty string.", "invalid_field")
    if len(value) > max_chars:
        raise ApiError(413, f"{name} is longer than {max_chars} characters.", "field_too_long")
    return clean_text(value)


def boolean(payload: dict[str, Any], name: str, default: bool = False) -> bool:
    value = payload.get(name, default)
    if not isinstance(value, bool):
        raise ApiError(400, f"{name} must be true or false.", "invalid_field")
    return value
