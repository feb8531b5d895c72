"""Drift: a child that lost one of our fields (or was deleted) is re-applied; server defaults are not."""

from __future__ import annotations

import copy

from kubechat_operator.apply import drifted_children
from kubechat_operator.builders import build_model_children
from kubechat_operator.config import OperatorConfig
from kubechat_operator.spec import ChatModelSpec, Resource


def _desired(model_owner: Resource) -> list[dict]:
    return build_model_children(
        model_owner, ChatModelSpec.model_validate({"model": {"id": "m"}}), OperatorConfig()
    )


def _as_served(manifest: dict) -> dict:
    """The child as the apiserver returns it: our fields plus defaults and bookkeeping."""
    served = copy.deepcopy(manifest)
    served["metadata"].update({"uid": "x", "resourceVersion": "7", "managedFields": []})
    if served["kind"] == "Deployment":
        served["spec"]["revisionHistoryLimit"] = 10
        served["spec"]["template"]["spec"]["containers"][0]["terminationMessagePath"] = "/dev/termination-log"
        served["status"] = {"readyReplicas": 1}
    return served


def test_an_untouched_child_with_server_defaults_is_not_drift(model_owner: Resource) -> None:
    desired = _desired(model_owner)
    seen = {(m["kind"], m["metadata"]["name"]): _as_served(m) for m in desired}
    assert drifted_children(desired, seen) == set()


def test_edited_and_deleted_children_are_drift(model_owner: Resource) -> None:
    desired = _desired(model_owner)
    deployment = _as_served(next(m for m in desired if m["kind"] == "Deployment"))
    deployment["spec"]["template"]["spec"]["containers"][0]["image"] = "evil/image"
    config = _as_served(next(m for m in desired if m["metadata"]["name"] == "godel-config"))
    config["data"]["KUBECHAT_INSTRUCTION"] = "be rude"
    seen = {
        ("Deployment", "godel"): deployment,
        ("ConfigMap", "godel-config"): config,
        ("Service", "godel"): None,
    }
    assert drifted_children(desired, seen) == {
        ("Deployment", "godel"),
        ("ConfigMap", "godel-config"),
        ("Service", "godel"),
    }
