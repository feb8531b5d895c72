"""Reconcile of a ChatModel."""

from __future__ import annotations

from kubechat_operator.builders import build_model_children
from kubechat_operator.builders.chatmodel import (
    COMPONENT,
    model_endpoint,
    optional_model_children,
    progress_config_map_name,
)
from kubechat_operator.builders.common import selector_labels, selector_string
from kubechat_operator.kube import Manifest
from kubechat_operator.metrics import PROGRESS_REFRESHES
from kubechat_operator.observe import model_blocker, observe_workload, stale_progress_keys
from kubechat_operator.reconciler import Outcome, Runtime, now, read_spec, reconcile_children, write_status
from kubechat_operator.spec import ChatModelSpec, Resource
from kubechat_operator.status import Observed, load_progress, workload_status
from kubechat_operator.workqueue import Trigger


def reconcile_chatmodel(runtime: Runtime, body: Manifest, trigger: Trigger) -> Outcome:
    """Bring a ChatModel's children to the desired state and its status to what the cluster reports."""
    if trigger.progress_only and refresh_load_progress(runtime, body, trigger.progress or {}):
        return Outcome()
    kube = runtime.kube
    owner = Resource.from_body(body)
    previous = body.get("status") or {}
    spec, blocker = read_spec(ChatModelSpec, body, lambda s: model_blocker(kube, owner.namespace, s))
    if spec is not None and blocker is None:
        desired = build_model_children(owner, spec, runtime.config)
        blocker = reconcile_children(
            runtime, owner, previous, desired, trigger, optional_model_children(owner)
        )
    observed = observe_workload(
        kube,
        owner.namespace,
        owner.name,
        selector_string(owner, COMPONENT),
        spec.replicas if spec else 0,
        (progress_config_map_name(owner.name), owner.uid),
    )
    stale = stale_progress_keys(observed)
    if stale:
        kube.merge_patch(
            "ConfigMap", owner.namespace, progress_config_map_name(owner.name), {"data": dict.fromkeys(stale)}
        )
    status = workload_status(observed, previous.get("conditions") or [], owner.generation, now(), blocker)
    status["endpoint"] = model_endpoint(owner.name, owner.namespace)
    status["selector"] = selector_string(owner, COMPONENT)
    if previous.get("autoscaling") and not (spec and spec.scales_on_requests):
        status["autoscaling"] = None  # the request autoscaler's view, stale once it no longer scales this
    write_status(runtime, body, status)
    return Outcome(blocker, bool(observed.creating))


def refresh_load_progress(runtime: Runtime, body: Manifest, progress: dict[str, str]) -> bool:
    """A pod reported load progress while the model is Loading: update status.loadProgress and its message
    from the report and the watched pods, without reading the workload or applying anything. False when the
    report may change more than that (the first report, a failed load): a full reconcile is due."""
    owner = Resource.from_body(body)
    previous = body.get("status") or {}
    if previous.get("reason") != "Loading" or previous.get("observedGeneration") != owner.generation:
        return False
    pods = runtime.pods.select(owner.namespace, selector_labels(owner, COMPONENT))
    summary = load_progress(Observed(desired=0, pods=pods, progress=progress))
    if not summary["summary"] or any(entry["stage"] == "failed" for entry in summary["pods"]):
        return False
    if summary != previous.get("loadProgress"):
        status = {"loadProgress": summary, "message": f"model loading: {summary['summary']}"}
        runtime.kube.merge_patch(
            "ChatModel", owner.namespace, owner.name, {"status": status}, subresource="status"
        )
        PROGRESS_REFRESHES.inc()
    return True
