"""kubechat's chat frontend and API gateway: the Flask service a ChatFrontend deploys."""

from kubechat_frontend.app import create_app

__all__ = ["create_app"]
