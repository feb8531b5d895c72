"""Pure functions: a ChatModel or ChatFrontend in, the manifests of its children out (no cluster)."""

from kubechat_operator.builders.chatfrontend import build_frontend_children
from kubechat_operator.builders.chatmodel import build_model_children

__all__ = ["build_frontend_children", "build_model_children"]
