"""The operator never touches what it did not create, and says so when it refuses; every refused request
shows in status with the apiserver's words and is retried with a growing delay."""

from __future__ import annotations

import re

import pytest
from operator_harness import Kubectl, OperatorProcess, wait_until

pytestmark = [pytest.mark.controlplane, pytest.mark.slow]

MODEL = """
apiVersion: kubechat.dev/v1alpha1
kind: ChatModel
metadata: {name: %(name)s}
spec:
  model: {id: microsoft/GODEL-v1_1-base-seq2seq}
"""
FRONTEND = """
apiVersion: kubechat.dev/v1alpha1
kind: ChatFrontend
metadata: {name: %(name)s}
spec:
  models: [{name: %(model)s}]
  store: {volume: EmptyDir}  # this control plane has no storage provisioner for the history claim
"""
USER_SERVICE = """
apiVersion: v1
kind: Service
metadata: {name: godel, labels: {team: search}}
spec:
  selector: {app: search}
  ports: [{port: 9200}]
"""


def _controller(kubectl: Kubectl, resource: str, name: str) -> tuple[str, str] | None:
    refs = (kubectl.get(resource, name) or {}).get("metadata", {}).get("ownerReferences") or []
    return next(((r["kind"], r["name"]) for r in refs if r.get("controller")), None)


def _events(kubectl: Kubectl, kind: str, name: str) -> list[dict]:
    return [
        e
        for e in kubectl.items("events")
        if e["involvedObject"]["kind"] == kind and e["involvedObject"]["name"] == name
    ]


def test_a_chatmodel_and_a_chatfrontend_of_one_name_each_get_their_own_children(
    kubectl: Kubectl, operator: OperatorProcess
) -> None:
    kubectl.apply(MODEL % {"name": "foo"})
    kubectl.apply(FRONTEND % {"name": "foo", "model": "foo"})
    kubectl.wait_phase("chatmodel", "foo", "Ready")
    kubectl.wait_phase("chatfrontend", "foo", "Ready")
    for resource in ("deployment", "service"):
        assert _controller(kubectl, resource, "foo") == ("ChatModel", "foo")
        assert _controller(kubectl, resource, "foo-frontend") == ("ChatFrontend", "foo")
    assert _controller(kubectl, "configmap", "foo-config") == ("ChatModel", "foo")
    assert _controller(kubectl, "configmap", "foo-frontend-config") == ("ChatFrontend", "foo")

    # Deleting one kind's resource leaves the other's children alone (the garbage collector follows uids;
    # it may first need its periodic discovery resync, up to 30 s, to learn CRDs installed just before).
    kubectl("delete", "chatfrontend", "foo", "--wait=true")
    wait_until(lambda: kubectl.get("deployment", "foo-frontend") is None, 90, "frontend children collected")
    assert kubectl.get("configmap", "foo-config") is not None
    assert kubectl.status("chatmodel", "foo")["phase"] == "Ready"


def test_a_chatmodel_name_ending_in_the_frontend_suffix_is_rejected_at_apply(kubectl: Kubectl) -> None:
    result = kubectl("apply", "-f", "-", input=MODEL % {"name": "shop-frontend"}, check=False)
    assert result.returncode != 0 and "must not end in '-frontend'" in result.stderr, result.stderr


def test_a_users_service_of_the_same_name_is_never_adopted_changed_or_deleted(
    kubectl: Kubectl, operator: OperatorProcess
) -> None:
    kubectl.apply(USER_SERVICE)
    before = kubectl.get("service", "godel")
    kubectl.apply(MODEL % {"name": "godel"})
    status = kubectl.wait_phase("chatmodel", "godel", "Failed")
    assert status["reason"] == "Conflict"
    assert "Service 'godel' already exists" in status["message"]
    ready = {c["type"]: c for c in status["conditions"]}["Ready"]
    assert (ready["status"], ready["reason"]) == ("False", "Conflict")
    conflict = wait_until(
        lambda: [e for e in _events(kubectl, "ChatModel", "godel") if e["reason"] == "Conflict"],
        30,
        "a Conflict event",
    )
    assert conflict[0]["type"] == "Warning" and "Service 'godel'" in conflict[0]["message"]
    # Nothing of the model was applied either, not even the children that did not conflict.
    assert kubectl.get("deployment", "godel") is None

    kubectl("delete", "chatmodel", "godel", "--wait=true")
    after = kubectl.get("service", "godel")
    assert after is not None, "the user's Service was deleted with the ChatModel"
    assert after["metadata"].get("ownerReferences") is None
    assert after["spec"]["selector"] == before["spec"]["selector"] == {"app": "search"}
    assert after["metadata"]["resourceVersion"] == before["metadata"]["resourceVersion"]


def test_a_child_of_another_chatmodel_is_a_conflict_not_a_takeover(
    kubectl: Kubectl, operator: OperatorProcess
) -> None:
    """A ConfigMap made by ChatModel `a` that ChatModel `b` would also want (simulated with a ConfigMap named
    like b's config, controlled by a) stays a's: b reports the conflict instead of re-applying it forever."""
    kubectl.apply(MODEL % {"name": "a"})
    kubectl.wait_phase("chatmodel", "a", "Ready")
    owner = kubectl.get("chatmodel", "a")["metadata"]
    kubectl.apply(
        f"""
apiVersion: v1
kind: ConfigMap
metadata:
  name: b-config
  ownerReferences:
    - {{apiVersion: kubechat.dev/v1alpha1, kind: ChatModel, name: a, uid: {owner["uid"]}, controller: true}}
data: {{KEEP: me}}
"""
    )
    kubectl.apply(MODEL % {"name": "b"})
    status = kubectl.wait_phase("chatmodel", "b", "Failed")
    assert "controlled by ChatModel 'a'" in status["message"]
    assert kubectl.get("configmap", "b-config")["data"] == {"KEEP": "me"}


def test_a_quota_refusal_shows_in_status_with_the_apis_message_and_is_retried_with_backoff(
    kubectl: Kubectl, operator: OperatorProcess
) -> None:
    kubectl.apply(
        "apiVersion: v1\nkind: ResourceQuota\nmetadata: {name: no-services}\nspec: {hard: {services: '0'}}\n"
    )
    wait_until(
        lambda: (kubectl.get("resourcequota", "no-services").get("status") or {}).get("hard"),
        30,
        "the quota controller to fill in the quota's status",
    )
    kubectl.apply(MODEL % {"name": "godel"})
    status = kubectl.wait_phase("chatmodel", "godel", "Failed")
    assert status["reason"] == "QuotaExceeded"
    assert "applying Service godel: HTTP 403" in status["message"]
    assert "exceeded quota: no-services" in status["message"]
    wait_until(
        lambda: any(e["reason"] == "QuotaExceeded" for e in _events(kubectl, "ChatModel", "godel")),
        30,
        "a QuotaExceeded event",
    )
    # Retries wait longer and longer (1 s, 2 s, 4 s ...), not a fixed period.
    retry = re.compile(r"godel: applying Service godel: .*; retrying in (\d+)s")

    def logged_delays() -> list[float]:
        found = [float(d) for d in retry.findall(operator.log_path.read_text(errors="replace"))]
        return found if len(found) >= 3 else []

    delays = wait_until(logged_delays, 30, "three retries in the operator's log")
    assert delays[:3] == [1.0, 2.0, 4.0], delays

    kubectl("delete", "resourcequota", "no-services")
    kubectl.wait_phase("chatmodel", "godel", "Ready", timeout=60)
