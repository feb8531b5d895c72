"""Every refused request becomes a status reason with the apiserver's message; retries back off."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest
from kubernetes.client.rest import ApiException

from kubechat_operator.api_errors import api_error_blocker
from kubechat_operator.backoff import Backoff
from kubechat_operator.status import Observed, failure_status, workload_status

NOW = datetime(2026, 1, 1, tzinfo=UTC)


def _refusal(status: int, message: str) -> ApiException:
    body = json.dumps({"kind": "Status", "status": "Failure", "message": message, "code": status})
    return ApiException(status=status, reason="whatever", body=body)


@pytest.mark.parametrize(
    ("status", "message", "reason", "phase"),
    [
        (
            403,
            'services "godel" is forbidden: exceeded quota: q, requested: services=1, used: services=0, '
            "limited: services=0",
            "QuotaExceeded",
            "Failed",
        ),
        (403, 'deployments.apps "godel" is forbidden: User cannot patch', "Forbidden", "Failed"),
        (422, 'Deployment.apps "godel" is invalid: spec.template...', "InvalidChild", "Failed"),
        (429, "Too many requests, please try again later.", "TooManyRequests", "Degraded"),
        (500, "Internal error occurred: etcdserver: request timed out", "ApiServerError", "Degraded"),
        (503, "the server is currently unable to handle the request", "ApiServerError", "Degraded"),
    ],
)
def test_each_refusal_has_a_reason_a_phase_and_the_apiservers_message(
    status: int, message: str, reason: str, phase: str
) -> None:
    blocker = api_error_blocker(_refusal(status, message), "applying Service godel")
    assert (blocker.reason, blocker.phase, blocker.api_error) == (reason, phase, True)
    assert blocker.message == f"applying Service godel: HTTP {status}: {message}"


def test_a_refusal_without_a_status_body_keeps_the_http_reason() -> None:
    blocker = api_error_blocker(ApiException(status=502, reason="Bad Gateway"), "reconciling")
    assert blocker.message == "reconciling: HTTP 502: Bad Gateway"


def test_backoff_doubles_per_resource_up_to_the_cap_and_resets_on_success() -> None:
    backoff = Backoff(base_s=1.0, cap_s=10.0)
    assert [backoff.next_delay("a") for _ in range(6)] == [1, 2, 4, 8, 10, 10]
    assert backoff.next_delay("b") == 1  # another resource is not slowed by a's failures
    backoff.reset("a")
    assert backoff.next_delay("a") == 1


def test_a_refused_change_turns_a_ready_status_not_ready_with_the_message() -> None:
    ready = workload_status(
        Observed(
            desired=1,
            deployment={
                "metadata": {"generation": 1},
                "status": {"observedGeneration": 1, "readyReplicas": 1, "updatedReplicas": 1, "replicas": 1},
            },
        ),
        [],
        1,
        NOW,
    )
    assert ready["phase"] == "Ready"
    blocker = api_error_blocker(_refusal(429, "slow down"), "applying Deployment godel")
    failed = failure_status(ready, blocker, 2, NOW)
    assert (failed["phase"], failed["reason"], failed["observedGeneration"]) == (
        "Degraded",
        "TooManyRequests",
        2,
    )
    (condition,) = [c for c in failed["conditions"] if c["type"] == "Ready"]
    assert condition["status"] == "False"
    assert condition["reason"] == "TooManyRequests"
    assert "slow down" in condition["message"]
    assert failed["readyReplicas"] == 1  # what is still true is kept
