"""The application factory: settings from defaults, then the ChatFrontend's environment, then `config`."""

from __future__ import annotations

import logging
import secrets
from datetime import timedelta
from typing import Any

from flask import Flask
from flask_wtf.csrf import CSRFProtect
from werkzeug.middleware.proxy_fix import ProxyFix

from kubechat_frontend import errors, health, logs, metrics, security, wake
from kubechat_frontend.api import bp as api_bp
from kubechat_frontend.api.openai import bp as openai_bp
from kubechat_frontend.assistant import bp as assistant_bp
from kubechat_frontend.auth import KeyRing
from kubechat_frontend.budgets import MeteredModelClient
from kubechat_frontend.chat import bp as chat_bp
from kubechat_frontend.config import load_settings
from kubechat_frontend.gateway import bp as gateway_bp
from kubechat_frontend.gateway import users  # noqa: F401 - adds POST /users/ to the gateway blueprint
from kubechat_frontend.services import Services
from kubechat_frontend.store import open_store

csrf = CSRFProtect()
log = logging.getLogger("kubechat_frontend")


def create_app(config: dict[str, Any] | None = None) -> Flask:
    """Build the frontend. `config` overrides settings by their names without the `KUBECHAT_FRONTEND_` prefix
    (`{"STORE": "sqlite:///…", "MODELS": [...]}`)."""
    settings = load_settings(config)
    app = Flask(__name__)
    logs.configure_logging()

    secret_key = settings["SECRET_KEY"]
    if not secret_key:
        # Sessions then last as long as this process and work on one replica only; say so loudly.
        log.warning("KUBECHAT_FRONTEND_SECRET_KEY is not set; using a random key for this process")
        secret_key = secrets.token_hex(32)
    app.config.update(
        SECRET_KEY=secret_key,
        MAX_CONTENT_LENGTH=settings["MAX_REQUEST_BYTES"],
        SESSION_COOKIE_NAME="kubechat_session",
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        SESSION_COOKIE_SECURE=settings["COOKIE_SECURE"],
        PERMANENT_SESSION_LIFETIME=timedelta(days=30),
        WTF_CSRF_TIME_LIMIT=None,  # the token lives as long as the session; a tab left open still works
        WTF_CSRF_SSL_STRICT=settings["COOKIE_SECURE"],
    )
    if settings["TRUSTED_PROXIES"]:
        app.wsgi_app = ProxyFix(
            app.wsgi_app, x_for=settings["TRUSTED_PROXIES"], x_proto=settings["TRUSTED_PROXIES"]
        )

    keys = KeyRing(settings["API_KEYS_FILE"], settings["ADMIN_KEY"])
    if not keys.required:
        log.warning("no API keys configured: the API is open to anyone, limited per IP")
    models = MeteredModelClient(settings["MODELS"], settings["UPSTREAM_TIMEOUT_S"])
    models.waiting_room = wake.waiting_room(settings, models)
    services = Services(
        settings=settings,
        store=open_store(settings["STORE"], settings["STORE_PASSWORD"], settings["RETENTION_DAYS"]),
        models=models,
        keys=keys,
    )
    app.extensions["kubechat"] = services

    logs.init_app(app)  # first, so its before_request hook runs before the CSRF check can refuse a request
    csrf.init_app(app)
    errors.init_app(app)
    security.init_app(app)
    app.register_blueprint(chat_bp)
    app.register_blueprint(api_bp)
    app.register_blueprint(openai_bp)
    app.register_blueprint(gateway_bp)
    app.register_blueprint(assistant_bp)
    app.register_blueprint(health.bp)
    app.register_blueprint(metrics.bp)
    # Programs authenticate with keys, not cookies, so CSRF does not apply to them.
    csrf.exempt(api_bp)
    csrf.exempt(openai_bp)
    csrf.exempt(gateway_bp)
    csrf.exempt(assistant_bp)  # no cookie is read: a cross-site post gains nothing a direct one lacks
    return app
