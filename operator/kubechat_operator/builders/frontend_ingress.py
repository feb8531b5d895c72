"""A ChatFrontend's optional networking.k8s.io/v1 Ingress and the URL users reach it at (pure functions)."""

from __future__ import annotations

from kubechat_operator.builders.common import Manifest, metadata, workload_name
from kubechat_operator.spec import FrontendIngress, Resource


def build_ingress(owner: Resource, component: str, ingress: FrontendIngress) -> Manifest:
    """An Ingress routing the host (every host without one) to the frontend Service's http port,
    TLS-terminated with the named Secret when tls is set. The whole host: the page's links are absolute,
    so it cannot live under a path prefix. The port is referenced by name, so a spec.service.port change
    leaves the Ingress alone."""
    rule: Manifest = {
        "http": {
            "paths": [
                {
                    "path": "/",
                    "pathType": "Prefix",
                    "backend": {"service": {"name": workload_name(owner), "port": {"name": "http"}}},
                }
            ]
        }
    }
    if ingress.host:
        rule["host"] = ingress.host
    spec: Manifest = {"rules": [rule]}
    if ingress.class_name:
        spec["ingressClassName"] = ingress.class_name
    if ingress.tls:
        spec["tls"] = [{"hosts": [ingress.host], "secretName": ingress.tls.secret_name}]
    manifest: Manifest = {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "Ingress",
        "metadata": metadata(owner, workload_name(owner), component),
        "spec": spec,
    }
    if ingress.annotations:
        manifest["metadata"]["annotations"] = dict(ingress.annotations)
    return manifest


def ingress_url(ingress: FrontendIngress, observed: Manifest | None) -> str:
    """The chat page's URL through the Ingress: its host (https with tls), else the address the Ingress
    controller published in the Ingress's status, else a placeholder until it does."""
    host = ingress.host
    if not host:
        published = ((observed or {}).get("status", {}).get("loadBalancer", {}).get("ingress") or [{}])[0]
        host = published.get("hostname") or published.get("ip")
    if not host:
        return "<pending ingress address>"
    return f"{'https' if ingress.tls else 'http'}://{host}/"
