"""Kubernetes Events on a custom resource (shown by `kubectl describe` and `kubectl events`).

A repeat of the same Event (same object, type, reason and message) within DEDUP_WINDOW_S bumps the count
and lastTimestamp of the one already posted, as client-go's EventRecorder does, instead of adding another.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from datetime import UTC, datetime

from kubernetes.client.rest import ApiException

from kubechat_operator.kube import FIELD_MANAGER, Kube, Manifest

logger = logging.getLogger(__name__)

DEDUP_WINDOW_S = 600.0
REMEMBERED = 4096  # posted Events remembered for deduplication, oldest forgotten first


def _timestamp() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def event_manifest(body: Manifest, type_: str, reason: str, message: str) -> Manifest:
    """A core/v1 Event about body (the custom resource)."""
    meta = body["metadata"]
    now = _timestamp()
    return {
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


class EventRecorder:
    """Posts Events, folding repeats into one; losing an Event is not worth failing a reconcile for."""

    def __init__(self, kube: Kube) -> None:
        self.kube = kube
        self._lock = threading.Lock()
        # (uid, type, reason, message) -> (namespace, event name, count, monotonic time first posted)
        self._posted: OrderedDict[tuple[str, str, str, str], tuple[str, str, int, float]] = OrderedDict()

    def post(self, body: Manifest, type_: str, reason: str, message: str) -> None:
        meta = body["metadata"]
        key = (meta["uid"], type_, reason, message[:1024])
        with self._lock:
            earlier = self._posted.get(key)
        try:
            if earlier is not None and time.monotonic() - earlier[3] < DEDUP_WINDOW_S:
                namespace, name, count, first = earlier
                patch = {"count": count + 1, "lastTimestamp": _timestamp()}
                self.kube.merge_patch("Event", namespace, name, patch)
                self._remember(key, (namespace, name, count + 1, first))
                return
            event = event_manifest(body, type_, reason, message)
            posted = self.kube.request("POST", self.kube.path("Event", meta["namespace"]), body=event)
            self._remember(key, (meta["namespace"], posted["metadata"]["name"], 1, time.monotonic()))
        except ApiException as exc:
            logger.warning(
                "could not post event %s on %s/%s: %s", reason, meta["namespace"], meta["name"], exc.reason
            )
            with self._lock:
                self._posted.pop(key, None)  # e.g. the Event expired (404): post a fresh one next time

    def _remember(self, key: tuple[str, str, str, str], value: tuple[str, str, int, float]) -> None:
        with self._lock:
            self._posted[key] = value
            self._posted.move_to_end(key)
            while len(self._posted) > REMEMBERED:
                self._posted.popitem(last=False)
