"""kubechat's chat frontend and API gateway: the Flask service a ChatFrontend deploys."""

from __future__ import annotations

from typing import Any

__all__ = ["create_app"]


def __getattr__(name: str) -> Any:
    # Imported on first use, not with the package: `kubechat-frontend` must set PROMETHEUS_MULTIPROC_DIR
    # before the app's metrics module imports prometheus_client (which picks its mode at import).
    if name == "create_app":
        from kubechat_frontend.app import create_app

        return create_app
    raise AttributeError(name)
