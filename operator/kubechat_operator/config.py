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
    # The request autoscaler's round (KUBECHAT_AUTOSCALE_INTERVAL, --autoscale-interval).
    autoscale_interval_s: float = 5.0
    # Tests only (autoscaler_scrape.PodAddresses): a JSON file of pod -> host:port to scrape instead.
    scrape_addresses_file: str = ""

    @classmethod
    def from_env(cls) -> OperatorConfig:
        """Read KUBECHAT_MODEL_SERVER_IMAGE / KUBECHAT_FRONTEND_IMAGE / KUBECHAT_AUTOSCALE_INTERVAL (the CLI
        flags set them), POD_NAMESPACE and KUBECHAT_SCRAPE_ADDRESSES."""
        return cls(
            model_server_image=os.environ.get("KUBECHAT_MODEL_SERVER_IMAGE") or DEFAULT_MODEL_SERVER_IMAGE,
            frontend_image=os.environ.get("KUBECHAT_FRONTEND_IMAGE") or DEFAULT_FRONTEND_IMAGE,
            operator_namespace=os.environ.get("POD_NAMESPACE", ""),
            autoscale_interval_s=float(os.environ.get("KUBECHAT_AUTOSCALE_INTERVAL") or 5.0),
            scrape_addresses_file=os.environ.get("KUBECHAT_SCRAPE_ADDRESSES", ""),
        )
