"""The ChatModels' status as the operator publishes it (docs/contracts.md), read from the apiserver, so that
the frontend can tell a user what a model that is not ready yet is doing (scaled to zero, scheduling,
downloading 41 %, loading, warming up).

In a pod the frontend reads it with its own service-account token: the operator gives each ChatFrontend a
ServiceAccount allowed only to get/list/watch ChatModels in its namespace. Outside a cluster (local runs) the
lookup is off unless `KUBE_API` names an apiserver; then the frontend knows only what the model server's
`/readyz` says.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx

log = logging.getLogger("kubechat_frontend")

IN_CLUSTER_SA_DIR = "/var/run/secrets/kubernetes.io/serviceaccount"
GROUP, VERSION, PLURAL = "kubechat.dev", "v1alpha1", "chatmodels"


# What `ChatModelStatus.get` answers for a ChatModel the apiserver says does not exist (deleted, or never
# made): requests held for it fail at once instead of waiting out the wake timeout.
DELETED: dict[str, Any] = {"deleted": True}


class ChatModelStatus:
    """GET one ChatModel's status; None (logged, once per kind of failure) when the apiserver cannot say,
    `DELETED` when it says there is no such ChatModel."""

    def __init__(self, api_url: str, sa_dir: str, namespace: str = "") -> None:
        self._sa_dir = Path(sa_dir)
        ca = self._sa_dir / "ca.crt"
        self.namespace = namespace or (self._sa_dir / "namespace").read_text().strip()
        self._http = httpx.Client(
            base_url=api_url.rstrip("/"), verify=str(ca) if ca.exists() else True, timeout=3.0
        )
        self._last_failure = ""

    @classmethod
    def from_settings(cls, settings: dict[str, Any]) -> ChatModelStatus | None:
        """`KUBE_API`: "auto" (in a pod: the in-cluster apiserver; elsewhere off), "off", or a URL."""
        api = settings["KUBE_API"]
        sa_dir = settings["SA_DIR"] or IN_CLUSTER_SA_DIR
        if api == "off":
            return None
        if api == "auto":
            host, port = os.environ.get("KUBERNETES_SERVICE_HOST"), os.environ.get("KUBERNETES_SERVICE_PORT")
            if not (host and port and Path(sa_dir, "token").exists()):
                return None
            api = f"https://{host}:{port}" if ":" not in host else f"https://[{host}]:{port}"
        return cls(api, sa_dir, settings["NAMESPACE"])

    def get(self, name: str) -> dict[str, Any] | None:
        path = f"/apis/{GROUP}/{VERSION}/namespaces/{quote(self.namespace)}/{PLURAL}/{quote(name)}"
        try:
            # Read per request: projected service-account tokens are rotated by the kubelet.
            token = (self._sa_dir / "token").read_text().strip()
            response = self._http.get(path, headers={"Authorization": f"Bearer {token}"})
            if _not_found(response, name):
                return DELETED
            response.raise_for_status()
            chatmodel = response.json()
        except (OSError, httpx.HTTPError, ValueError) as error:
            failure = f"{type(error).__name__}: {error}"
            if failure != self._last_failure:
                log.warning("cannot read ChatModel %s from the apiserver: %s", name, failure)
                self._last_failure = failure
            return None
        self._last_failure = ""
        return {"spec": chatmodel.get("spec") or {}, "status": chatmodel.get("status") or {}}

    def close(self) -> None:
        self._http.close()


def _not_found(response: httpx.Response, name: str) -> bool:
    """The apiserver's own NotFound Status for this ChatModel; not a 404 of something else on the way (a
    proxy's, or the apiserver's plain "404 page not found" when the CRD is not installed)."""
    if response.status_code != 404:
        return False
    try:
        status = response.json()
        return status.get("reason") == "NotFound" and (status.get("details") or {}).get("name") == name
    except (ValueError, AttributeError):
        return False
