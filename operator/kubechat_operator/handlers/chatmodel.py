"""Reconcile of a ChatModel."""

from __future__ import annotations

from kubechat_operator.builders import build_model_children
from kubechat_operator.builders.chatmodel import COMPONENT, model_endpoint, progress_config_map_name
from kubechat_operator.builders.common import selector_string
from kubechat_operator.kube import Manifest
from kubechat_operator.observe import model_blocker, observe_workload, stale_progress_keys
from kubechat_operator.reconciler import (
    RECHECK_BLOCKED_S,
    Runtime,
    now,
    read_spec,
    reconcile_children,
    write_status,
)
from kubechat_operator.spec import ChatModelSpec, Resource
from kubechat_operator.status import workload_status
from kubechat_operator.workqueue import Trigger


def reconcile_chatmodel(runtime: Runtime, body: Manifest, trigger: Trigger) -> float | None:
    """Bring a ChatModel's children to the desired state and its status to what the cluster reports."""
    kube = runtime.kube
    owner = Resource.from_body(body)
    previous = body.get("status") or {}
    spec, blocker = read_spec(ChatModelSpec, body, lambda s: model_blocker(kube, owner.namespace, s))
    if spec is not None and blocker is None:
        desired = build_model_children(owner, spec, runtime.config)
        blocker = reconcile_children(
            kube, owner, previous, desired, trigger, autoscaled=spec.autoscaling is not None
        )
    observed = observe_workload(
        kube,
        owner.namespace,
        owner.name,
        selector_string(owner, COMPONENT),
        spec.replicas if spec else 0,
        progress_config_map_name(owner.name),
    )
    stale = stale_progress_keys(observed)
    if stale:
        kube.merge_patch(
            "ConfigMap", owner.namespace, progress_config_map_name(owner.name), {"data": dict.fromkeys(stale)}
        )
    status = workload_status(observed, previous.get("conditions") or [], owner.generation, now(), blocker)
    status["endpoint"] = model_endpoint(owner.name, owner.namespace)
    status["selector"] = selector_string(owner, COMPONENT)
    write_status(runtime, body, status)
    return RECHECK_BLOCKED_S if blocker else None
