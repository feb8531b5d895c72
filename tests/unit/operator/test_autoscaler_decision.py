"""The request autoscaler's decision: clamping, stabilisation, scale to zero, waking, unknown pods."""

from __future__ import annotations

from kubechat_operator.autoscaler_decision import Decision, History, Observation, Policy, decide
from kubechat_operator.spec import ChatModelSpec


def _policy(**changes: float) -> Policy:
    values = {
        "min_replicas": 1,
        "max_replicas": 4,
        "target": 2,
        "scale_to_zero_after_s": 60,
        "up_window_s": 0,
        "down_window_s": 30,
    }
    return Policy(**{**values, **changes})


def _rounds(policy: Policy, rounds: list[tuple[float, Observation]], replicas: int) -> list[Decision]:
    """Decide round after round, applying each decision as the autoscaler does."""
    history = History.starting_at(replicas, rounds[0][0])
    decisions = []
    for now, observed in rounds:
        observed = Observation(replicas, observed.pod_loads, observed.held)
        decision = decide(policy, observed, history, now)
        replicas = decision.replicas
        decisions.append(decision)
    return decisions


def test_desired_replicas_are_the_load_over_the_target_rounded_up_within_the_bounds() -> None:
    policy = _policy()
    assert decide(policy, Observation(1, (5,)), History(), 0).replicas == 3
    assert decide(policy, Observation(1, (3, 2, 2)), History(), 0).replicas == 4  # 7/2 -> 4
    assert decide(policy, Observation(1, (40,)), History(), 0).replicas == 4  # maxReplicas
    assert decide(_policy(min_replicas=2), Observation(2, (0, 0)), History(), 0).replicas == 2


def test_scale_up_is_immediate_and_says_why_with_the_numbers() -> None:
    decision = decide(_policy(), Observation(1, (4, 2)), History.starting_at(1, 0), 1)
    assert (decision.replicas, decision.reason) == (3, "LoadIncreased")
    assert "load 6" in decision.message and "target 2" in decision.message


def test_scale_up_window_waits_for_the_load_to_last() -> None:
    load = Observation(1, (6,))
    decisions = _rounds(_policy(up_window_s=10), [(t, load) for t in (0, 5, 10, 15)], replicas=1)
    assert [d.replicas for d in decisions] == [1, 1, 3, 3]


def test_scale_down_waits_for_the_down_window_and_goes_to_its_highest_recommendation() -> None:
    busy, calmer, idle = Observation(0, (4, 4)), Observation(0, (2, 1)), Observation(0, (0, 0))
    rounds = [(0, busy), (10, calmer), (20, idle), (35, idle), (45, idle), (55, idle)]
    decisions = _rounds(_policy(down_window_s=30), rounds, replicas=4)
    assert [d.replicas for d in decisions] == [4, 4, 4, 2, 1, 1]
    assert decisions[3].reason == "LoadDecreased"


def test_a_pod_that_does_not_answer_never_lets_the_replicas_drop() -> None:
    policy = _policy(down_window_s=0)
    decision = decide(policy, Observation(3, (0, None, 0)), History(), 100)
    assert (decision.replicas, decision.reason) == (3, None)
    assert "1 pods did not answer" in decision.message
    # ... but the load the others report still scales up.
    assert decide(policy, Observation(1, (6, None)), History(), 100).replicas == 3


def test_an_idle_model_with_min_zero_goes_to_zero_only_after_the_idle_delay() -> None:
    policy = _policy(min_replicas=0, scale_to_zero_after_s=60, down_window_s=5)
    idle = Observation(0, (0,))
    decisions = _rounds(policy, [(t, idle) for t in (0, 30, 59, 60, 65)], replicas=1)
    assert [d.replicas for d in decisions] == [1, 1, 1, 0, 0]
    assert decisions[3].reason == "Idle"


def test_a_request_restarts_the_idle_delay() -> None:
    policy = _policy(min_replicas=0, scale_to_zero_after_s=60)
    idle, busy = Observation(0, (0,)), Observation(0, (1,))
    rounds = [(0, idle), (50, busy), (70, idle), (115, idle), (130, idle)]
    assert [d.replicas for d in _rounds(policy, rounds, replicas=1)] == [1, 1, 1, 1, 0]


def test_unknown_frontends_keep_an_idle_model_awake() -> None:
    policy = _policy(min_replicas=0, scale_to_zero_after_s=10)
    rounds = [(t, Observation(0, (0,), (0, None))) for t in (0, 20, 40)]
    assert [d.replicas for d in _rounds(policy, rounds, replicas=1)] == [1, 1, 1]


def test_a_model_at_zero_stays_there_until_a_frontend_holds_a_request_then_wakes_at_once() -> None:
    policy = _policy(min_replicas=0, up_window_s=60)
    stays = decide(policy, Observation(0, (), (0, 0)), History(), 0)
    assert (stays.replicas, stays.reason) == (0, None)
    woken = decide(policy, Observation(0, (), (0, 1)), History.starting_at(0, 0), 1)
    assert (woken.replicas, woken.reason) == (1, "Wake")
    assert "1 held by frontends" in woken.message
    many = decide(policy, Observation(0, (), (5, 2)), History.starting_at(0, 0), 1)
    assert (many.replicas, many.reason) == (4, "Wake")


def test_held_requests_count_as_load_while_pods_start() -> None:
    decision = decide(_policy(), Observation(1, (), (5,)), History.starting_at(1, 0), 1)
    assert (decision.replicas, decision.reason) == (3, "LoadIncreased")


def test_new_bounds_apply_at_once_whatever_the_windows() -> None:
    history = History.starting_at(4, 0)
    lowered = decide(_policy(max_replicas=2, down_window_s=300), Observation(4, (8,)), history, 1)
    assert (lowered.replicas, lowered.reason) == (2, "AboveMaximum")
    raised = decide(_policy(min_replicas=3, up_window_s=300), Observation(1, (0,)), History(), 1)
    assert (raised.replicas, raised.reason) == (3, "BelowMinimum")


def test_the_policy_defaults_the_target_to_half_a_batch() -> None:
    spec = ChatModelSpec.model_validate({"model": {"id": "m"}, "autoscaling": {"maxReplicas": 3}})
    policy = Policy.from_spec(spec)
    assert (policy.target, policy.min_replicas, policy.down_window_s, policy.up_window_s) == (8, 1, 300, 0)
    small = {"model": {"id": "m"}, "serving": {"maxBatchSize": 1}, "autoscaling": {"maxReplicas": 3}}
    assert Policy.from_spec(ChatModelSpec.model_validate(small)).target == 1
    explicit = {"model": {"id": "m"}, "autoscaling": {"maxReplicas": 3, "targetRequestsPerReplica": 3}}
    assert Policy.from_spec(ChatModelSpec.model_validate(explicit)).target == 3


def test_a_model_woken_by_someone_else_gets_its_whole_idle_delay_before_sleeping_again() -> None:
    policy = _policy(min_replicas=0, scale_to_zero_after_s=60)
    history = History.starting_at(0, 0)
    assert decide(policy, Observation(0, ()), history, 0).replicas == 0
    assert decide(policy, Observation(0, ()), history, 500).replicas == 0  # long asleep
    # kubectl scale --replicas=1 (or a frontend) wakes it; no load is visible yet while the pod starts.
    assert decide(policy, Observation(1, ()), history, 501).replicas == 1
    assert decide(policy, Observation(1, (0,)), history, 560).replicas == 1
    assert decide(policy, Observation(1, (0,)), history, 562).replicas == 0
