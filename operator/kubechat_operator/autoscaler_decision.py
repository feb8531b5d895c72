"""The request autoscaler's decision: from the load the pods and frontends report to a replica count (pure).

Like the HorizontalPodAutoscaler (pkg/controller/podautoscaler, stabilizeRecommendationWithBehaviors): every
round makes a recommendation, ceil(load / target) within the bounds; a scale up goes only to the lowest
recommendation of the up window, a scale down only to the highest of the down window. Two rules of our own:
a model at zero wakes at once when a ChatFrontend holds requests for it, and goes to zero only after it saw
no request (and every pod answered) for scaleToZeroAfterSeconds.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field

from kubechat_operator.spec import ChatModelSpec


@dataclass(frozen=True)
class Policy:
    """The bounds, target and windows of one ChatModel (spec.autoscaling with its defaults)."""

    min_replicas: int
    max_replicas: int
    target: int
    scale_to_zero_after_s: float
    up_window_s: float
    down_window_s: float

    @classmethod
    def from_spec(cls, spec: ChatModelSpec) -> Policy:
        scaling = spec.autoscaling
        assert scaling is not None
        return cls(
            min_replicas=scaling.min_replicas,
            max_replicas=scaling.max_replicas,
            target=spec.target_requests_per_replica,
            scale_to_zero_after_s=scaling.scale_to_zero_after_seconds,
            up_window_s=scaling.scale_up_stabilization_seconds,
            down_window_s=scaling.scale_down_stabilization_seconds,
        )


@dataclass(frozen=True)
class Observation:
    """One round's look at a model: its replicas (spec.replicas), the in-flight + queued requests of each
    ready model pod and the requests each ready frontend pod holds for it; None where a pod did not answer."""

    replicas: int
    pod_loads: tuple[int | None, ...] = ()
    held: tuple[int | None, ...] = ()

    @property
    def served(self) -> int:
        return sum(n for n in self.pod_loads if n is not None)

    @property
    def held_total(self) -> int:
        return sum(n for n in self.held if n is not None)

    @property
    def load(self) -> int:
        return self.served + self.held_total

    @property
    def unknown(self) -> int:
        return sum(1 for n in (*self.pod_loads, *self.held) if n is None)


@dataclass
class History:
    """What a model's decisions remember between rounds (in the operator's memory only: after a restart the
    windows start over from the current replicas, which delays a scale down, never hastens one)."""

    recommendations: deque[tuple[float, int]] = field(default_factory=deque)
    idle_since: float | None = None
    replicas: int | None = None  # as the last round saw them

    @classmethod
    def starting_at(cls, replicas: int, now: float) -> History:
        return cls(recommendations=deque([(now, replicas)]), replicas=replicas)


@dataclass(frozen=True)
class Decision:
    """The replicas to set, why (None: no change) and the numbers behind it."""

    replicas: int
    reason: str | None
    message: str


def _clamp(value: int, low: int, high: int) -> int:
    return max(low, min(high, value))


def recommend(policy: Policy, observed: Observation, idle_for: float | None) -> int:
    """This round's replicas before stabilisation: ceil(load / target) within the bounds; never fewer than
    now while a pod did not answer; at least one while a model that may sleep has not been idle long enough;
    none for a model at zero that nobody asks for."""
    raw = math.ceil(observed.load / policy.target)
    if observed.unknown:
        raw = max(raw, observed.replicas)
    floor = policy.min_replicas
    asleep_and_unasked = observed.replicas == 0 and observed.load == 0
    rested = idle_for is not None and idle_for >= policy.scale_to_zero_after_s
    if floor == 0 and not asleep_and_unasked and not rested:
        floor = 1
    return _clamp(raw, floor, policy.max_replicas)


def decide(policy: Policy, observed: Observation, history: History, now: float) -> Decision:
    """The replicas for this round (see the module's docstring); updates history."""
    just_woken = history.replicas == 0 and observed.replicas > 0  # by us, kubectl scale or a frontend
    history.replicas = observed.replicas
    if observed.load or observed.unknown:
        history.idle_since = None
    elif just_woken or history.idle_since is None:
        history.idle_since = now  # a woken model gets its whole idle delay, even before it serves
    idle_for = None if history.idle_since is None else now - history.idle_since
    recommendation = recommend(policy, observed, idle_for)
    keep = max(policy.up_window_s, policy.down_window_s)
    while history.recommendations and history.recommendations[0][0] <= now - keep:
        history.recommendations.popleft()
    up_window = [r for t, r in history.recommendations if t > now - policy.up_window_s]
    down_window = [r for t, r in history.recommendations if t > now - policy.down_window_s]
    history.recommendations.append((now, recommendation))

    current = observed.replicas
    if current == 0 or recommendation == 0:
        desired = recommendation  # waking and sleeping have their own rules, not the windows
    else:
        up = min([recommendation, *up_window])
        down = max([recommendation, *down_window])
        desired = min(max(current, up), down)
    # Past recommendations may lie outside bounds the user has just changed.
    desired = _clamp(desired, policy.min_replicas, policy.max_replicas)
    return Decision(desired, _reason(policy, current, desired), _message(policy, observed, idle_for))


def _reason(policy: Policy, current: int, desired: int) -> str | None:
    if desired == current:
        return None
    if current < policy.min_replicas:
        return "BelowMinimum"
    if current > policy.max_replicas:
        return "AboveMaximum"
    if current == 0:
        return "Wake"
    if desired == 0:
        return "Idle"
    return "LoadIncreased" if desired > current else "LoadDecreased"


def _message(policy: Policy, observed: Observation, idle_for: float | None) -> str:
    known = sum(1 for n in observed.pod_loads if n is not None)
    text = (
        f"load {observed.load} = {observed.served} in flight or queued on {known}/{len(observed.pod_loads)} "
        f"ready pods + {observed.held_total} held by frontends; target {policy.target} per replica"
    )
    if observed.unknown:
        text += f"; {observed.unknown} pods did not answer (no scale down)"
    if idle_for is not None and policy.min_replicas == 0:
        text += f"; idle {idle_for:.0f}s of {policy.scale_to_zero_after_s:.0f}s before zero"
    return text
