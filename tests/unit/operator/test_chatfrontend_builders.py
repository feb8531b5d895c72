"""The ChatFrontend builders follow the frontend's env contract (docs/contracts.md)."""

from __future__ import annotations

import base64
import json

from kubechat_operator.builders import build_frontend_children
from kubechat_operator.builders.chatfrontend import build_session_secret
from kubechat_operator.builders.common import CHECKSUM_ANNOTATION
from kubechat_operator.config import OperatorConfig
from kubechat_operator.spec import ChatFrontendSpec, Resource

SPEC = {
    "models": [{"name": "godel"}, {"name": "llama", "default": True}],
    "title": "Chat",
    "personas": [{"name": "Mira", "character": "a blacksmith"}],
    "apiKeysSecretRef": {"name": "keys"},
    "adminKeySecretRef": {"name": "admin"},
    "store": {"url": "redis://redis:6379/0", "passwordSecretRef": {"name": "redis"}},
}


def _children(owner: Resource, config: OperatorConfig, spec: dict) -> dict:
    children = build_frontend_children(owner, ChatFrontendSpec.model_validate(spec), config)
    return {c["kind"]: c for c in children}


def test_config_map_points_at_each_model_service(frontend_owner: Resource, config: OperatorConfig) -> None:
    data = _children(frontend_owner, config, SPEC)["ConfigMap"]["data"]
    assert json.loads(data["KUBECHAT_FRONTEND_MODELS"]) == [
        {"name": "godel", "url": "http://godel.chat.svc:8080", "default": False},
        {"name": "llama", "url": "http://llama.chat.svc:8080", "default": True},
    ]
    assert data["KUBECHAT_FRONTEND_TITLE"] == "Chat"
    assert json.loads(data["KUBECHAT_FRONTEND_PERSONAS"]) == [
        {"name": "Mira", "character": "a blacksmith", "world": "", "scratchpad": False}
    ]
    assert data["KUBECHAT_FRONTEND_STORE"] == "redis://redis:6379/0"
    assert data["KUBECHAT_FRONTEND_RATE_LIMIT"] == "60"
    assert data["KUBECHAT_FRONTEND_API_KEYS_FILE"] == "/etc/kubechat/api-keys/keys"
    assert data["KUBECHAT_FRONTEND_PORT"] == "8080"
    assert data["KUBECHAT_FRONTEND_COOKIE_SECURE"] == "true"
    assert data["KUBECHAT_FRONTEND_TRUSTED_PROXIES"] == "0"
    assert data["KUBECHAT_FRONTEND_RETENTION_DAYS"] == "0"


def test_plain_http_exposure_turns_secure_cookies_off(
    frontend_owner: Resource, config: OperatorConfig
) -> None:
    spec = {**SPEC, "service": {"type": "NodePort"}, "secureCookies": False}
    data = _children(frontend_owner, config, spec)["ConfigMap"]["data"]
    assert data["KUBECHAT_FRONTEND_COOKIE_SECURE"] == "false"


def test_probes_use_the_frontends_own_health_so_a_model_outage_keeps_the_page_reachable(
    frontend_owner: Resource, config: OperatorConfig
) -> None:
    container = _children(frontend_owner, config, SPEC)["Deployment"]["spec"]["template"]["spec"][
        "containers"
    ][0]
    assert container["livenessProbe"]["httpGet"] == {"path": "/health", "port": "http"}
    assert container["readinessProbe"]["httpGet"] == {"path": "/health", "port": "http"}


def test_first_model_is_the_default_when_none_is_marked(
    frontend_owner: Resource, config: OperatorConfig
) -> None:
    data = _children(frontend_owner, config, {"models": [{"name": "a"}, {"name": "b"}]})["ConfigMap"]["data"]
    assert [m["default"] for m in json.loads(data["KUBECHAT_FRONTEND_MODELS"])] == [True, False]


def test_secrets_reach_the_pod_as_env_and_a_keys_file(
    frontend_owner: Resource, config: OperatorConfig
) -> None:
    pod = _children(frontend_owner, config, SPEC)["Deployment"]["spec"]["template"]["spec"]
    env = {e["name"]: e.get("valueFrom") for e in pod["containers"][0]["env"]}
    assert env["KUBECHAT_FRONTEND_STORE_PASSWORD"] == {"secretKeyRef": {"name": "redis", "key": "password"}}
    assert env["KUBECHAT_FRONTEND_ADMIN_KEY"] == {"secretKeyRef": {"name": "admin", "key": "admin-key"}}
    keys = next(v for v in pod["volumes"] if v["name"] == "api-keys")
    assert keys["secret"] == {"secretName": "keys", "items": [{"key": "keys", "path": "keys"}]}
    assert pod["containers"][0]["securityContext"]["readOnlyRootFilesystem"] is True


def test_node_port_service(frontend_owner: Resource, config: OperatorConfig) -> None:
    spec = {**SPEC, "service": {"type": "NodePort", "port": 80, "nodePort": 30080}}
    svc = _children(frontend_owner, config, spec)["Service"]
    assert svc["spec"]["type"] == "NodePort"
    assert svc["spec"]["ports"][0] == {
        "name": "http",
        "port": 80,
        "targetPort": "http",
        "protocol": "TCP",
        "nodePort": 30080,
    }


def test_title_change_rolls_the_pods(frontend_owner: Resource, config: OperatorConfig) -> None:
    def checksum(spec: dict) -> str:
        template = _children(frontend_owner, config, spec)["Deployment"]["spec"]["template"]
        return template["metadata"]["annotations"][CHECKSUM_ANNOTATION]

    assert checksum({**SPEC, "title": "Other"}) != checksum(SPEC)
    assert checksum({**SPEC, "replicas": 3}) == checksum(SPEC)


def test_autoscaling_adds_an_hpa(frontend_owner: Resource, config: OperatorConfig) -> None:
    children = _children(frontend_owner, config, {**SPEC, "autoscaling": {"maxReplicas": 3}})
    assert children["HorizontalPodAutoscaler"]["spec"]["scaleTargetRef"]["kind"] == "ChatFrontend"
    assert "behavior" not in children["HorizontalPodAutoscaler"]["spec"]  # the HPA's defaults
    assert "HorizontalPodAutoscaler" not in _children(frontend_owner, config, SPEC)


def _container_env(children: dict) -> dict:
    container = children["Deployment"]["spec"]["template"]["spec"]["containers"][0]
    return {e["name"]: e.get("valueFrom") for e in container["env"]}


def test_without_a_named_secret_key_every_pod_signs_with_the_operators_session_secret(
    frontend_owner: Resource, config: OperatorConfig
) -> None:
    env = _container_env(_children(frontend_owner, config, SPEC))
    assert env["KUBECHAT_FRONTEND_SECRET_KEY"] == {
        "secretKeyRef": {"name": f"{frontend_owner.name}-session", "key": "secret-key"}
    }
    secret = build_session_secret(frontend_owner, "k3y")
    assert secret["metadata"]["name"] == f"{frontend_owner.name}-session"
    assert base64.b64decode(secret["data"]["secret-key"]) == b"k3y"
    assert secret["metadata"]["ownerReferences"][0]["uid"] == frontend_owner.uid


def test_a_named_secret_key_is_used_as_is(frontend_owner: Resource, config: OperatorConfig) -> None:
    spec = {**SPEC, "secretKeySecretRef": {"name": "mine", "key": "k"}}
    env = _container_env(_children(frontend_owner, config, spec))
    assert env["KUBECHAT_FRONTEND_SECRET_KEY"] == {"secretKeyRef": {"name": "mine", "key": "k"}}


def test_sqlite_history_lives_on_a_claim_and_pods_are_recreated_not_overlapped(
    frontend_owner: Resource, config: OperatorConfig
) -> None:
    children = _children(frontend_owner, config, {"models": [{"name": "a"}], "store": {"size": "2Gi"}})
    claim = children["PersistentVolumeClaim"]
    assert claim["metadata"]["name"] == f"{frontend_owner.name}-history"
    assert claim["spec"]["resources"]["requests"]["storage"] == "2Gi"
    deployment = children["Deployment"]["spec"]
    volumes = {v["name"]: v for v in deployment["template"]["spec"]["volumes"]}
    assert volumes["data"]["persistentVolumeClaim"] == {"claimName": claim["metadata"]["name"]}
    assert deployment["strategy"] == {"type": "Recreate"}


def test_shared_stores_need_no_claim_and_roll_pods(frontend_owner: Resource, config: OperatorConfig) -> None:
    children = _children(frontend_owner, config, SPEC)
    assert "PersistentVolumeClaim" not in children
    assert children["Deployment"]["spec"]["strategy"] == {"type": "RollingUpdate"}


def test_trusted_proxy_hops_and_retention_reach_the_frontend(
    frontend_owner: Resource, config: OperatorConfig
) -> None:
    spec = {**SPEC, "trustedProxies": 2, "store": {**SPEC["store"], "retentionDays": 30}}
    data = _children(frontend_owner, config, spec)["ConfigMap"]["data"]
    assert (data["KUBECHAT_FRONTEND_TRUSTED_PROXIES"], data["KUBECHAT_FRONTEND_RETENTION_DAYS"]) == (
        "2",
        "30",
    )


def test_a_throwaway_sqlite_store_uses_an_empty_dir_and_no_claim(
    frontend_owner: Resource, config: OperatorConfig
) -> None:
    spec = {"models": [{"name": "a"}], "store": {"volume": "EmptyDir"}}
    children = _children(frontend_owner, config, spec)
    assert "PersistentVolumeClaim" not in children
    volumes = {v["name"]: v for v in children["Deployment"]["spec"]["template"]["spec"]["volumes"]}
    assert volumes["data"] == {"name": "data", "emptyDir": {}}
