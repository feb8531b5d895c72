"""`kubechat chat NAME`: a ChatFrontend in the cluster reached through the kubeconfig, as kubectl would.

The request goes through the apiserver's service proxy
(`/api/v1/namespaces/NS/services/NAME-frontend:http/proxy/…`) with the kubeconfig's own credentials. Chosen
over a port-forward because it is plain HTTPS that httpx streams as it does a direct URL (a port-forward needs
a SPDY/WebSocket tunnel and a local listener), it needs no more RBAC than a port-forward does (`get` on
chatfrontends, `create`/`get` on `services/proxy`, both in the `edit` role, where port-forward needs
`pods/portforward`), and it keeps working while the frontend's pods roll (the apiserver picks a ready endpoint
per request; a port-forward is pinned to one pod).
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass, field
from urllib.parse import quote

GROUP, VERSION, PLURAL = "kubechat.dev", "v1alpha1", "chatfrontends"
SERVICE_SUFFIX = "-frontend"  # the operator's Service name: <ChatFrontend name>-frontend, port named http


class TargetError(Exception):
    """The kubeconfig or the cluster cannot lead to the named ChatFrontend; the message is for the user."""


@dataclass
class Target:
    """Where and how the chat client connects: a base URL, TLS settings and the cluster's headers."""

    url: str
    verify: ssl.SSLContext | bool = True
    headers: dict[str, str] = field(default_factory=dict)
    label: str = ""


def looks_like_url(target: str) -> bool:
    return target.startswith(("http://", "https://"))


def service_proxy_path(namespace: str, name: str) -> str:
    """The apiserver path that proxies to the ChatFrontend's Service, ending in a slash."""
    service = quote(f"{name}{SERVICE_SUFFIX}:http", safe=":")
    return f"/api/v1/namespaces/{quote(namespace, safe='')}/services/{service}/proxy/"


def resolve(name: str, namespace: str = "", kubeconfig: str = "", context: str = "") -> Target:
    """The Target for ChatFrontend `name`: checks that it exists (a clear error rather than the proxy's 404),
    then builds the service proxy URL and the TLS client settings from the kubeconfig."""
    # Imported here: only this command needs the Kubernetes client (the `cli` extra), not the frontend server.
    try:
        from kubernetes import client, config
        from kubernetes.config.config_exception import ConfigException
    except ImportError as error:
        raise TargetError(
            "kubechat chat NAME needs the kubernetes package: pip install 'kubechat[frontend,cli]'"
        ) from error

    configuration = client.Configuration()
    try:
        config.load_kube_config(
            config_file=kubeconfig or None, context=context or None, client_configuration=configuration
        )
        _contexts, active = config.list_kube_config_contexts(config_file=kubeconfig or None)
    except (ConfigException, OSError) as error:
        raise TargetError(f"cannot load the kubeconfig: {error}") from error
    if not namespace:
        chosen = context or active["name"]
        contexts = {c["name"]: c for c in _contexts}
        namespace = contexts.get(chosen, active)["context"].get("namespace") or "default"

    with client.ApiClient(configuration) as api:
        try:
            client.CustomObjectsApi(api).get_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, name)
        except client.ApiException as error:
            if error.status == 404:
                raise TargetError(f'no ChatFrontend "{name}" in namespace "{namespace}"') from error
            raise TargetError(f"the cluster refused to show ChatFrontend {name}: {error.reason}") from error
        except Exception as error:  # urllib3 connection errors have no common base worth naming
            raise TargetError(f"cannot reach the cluster at {configuration.host}: {error}") from error

    headers = {}
    token = configuration.api_key.get("authorization") or configuration.api_key.get("BearerToken")
    if token:
        headers["Authorization"] = token if " " in token else f"Bearer {token}"
    return Target(
        url=configuration.host.rstrip("/") + service_proxy_path(namespace, name),
        verify=tls_context(configuration),
        headers=headers,
        label=f"ChatFrontend {namespace}/{name}",
    )


def tls_context(configuration: object) -> ssl.SSLContext | bool:
    """The kubeconfig's CA, client certificate and verification setting as one SSL context for httpx."""
    if not getattr(configuration, "verify_ssl", True):
        return False
    context = ssl.create_default_context(cafile=getattr(configuration, "ssl_ca_cert", None) or None)
    cert_file = getattr(configuration, "cert_file", None)
    if cert_file:
        context.load_cert_chain(cert_file, getattr(configuration, "key_file", None) or None)
    return context
