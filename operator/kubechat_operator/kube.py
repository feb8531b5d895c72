"""A thin, thread-safe REST layer over the official client's ApiClient for the few kinds the operator touches.

Raw JSON in and out (camelCase dicts, the same shape as the manifests the builders return), so that reads,
server-side applies and status patches need no per-kind generated API class.
"""

from __future__ import annotations

import json
import os
from typing import Any
from urllib.parse import quote

from kubernetes import client, config
from kubernetes.client.rest import ApiException

from kubechat_operator import API_VERSION

FIELD_MANAGER = "kubechat-operator"

PLURALS = {
    "ConfigMap": "configmaps",
    "Secret": "secrets",
    "Service": "services",
    "ServiceAccount": "serviceaccounts",
    "PersistentVolumeClaim": "persistentvolumeclaims",
    "Pod": "pods",
    "Event": "events",
    "Deployment": "deployments",
    "HorizontalPodAutoscaler": "horizontalpodautoscalers",
    "Role": "roles",
    "RoleBinding": "rolebindings",
    "ChatModel": "chatmodels",
    "ChatFrontend": "chatfrontends",
    "Lease": "leases",
    "PodDisruptionBudget": "poddisruptionbudgets",
    "NetworkPolicy": "networkpolicies",
    "Ingress": "ingresses",
}
API_VERSIONS = {
    "Deployment": "apps/v1",
    "HorizontalPodAutoscaler": "autoscaling/v2",
    "Role": "rbac.authorization.k8s.io/v1",
    "RoleBinding": "rbac.authorization.k8s.io/v1",
    "ChatModel": API_VERSION,
    "ChatFrontend": API_VERSION,
    "Lease": "coordination.k8s.io/v1",
    "PodDisruptionBudget": "policy/v1",
    "NetworkPolicy": "networking.k8s.io/v1",
    "Ingress": "networking.k8s.io/v1",
}

Manifest = dict[str, Any]


class Kube:
    """JSON requests against the apiserver the operator was configured for (kubeconfig or in-cluster)."""

    def __init__(self, api_client: client.ApiClient) -> None:
        self._api = api_client

    @classmethod
    def connect(cls, pool_size: int = 32) -> Kube:
        """Load in-cluster config if present, else the kubeconfig ($KUBECONFIG), and connect."""
        configuration = client.Configuration()
        try:
            config.load_incluster_config(client_configuration=configuration)
        except config.ConfigException:
            # $KUBECONFIG as it is now (the client reads it once, at import, for its default).
            config.load_kube_config(
                config_file=os.environ.get("KUBECONFIG"), client_configuration=configuration
            )
        # Handlers run in a thread pool; one pooled connection per thread avoids reconnects.
        configuration.connection_pool_maxsize = pool_size
        return cls(client.ApiClient(configuration))

    @staticmethod
    def path(kind: str, namespace: str, name: str | None = None, subresource: str | None = None) -> str:
        api_version = API_VERSIONS.get(kind, "v1")
        root = "/api/v1" if api_version == "v1" else f"/apis/{api_version}"
        path = f"{root}/namespaces/{quote(namespace)}/{PLURALS[kind]}"
        if name:
            path += f"/{quote(name)}"
        if subresource:
            path += f"/{subresource}"
        return path

    def request(
        self,
        method: str,
        path: str,
        body: Any = None,
        query: list[tuple[str, Any]] | None = None,
        content_type: str = "application/json",
    ) -> Manifest:
        """One request; the decoded JSON answer. Raises kubernetes' ApiException on HTTP errors."""
        method, url, headers, payload, _ = self._api.param_serialize(
            method,
            path,
            query_params=query or [],
            header_params={"Accept": "application/json", "Content-Type": content_type},
            body=body,
            auth_settings=["BearerToken"],
        )
        response = self._api.call_api(method, url, header_params=headers, body=payload)
        data = response.read()
        if not 200 <= response.status <= 299:
            raise ApiException(
                status=response.status, reason=response.reason, body=data.decode(errors="replace")
            )
        return json.loads(data) if data else {}

    def get(self, kind: str, namespace: str, name: str) -> Manifest | None:
        """The object, or None when it does not exist."""
        try:
            return self.request("GET", self.path(kind, namespace, name))
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise

    def list(
        self, kind: str, namespace: str, label_selector: str | None = None, field_selector: str | None = None
    ) -> list[Manifest]:
        query = [
            (k, v) for k, v in (("labelSelector", label_selector), ("fieldSelector", field_selector)) if v
        ]
        return self.request("GET", self.path(kind, namespace), query=query).get("items", [])

    def apply(self, manifest: Manifest) -> Manifest:
        """Server-side apply as the operator's field manager, taking back fields others edited."""
        meta = manifest["metadata"]
        return self.request(
            "PATCH",
            self.path(manifest["kind"], meta["namespace"], meta["name"]),
            body=manifest,
            query=[("fieldManager", FIELD_MANAGER), ("force", "true")],
            content_type="application/apply-patch+yaml",
        )

    def create(self, manifest: Manifest) -> Manifest:
        return self.request(
            "POST", self.path(manifest["kind"], manifest["metadata"]["namespace"]), body=manifest
        )

    def replace(self, manifest: Manifest) -> Manifest:
        """PUT: fails with 409 when metadata.resourceVersion is stale (optimistic concurrency)."""
        meta = manifest["metadata"]
        return self.request(
            "PUT", self.path(manifest["kind"], meta["namespace"], meta["name"]), body=manifest
        )

    def merge_patch(
        self, kind: str, namespace: str, name: str, patch: Manifest, subresource: str | None = None
    ) -> Manifest:
        return self.request(
            "PATCH",
            self.path(kind, namespace, name, subresource),
            body=patch,
            content_type="application/merge-patch+json",
        )

    def json_patch(self, kind: str, namespace: str, name: str, operations: list[Manifest]) -> Manifest:
        return self.request(
            "PATCH",
            self.path(kind, namespace, name),
            body=operations,
            query=[("fieldManager", FIELD_MANAGER)],
            content_type="application/json-patch+json",
        )

    def delete(self, kind: str, namespace: str, name: str) -> bool:
        """Delete (foreground for the children's pods is not needed); False when it was already gone."""
        try:
            self.request("DELETE", self.path(kind, namespace, name))
        except ApiException as exc:
            if exc.status == 404:
                return False
            raise
        return True

    def close(self) -> None:
        self._api.close()
