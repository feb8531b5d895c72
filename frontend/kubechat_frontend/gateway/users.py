"""Creating gateway users: the admin posts a username and password and gets the user's API key."""

from __future__ import annotations

import secrets

from flask import Response, jsonify

from kubechat_frontend.auth import digest
from kubechat_frontend.errors import ApiError
from kubechat_frontend.gateway import admin, body, bp
from kubechat_frontend.gateway.fields import text
from kubechat_frontend.passwords import hash_password
from kubechat_frontend.services import services
from kubechat_frontend.store import DuplicateError, User

MIN_PASSWORD_CHARS = 8


@bp.post("/users/")
def create_user() -> Response:
    """Admin only: `{username, password, api_key?}` → 201 `{username, api_key}`. An `api_key` may be given
    (to bring keys users already hold, as the seed's own); otherwise a random one is made. Only its SHA-256
    is stored, so the answer is the one time it is shown."""
    admin()
    payload = body()
    username = text(payload, "username", 64)
    password = text(payload, "password", 1024)
    if len(password) < MIN_PASSWORD_CHARS:
        raise ApiError(400, f"password must have at least {MIN_PASSWORD_CHARS} characters.", "weak_password")
    api_key = text(payload, "api_key", 256) if "api_key" in payload else secrets.token_urlsafe(32)
    try:
        services().store.create_user(User(username, hash_password(password), digest(api_key).hex()))
    except DuplicateError as error:
        raise ApiError(409, "A user with that name or key exists already.", "user_exists") from error
    response = jsonify(username=username, api_key=api_key)
    response.status_code = 201
    return response
