"""Kubernetes Events on a custom resource (shown by `kubectl describe` and `kubectl events`)."""

from __future__ import annotations

import logging
from datetime import UTC, datetime

from kubernetes.client.rest import ApiException

from kubechat_operator.kube import FIELD_MANAGER, Kube, Manifest

logger = logging.getLogger(__name__)


def post_event(kube: Kube, body: Manifest, type_: str, reason: str, message: str) -> None:
    """Record an Event about body; losing one is not worth failing a reconcile for, so errors are logged."""
    meta = body["metadata"]
    now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    event = {
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {"generateName": f"{meta['name']}.", "namespace": meta["namespace"]},
        "involvedObject": {
            "apiVersion": body["apiVersion"],
            "kind": body["kind"],
            "name": meta["name"],
            "namespace": meta["namespace"],
            "uid": meta["uid"],
            "resourceVersion": meta.get("resourceVersion", ""),
        },
        "type": type_,
        "reason": reason,
        "message": message[:1024],
        "source": {"component": FIELD_MANAGER},
        "reportingComponent": FIELD_MANAGER,
        "reportingInstance": FIELD_MANAGER,
        "firstTimestamp": now,
        "lastTimestamp": now,
        "count": 1,
    }
    try:
        kube.request("POST", kube.path("Event", meta["namespace"]), body=event)
    except ApiException as exc:
        logger.warning(
            "could not post event %s on %s/%s: %s", reason, meta["namespace"], meta["name"], exc.reason
        )
