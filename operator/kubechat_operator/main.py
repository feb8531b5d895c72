"""Kopf registration: startup settings and the watch handlers, which only enqueue reconciles.

Every event (of a ChatModel, a ChatFrontend, or one of their children) becomes a debounced, per-resource
reconcile in queue.ReconcileQueue; the reconciles themselves live in handlers/.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

import kopf

from kubechat_operator import GROUP, VERSION
from kubechat_operator.autoscaler import RequestAutoscaler
from kubechat_operator.builders.chatmodel import progress_config_map_name
from kubechat_operator.builders.common import MANAGED_BY, MANAGED_BY_LABEL
from kubechat_operator.config import OperatorConfig
from kubechat_operator.handlers.chatfrontend import reconcile_chatfrontend
from kubechat_operator.handlers.chatmodel import reconcile_chatmodel
from kubechat_operator.kube import Kube
from kubechat_operator.metrics import CHILD_EVENTS, QUEUE_BUSY
from kubechat_operator.reconciler import Runtime, run_reconcile
from kubechat_operator.workqueue import Key, ReconcileQueue, Requeue, Trigger

RECONCILERS = {"ChatModel": reconcile_chatmodel, "ChatFrontend": reconcile_chatfrontend}
# (group, version, plural, kind) of every kind of child the operator creates.
CHILD_RESOURCES = [
    ("", "v1", "pods", "Pod"),
    ("", "v1", "configmaps", "ConfigMap"),
    ("", "v1", "services", "Service"),
    ("", "v1", "serviceaccounts", "ServiceAccount"),
    ("", "v1", "persistentvolumeclaims", "PersistentVolumeClaim"),
    ("apps", "v1", "deployments", "Deployment"),
    ("autoscaling", "v2", "horizontalpodautoscalers", "HorizontalPodAutoscaler"),
    ("rbac.authorization.k8s.io", "v1", "roles", "Role"),
    ("rbac.authorization.k8s.io", "v1", "rolebindings", "RoleBinding"),
    ("policy", "v1", "poddisruptionbudgets", "PodDisruptionBudget"),
    ("networking.k8s.io", "v1", "networkpolicies", "NetworkPolicy"),
    ("networking.k8s.io", "v1", "ingresses", "Ingress"),
]
CHILD_SELECTOR = f"{MANAGED_BY_LABEL}={MANAGED_BY}"
OWNER_LABELS = {f"{GROUP}/chatmodel": "ChatModel", f"{GROUP}/chatfrontend": "ChatFrontend"}


@kopf.on.startup()
def configure(settings: kopf.OperatorSettings, memo: kopf.Memo, **_: Any) -> None:
    # Leader election (a Lease, see leader.py) decides who runs; Kopf's own peering would freeze two
    # replicas of equal priority instead of failing over.
    settings.peering.standalone = True
    settings.posting.level = logging.WARNING
    settings.watching.server_timeout = 300
    # The apiserver filters the child watches (Kopf's `labels=` would filter here, after every Pod and
    # ConfigMap of the cluster had streamed in).
    for group, version, plural, _ in CHILD_RESOURCES:
        settings.watching.label_selectors[group, version, plural] = CHILD_SELECTOR
    runtime = Runtime(kube=Kube.connect(), config=OperatorConfig.from_env())
    memo.runtime = runtime
    memo.queue = ReconcileQueue(lambda key, trigger: _work(runtime, key, trigger))
    memo.autoscaler = RequestAutoscaler(runtime)


@kopf.on.startup()
async def start_autoscaler(memo: kopf.Memo, **_: Any) -> None:
    memo.autoscaler_task = asyncio.create_task(memo.autoscaler.run(memo.runtime.config.autoscale_interval_s))


@kopf.on.cleanup()
async def stop_autoscaler(memo: kopf.Memo, **_: Any) -> None:
    memo.autoscaler_task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await memo.autoscaler_task


def _work(runtime: Runtime, key: Key, trigger: Trigger) -> Requeue | None:
    return run_reconcile(runtime, key, trigger, RECONCILERS[key[0]])


@kopf.on.cleanup()
def shutdown(memo: kopf.Memo, **_: Any) -> None:
    memo.queue.shutdown()
    memo.runtime.kube.close()
    if "stop_flag" in memo:
        memo.stop_flag.set()  # releases the thread in which Kopf waits for its stop flag


def _enqueue(memo: kopf.Memo, key: Key, trigger: Trigger) -> None:
    memo.queue.enqueue(key, trigger)
    QUEUE_BUSY.set(memo.queue.busy)


def _needs_apply(event_type: str | None, body: kopf.Body) -> bool:
    """Apply children on the first sight of a resource (also after a restart) and on every new generation."""
    observed = (body.get("status") or {}).get("observedGeneration")
    return event_type is None or observed != body["metadata"].get("generation")


@kopf.index(GROUP, VERSION, "chatfrontends")
def frontends_by_model(namespace: str, name: str, spec: kopf.Spec, **_: Any) -> dict[tuple[str, str], str]:
    """(namespace, ChatModel name) → names of the ChatFrontends that offer it."""
    return {(namespace, model.get("name")): name for model in spec.get("models", [])}


@kopf.on.event(GROUP, VERSION, "chatmodels")
async def chatmodel_event(
    type: str | None,
    body: kopf.Body,
    namespace: str,
    name: str,
    memo: kopf.Memo,
    frontends_by_model: kopf.Index,
    **_: Any,
) -> None:
    memo.autoscaler.observe_model(type, body)
    if type != "DELETED" and _needs_apply(type, body):
        _enqueue(memo, ("ChatModel", namespace, name), Trigger(apply_all=True))
    if type in ("ADDED", "DELETED"):
        # A frontend waiting for this model (or now missing it) must notice.
        for frontend in frontends_by_model.get((namespace, name), []):
            _enqueue(memo, ("ChatFrontend", namespace, frontend), Trigger(apply_all=True))


@kopf.on.event(GROUP, VERSION, "chatfrontends")
async def chatfrontend_event(
    type: str | None, body: kopf.Body, namespace: str, name: str, memo: kopf.Memo, **_: Any
) -> None:
    memo.autoscaler.observe_frontend(type, body)
    if type != "DELETED" and _needs_apply(type, body):
        _enqueue(memo, ("ChatFrontend", namespace, name), Trigger(apply_all=True))


async def child_event(
    type: str | None, event: dict, namespace: str, name: str, memo: kopf.Memo, **_: Any
) -> None:
    """A child changed: remember who controls it, re-check it for drift (edited or deleted) and refresh the
    owner's status (a progress report refreshes only the load progress)."""
    child = event.get("object") or {}
    kind = child.get("kind", "")
    CHILD_EVENTS.labels(kind).inc()
    runtime: Runtime = memo.runtime
    if type == "DELETED":
        runtime.owned.forget(kind, namespace, name)
    else:
        runtime.owned.record(child)
    if kind == "Pod":
        runtime.pods.update(child, deleted=type == "DELETED")
    labels = child.get("metadata", {}).get("labels") or {}
    owner = next(((kind, labels[label]) for label, kind in OWNER_LABELS.items() if label in labels), None)
    if owner is None or type is None:
        return  # the initial listing: the owners' own first reconcile applies everything anyway
    if kind == "ConfigMap" and name == progress_config_map_name(owner[1]) and type != "DELETED":
        _enqueue(memo, (owner[0], namespace, owner[1]), Trigger(progress=child.get("data") or {}))
        return
    trigger = Trigger(observe=kind in ("Pod", "Deployment"))
    if type == "DELETED" and kind != "Pod":
        trigger.children[(kind, name)] = None
    elif type == "MODIFIED" and kind != "Pod":
        trigger.children[(kind, name)] = child
    elif not trigger.observe:
        return  # our own creation of a child: nothing to repair, no status to change
    _enqueue(memo, (owner[0], namespace, owner[1]), trigger)


for _group, _version, _plural, _kind in CHILD_RESOURCES:
    kopf.on.event(_group, _version, _plural, id=f"child-{_plural}")(child_event)
