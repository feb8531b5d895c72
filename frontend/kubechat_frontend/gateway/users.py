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
    """Admin only: `{username, password, api_key?, token_budget?}` → 201 `{username, api_key, token_budget}`.
    An `api_key` may be given (to bring keys users already hold, as the seed's own); otherwise a random one
    is made. Only its SHA-256 is stored, so the answer is the one time it is shown. `token_budget`: the
    user's model tokens per budget period (0: none; absent or null: the frontend's default)."""
    admin()
    payload = body()
    username = text(payload, "username", 64)
    password = text(payload, "password", 1024)
    if len(password) < MIN_PASSWORD_CHARS:
        raise ApiError(400, f"password must have at least {MIN_PASSWORD_CHARS} characters.", "weak_password")
    api_key = text(payload, "api_key", 256) if "api_key" in payload else secrets.token_urlsafe(32)
    budget = payload.get("token_budget")
    # bool is an int in Python: `true` is not a number of tokens.
    if budget is not None and (isinstance(budget, bool) or not isinstance(budget, int) or budget < 0):
        raise ApiError(400, "token_budget must be a whole number of tokens, 0 or more.", "invalid_field")
    user = User(username, hash_password(password), digest(api_key).hex(), token_budget=budget)
    try:
        services().store.create_user(user)
    except DuplicateError as error:
        raise ApiError(409, "A user with that name or key exists already.", "user_exists") from error
    response = jsonify(username=username, api_key=api_key, token_budget=budget)
    response.status_code = 201
    return response
