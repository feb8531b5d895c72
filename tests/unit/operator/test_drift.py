"""Drift: a child that lost one of our fields, was deleted or gained a foreign pod-template field is
re-applied; server defaults and canonical quantities are not drift."""

from __future__ import annotations

import copy

from kubechat_operator.apply import drifted_children
from kubechat_operator.builders import build_model_children
from kubechat_operator.config import OperatorConfig
from kubechat_operator.drift import foreign_fields
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
    assert drifted_children(desired, seen) == []


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
    assert {(m["kind"], m["metadata"]["name"]) for m in drifted_children(desired, seen)} == {
        ("Deployment", "godel"),
        ("ConfigMap", "godel-config"),
        ("Service", "godel"),
    }


def test_quantities_in_canonical_form_are_not_drift(model_owner: Resource) -> None:
    spec = ChatModelSpec.model_validate(
        {"model": {"id": "m"}, "resources": {"requests": {"cpu": "0.5", "memory": "1024Mi"}}}
    )
    (deployment,) = [
        m for m in build_model_children(model_owner, spec, OperatorConfig()) if m["kind"] == "Deployment"
    ]
    served = _as_served(deployment)
    served["spec"]["template"]["spec"]["containers"][0]["resources"]["requests"] = {
        "cpu": "500m",
        "memory": "1Gi",
    }
    assert drifted_children([deployment], {("Deployment", "godel"): served}) == []
    served["spec"]["template"]["spec"]["containers"][0]["resources"]["requests"]["cpu"] = "1"
    assert drifted_children([deployment], {("Deployment", "godel"): served}) == [deployment]


def _managed(manager: str, fields: dict) -> dict:
    return {"manager": manager, "operation": "Update", "fieldsV1": fields}


def test_a_pod_template_field_another_manager_added_is_foreign_and_drift(model_owner: Resource) -> None:
    desired = _desired(model_owner)
    deployment = next(m for m in desired if m["kind"] == "Deployment")
    served = _as_served(deployment)
    served["spec"]["template"]["spec"]["hostNetwork"] = True
    served["spec"]["template"]["spec"]["containers"][0]["securityContext"]["privileged"] = True
    container_key = 'k:{"name":"model-server"}'
    served["metadata"]["managedFields"] = [
        _managed(
            "kubechat-operator",
            {
                "f:spec": {
                    "f:template": {
                        "f:spec": {
                            "f:containers": {
                                container_key: {
                                    "f:image": {},
                                    "f:securityContext": {"f:readOnlyRootFilesystem": {}},
                                }
                            }
                        }
                    }
                }
            },
        ),
        _managed(
            "kubectl-edit",
            {
                "f:spec": {
                    "f:template": {
                        "f:spec": {
                            "f:hostNetwork": {},
                            "f:containers": {container_key: {"f:securityContext": {"f:privileged": {}}}},
                        },
                        "f:metadata": {"f:annotations": {"f:kubectl.kubernetes.io/restartedAt": {}}},
                    }
                }
            },
        ),
        _managed("kube-controller-manager", {"f:status": {"f:replicas": {}}}) | {"subresource": "status"},
    ]
    assert foreign_fields(served) == [
        "/spec/template/spec/containers/0/securityContext/privileged",
        "/spec/template/spec/hostNetwork",
    ]
    assert drifted_children([deployment], {("Deployment", "godel"): served}) == [deployment]


def test_a_foreign_list_item_is_removed_whole_and_later_items_first(model_owner: Resource) -> None:
    deployment = next(m for m in _desired(model_owner) if m["kind"] == "Deployment")
    served = _as_served(deployment)
    container = served["spec"]["template"]["spec"]["containers"][0]
    ours = len(container["env"])
    container["env"] += [{"name": "FOO", "value": "1"}, {"name": "BAR", "value": "2"}]
    key = 'k:{"name":"model-server"}'

    def env_item(name: str) -> dict:
        return {f'k:{{"name":"{name}"}}': {".": {}, "f:name": {}, "f:value": {}}}

    served["metadata"]["managedFields"] = [
        _managed(
            "kubechat-operator",
            {"f:spec": {"f:template": {"f:spec": {"f:containers": {key: {"f:env": env_item("POD_NAME")}}}}}},
        ),
        _managed(
            "kubectl-set",
            {
                "f:spec": {
                    "f:template": {
                        "f:spec": {"f:containers": {key: {"f:env": {**env_item("FOO"), **env_item("BAR")}}}}
                    }
                }
            },
        ),
    ]
    assert foreign_fields(served) == [
        f"/spec/template/spec/containers/0/env/{ours + 1}",
        f"/spec/template/spec/containers/0/env/{ours}",
    ]
