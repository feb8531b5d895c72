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
from kubechat_operator.api_errors import api_error_blocker
from kubechat_operator.apply import OwnedChildren, apply_children, drifted_children, prune
from kubechat_operator.backoff import Backoff
from kubechat_operator.config import OperatorConfig
from kubechat_operator.events import EventRecorder
from kubechat_operator.kube import Kube, Manifest
from kubechat_operator.observe import PodStore
from kubechat_operator.spec import Resource
from kubechat_operator.status import Blocker, failure_status, transition_event, without_timestamps
from kubechat_operator.workqueue import Key, Requeue, Trigger

logger = logging.getLogger(__name__)

SpecT = TypeVar("SpecT", bound=BaseModel)


@dataclass
class Runtime:
    """Process-wide state of the operator, created at startup and shared by the handlers."""

    kube: Kube
    config: OperatorConfig
    # (uid, generation) -> monotonic time it was first seen; for the time-to-Ready metric.
    first_seen: dict[tuple[str, int], float] = field(default_factory=dict)
    owned: OwnedChildren = field(default_factory=OwnedChildren)
    pods: PodStore = field(default_factory=PodStore)
    # uids of resources whose last apply was refused or blocked by a foreign object.
    unapplied: set[str] = field(default_factory=set)
    events: EventRecorder | None = None
    # Refused requests back off like controller-runtime's default (to 5 min); a resource waiting on the user
    # (a missing ChatModel, a foreign object in the way) is rechecked sooner, up to once a minute.
    error_backoff: Backoff = field(default_factory=lambda: Backoff(base_s=1.0, cap_s=300.0))
    wait_backoff: Backoff = field(default_factory=lambda: Backoff(base_s=5.0, cap_s=60.0))
    # Pods still creating (volumes not mounted) are looked at again as often: see Outcome.
    creating_backoff: Backoff = field(default_factory=lambda: Backoff(base_s=5.0, cap_s=60.0))

    def __post_init__(self) -> None:
        if self.events is None:
            self.events = EventRecorder(self.kube)


@dataclass(frozen=True)
class Outcome:
    """What a reconcile leaves open: a blocker (in the status, retried with backoff), or pods still creating.
    Why such a pod waits (a volume that does not mount, the kubelet's next attempt) is only in Events, which
    change no object the operator watches, so the status is derived from the pods again after a delay."""

    blocker: Blocker | None = None
    pods_creating: bool = False


Reconcile = Callable[[Runtime, Manifest, Trigger], Outcome]


def run_reconcile(runtime: Runtime, key: Key, trigger: Trigger, reconcile: Reconcile) -> Requeue | None:
    """Fetch the resource and reconcile it; never raises. Returns when to run again: never when all is well,
    else after the resource's next backoff delay (errors, waits and creating pods back off separately)."""
    kind, namespace, name = key
    started = time.perf_counter()
    metrics.RECONCILES.labels(kind).inc()
    body = None
    try:
        body = runtime.kube.get(kind, namespace, name)
        if body is None or body["metadata"].get("deletionTimestamp"):
            # Gone or going: ownerReferences let the garbage collector remove the children.
            outcome = Outcome()
        else:
            generation = body["metadata"].get("generation", 1)
            if (body.get("status") or {}).get("observedGeneration") != generation:
                runtime.first_seen.setdefault((body["metadata"]["uid"], generation), time.monotonic())
            outcome = reconcile(runtime, body, trigger)
    except ApiException as exc:
        blocker = api_error_blocker(exc, f"reconciling {kind} {name}")
        outcome = Outcome(blocker)
        if body is not None:
            _report_failure(runtime, body, blocker)
    except Exception:
        metrics.RECONCILE_ERRORS.labels(kind).inc()
        delay = runtime.error_backoff.next_delay(key)
        logger.exception("reconcile of %s %s/%s failed; retrying in %.0fs", kind, namespace, name, delay)
        return Requeue(delay, Trigger(apply_all=True))
    finally:
        metrics.RECONCILE_SECONDS.labels(kind).observe(time.perf_counter() - started)
    return _requeue(runtime, key, outcome)


def _requeue(runtime: Runtime, key: Key, outcome: Outcome) -> Requeue | None:
    blocker = outcome.blocker
    if blocker is None:
        runtime.error_backoff.reset(key)
        runtime.wait_backoff.reset(key)
        if outcome.pods_creating:
            return Requeue(runtime.creating_backoff.next_delay(key), Trigger(observe=True))
        runtime.creating_backoff.reset(key)
        return None
    if blocker.api_error:
        metrics.RECONCILE_ERRORS.labels(key[0]).inc()
        delay = runtime.error_backoff.next_delay(key)
        logger.warning("%s %s/%s: %s; retrying in %.0fs", *key, blocker.message, delay)
        return Requeue(delay, Trigger(apply_all=True))
    runtime.error_backoff.reset(key)
    return Requeue(runtime.wait_backoff.next_delay(key), Trigger(apply_all=True))


def _report_failure(runtime: Runtime, body: Manifest, blocker: Blocker) -> None:
    """Ready=False with the refusal's reason and message (and an Event), as far as the apiserver lets us."""
    previous = body.get("status") or {}
    status = failure_status(previous, blocker, body["metadata"].get("generation", 1), now())
    try:
        write_status(runtime, body, status)
    except ApiException as exc:
        logger.warning("could not write the status of %s: %s", body["metadata"]["name"], exc.reason)
        runtime.events.post(body, "Warning", blocker.reason, blocker.message)


def read_spec(
    spec_type: type[SpecT], body: Manifest, check: Callable[[SpecT], Blocker | None]
) -> tuple[SpecT | None, Blocker | None]:
    """A CR's typed spec and what blocks it: a spec the schema let through but the operator cannot use, or
    what ``check`` finds missing in the cluster (a ConfigMap, a ChatModel)."""
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


def reconcile_children(
    runtime: Runtime,
    owner: Resource,
    previous_status: Manifest,
    desired: list[Manifest],
    trigger: Trigger,
    optional: list[tuple[str, str]],
) -> Blocker | None:
    """Apply a CR's desired children: all of them for a new generation or a fresh start (pruning the
    optional (kind, name) children no longer asked for), else only those a watch event showed drifted.
    A foreign object in the way or a refused request becomes the blocker."""
    new_generation = previous_status.get("observedGeneration") != owner.generation
    # Until one apply of the whole set succeeds, every reconcile (a pod event too) applies it all again, so
    # a status derived from the pods never hides the refusal.
    if trigger.apply_all or new_generation or owner.uid in runtime.unapplied:
        blocker = apply_children(runtime.kube, runtime.owned, owner, desired)
        if blocker is None:
            wanted = {(m["kind"], m["metadata"]["name"]) for m in desired}
            unwanted = [child for child in optional if child not in wanted]
            prune(runtime.kube, runtime.owned, owner, unwanted, verify=new_generation)
    else:
        blocker = apply_children(
            runtime.kube, runtime.owned, owner, drifted_children(desired, trigger.children)
        )
    if blocker is None:
        runtime.unapplied.discard(owner.uid)
    else:
        runtime.unapplied.add(owner.uid)
    return blocker


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
        runtime.events.post(body, *event)
    if status["phase"] == "Ready" and previous.get("phase") != "Ready":
        seen = runtime.first_seen.pop((meta["uid"], meta.get("generation", 1)), None)
        if seen is not None:
            metrics.TIME_TO_READY.labels(body["kind"]).observe(time.monotonic() - seen)


def now() -> datetime:
    return datetime.now(UTC)
