"""Operator-wide settings that are not part of any custom resource (default images), read from env/flags."""

from __future__ import annotations

import os
from dataclasses import dataclass

DEFAULT_MODEL_SERVER_IMAGE = "kubechat/model-server:0.1.0"
DEFAULT_FRONTEND_IMAGE = "kubechat/frontend:0.1.0"


@dataclass(frozen=True)
class OperatorConfig:
    """Defaults the builders fall back on when a resource does not say."""

    model_server_image: str = DEFAULT_MODEL_SERVER_IMAGE
    frontend_image: str = DEFAULT_FRONTEND_IMAGE
    # Where the operator's own pods run ($POD_NAMESPACE in the chart); model NetworkPolicies admit them.
    # Empty when it runs outside the cluster, which NetworkPolicies do not govern anyway.
    operator_namespace: str = ""

    @classmethod
    def from_env(cls) -> OperatorConfig:
        """Read KUBECHAT_MODEL_SERVER_IMAGE / KUBECHAT_FRONTEND_IMAGE (the CLI flags set them) and
        POD_NAMESPACE."""
        return cls(
            model_server_image=os.environ.get("KUBECHAT_MODEL_SERVER_IMAGE") or DEFAULT_MODEL_SERVER_IMAGE,
            frontend_image=os.environ.get("KUBECHAT_FRONTEND_IMAGE") or DEFAULT_FRONTEND_IMAGE,
            operator_namespace=os.environ.get("POD_NAMESPACE", ""),
        )
