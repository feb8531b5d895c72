"""What both resources' reconciles share: the runtime, the error boundary, and writing status + Events."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TypeVar

from kubernetes.client.rest import ApiException
from pydantic import BaseModel, ValidationError

from kubechat_operator import metrics
from kubechat_operator.apply import apply_children, drifted_children, prune
from kubechat_operator.config import OperatorConfig
from kubechat_operator.events import post_event
from kubechat_operator.kube import Kube, Manifest
from kubechat_operator.spec import Resource
from kubechat_operator.status import Blocker, transition_event, without_timestamps
from kubechat_operator.workqueue import Key, Trigger

logger = logging.getLogger(__name__)

RETRY_AFTER_ERROR_S = 5.0
RECHECK_BLOCKED_S = 10.0

SpecT = TypeVar("SpecT", bound=BaseModel)


@dataclass
class Runtime:
    """Process-wide state of the operator, created at startup and shared by the handlers."""

    kube: Kube
    config: OperatorConfig
    # (uid, generation) -> monotonic time it was first seen; for the time-to-Ready metric.
    first_seen: dict[tuple[str, int], float] = field(default_factory=dict)


Reconcile = Callable[[Runtime, Manifest, Trigger], float | None]


def run_reconcile(runtime: Runtime, key: Key, trigger: Trigger, reconcile: Reconcile) -> float | None:
    """Fetch the resource and reconcile it; never raises (an error is logged, counted and retried later)."""
    kind, namespace, name = key
    started = time.perf_counter()
    metrics.RECONCILES.labels(kind).inc()
    try:
        body = runtime.kube.get(kind, namespace, name)
        if body is None or body["metadata"].get("deletionTimestamp"):
            return None  # gone or going: ownerReferences let the garbage collector remove the children
        generation = body["metadata"].get("generation", 1)
        if (body.get("status") or {}).get("observedGeneration") != generation:
            runtime.first_seen.setdefault((body["metadata"]["uid"], generation), time.monotonic())
        return reconcile(runtime, body, trigger)
    except Exception:
        metrics.RECONCILE_ERRORS.labels(kind).inc()
        logger.exception(
            "reconcile of %s %s/%s failed; retrying in %ss", kind, namespace, name, RETRY_AFTER_ERROR_S
        )
        return RETRY_AFTER_ERROR_S
    finally:
        metrics.RECONCILE_SECONDS.labels(kind).observe(time.perf_counter() - started)


def read_spec(
    spec_type: type[SpecT], body: Manifest, check: Callable[[SpecT], Blocker | None]
) -> tuple[SpecT | None, Blocker | None]:
    """A CR's typed spec and what blocks it: a spec the schema let through but the operator cannot use, or
    what ``check`` finds missing in the cluster (a Secret, a ChatModel)."""
    try:
        spec = spec_type.model_validate(body.get("spec") or {})
    except ValidationError as exc:
        return None, spec_blocker(exc)
    return spec, check(spec)


def spec_blocker(error: ValidationError) -> Blocker:
    """Ready=False for a spec the schema let through but the operator cannot use."""
    first = error.errors()[0]
    where = ".".join(str(p) for p in first["loc"])
    return Blocker("InvalidSpec", f"spec.{where}: {first['msg']}")


def apply_blocker(error: ApiException) -> Blocker | None:
    """A child the apiserver refuses (422/400: e.g. a malformed affinity) is bad input, not a crash."""
    if error.status in (400, 422):
        return Blocker("InvalidChild", f"the apiserver rejected a child: {error.body or error.reason}"[:1000])
    return None


def reconcile_children(
    kube: Kube,
    owner: Resource,
    previous_status: Manifest,
    desired: list[Manifest],
    trigger: Trigger,
    *,
    autoscaled: bool,
) -> Blocker | None:
    """Apply a CR's desired children: all of them for a new generation or a fresh start (pruning an HPA no
    longer asked for), else only those a watch event showed drifted. A refused child becomes a blocker."""
    try:
        if trigger.apply_all or previous_status.get("observedGeneration") != owner.generation:
            apply_children(kube, desired)
            if not autoscaled:
                prune(kube, owner.namespace, owner.uid, [("HorizontalPodAutoscaler", owner.name)])
        else:
            apply_children(kube, desired, only=drifted_children(desired, trigger.children))
    except ApiException as exc:
        blocker = apply_blocker(exc)
        if blocker is None:
            raise
        return blocker
    return None


def write_status(runtime: Runtime, body: Manifest, status: Manifest) -> None:
    """Patch status when something besides time changed; post an Event for phase/reason transitions."""
    meta = body["metadata"]
    previous = body.get("status") or {}
    if without_timestamps(previous) == without_timestamps({**previous, **status}):
        return
    runtime.kube.merge_patch(
        body["kind"], meta["namespace"], meta["name"], {"status": status}, subresource="status"
    )
    event = transition_event(previous, status)
    if event:
        post_event(runtime.kube, body, *event)
    if status["phase"] == "Ready" and previous.get("phase") != "Ready":
        seen = runtime.first_seen.pop((meta["uid"], meta.get("generation", 1)), None)
        if seen is not None:
            metrics.TIME_TO_READY.labels(body["kind"]).observe(time.monotonic() - seen)


def now() -> datetime:
    return datetime.now(UTC)
