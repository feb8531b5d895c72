"""Reconcile of a ChatFrontend; it waits (Pending, ModelsAvailable=False) until its ChatModels exist."""

from __future__ import annotations

import secrets

from kubernetes.client.rest import ApiException

from kubechat_operator.builders import build_frontend_children
from kubechat_operator.builders.chatfrontend import (
    COMPONENT,
    build_session_secret,
    optional_frontend_children,
)
from kubechat_operator.builders.common import selector_string, workload_name
from kubechat_operator.builders.frontend_ingress import ingress_url
from kubechat_operator.kube import Kube, Manifest
from kubechat_operator.observe import frontend_blocker, observe_workload
from kubechat_operator.reconciler import Outcome, Runtime, now, read_spec, reconcile_children, write_status
from kubechat_operator.spec import ChatFrontendSpec, Resource
from kubechat_operator.status import set_condition, workload_status
from kubechat_operator.workqueue import Trigger


def frontend_url(kube: Kube, owner: Resource, spec: ChatFrontendSpec) -> str:
    """Where users reach the chat page: through the Ingress, else the in-cluster URL, a node port, or the load
    balancer's address."""
    if spec.ingress is not None and spec.ingress.enabled:
        observed = None if spec.ingress.host else kube.get("Ingress", owner.namespace, workload_name(owner))
        return ingress_url(spec.ingress, observed)
    if spec.service.type == "ClusterIP":
        return f"http://{workload_name(owner)}.{owner.namespace}.svc:{spec.service.port}"
    service = kube.get("Service", owner.namespace, workload_name(owner)) or {}
    if spec.service.type == "NodePort":
        ports = service.get("spec", {}).get("ports") or [{}]
        return f"http://<node>:{ports[0].get('nodePort', '?')}"
    ingress = (service.get("status", {}).get("loadBalancer", {}).get("ingress") or [{}])[0]
    address = ingress.get("ip") or ingress.get("hostname")
    return f"http://{address}:{spec.service.port}" if address else "<pending load balancer>"


def ensure_session_secret(kube: Kube, owner: Resource, spec: ChatFrontendSpec) -> None:
    """Create the `<name>-session` Secret with a random key once, unless the spec names its own. It is never
    rewritten (that would log every user out); created, not applied, so the operator needs only create
    on Secrets (no read: 409 AlreadyExists means it is there). Deleting it makes the next reconcile create a
    new key."""
    if spec.secret_key_secret_ref is not None:
        return
    secret = build_session_secret(owner, secrets.token_urlsafe(48))
    try:
        kube.create(secret)
    except ApiException as exc:
        if exc.status != 409:  # it exists (made earlier, or by another replica a moment ago): keep it
            raise


def reconcile_chatfrontend(runtime: Runtime, body: Manifest, trigger: Trigger) -> Outcome:
    """Bring a ChatFrontend's children to the desired state and its status to what the cluster reports."""
    kube = runtime.kube
    owner = Resource.from_body(body)
    previous = body.get("status") or {}
    spec, blocker = read_spec(
        ChatFrontendSpec, body, lambda spec: frontend_blocker(kube, owner.namespace, spec)
    )
    if spec is not None and blocker is None:
        ensure_session_secret(kube, owner, spec)
        desired = build_frontend_children(owner, spec, runtime.config)
        optional = optional_frontend_children(owner)
        blocker = reconcile_children(runtime, owner, previous, desired, trigger, optional)
    observed = observe_workload(
        kube,
        owner.namespace,
        workload_name(owner),
        selector_string(owner, COMPONENT),
        spec.replicas if spec else 0,
    )
    conditions = previous.get("conditions") or []
    status = workload_status(observed, conditions, owner.generation, now(), blocker)
    models_missing = blocker is not None and blocker.reason == "ModelNotFound"
    status["conditions"].append(
        set_condition(
            conditions,
            "ModelsAvailable",
            not models_missing,
            "ModelNotFound" if models_missing else "Found",
            blocker.message if models_missing and blocker else "every referenced ChatModel exists",
            owner.generation,
            now(),
        )
    )
    status.pop("loadProgress")
    status["selector"] = selector_string(owner, COMPONENT)
    status["models"] = ",".join(m.name for m in spec.models) if spec else ""
    status["url"] = frontend_url(kube, owner, spec) if spec and blocker is None else ""
    write_status(runtime, body, status)
    return Outcome(blocker, bool(observed.creating))
