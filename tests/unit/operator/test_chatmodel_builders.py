"""The ChatModel builders turn a spec into the children the contracts ask for (docs/contracts.md)."""

from __future__ import annotations

import json

from kubechat_operator.builders import build_model_children
from kubechat_operator.builders.chatmodel import build_deployment, server_env
from kubechat_operator.builders.common import CHECKSUM_ANNOTATION
from kubechat_operator.config import OperatorConfig
from kubechat_operator.spec import ChatModelSpec, Resource

GODEL = {"model": {"id": "microsoft/GODEL-v1_1-base-seq2seq"}}
LLAMA = {
    "model": {"id": "meta-llama/Llama-2-7b-chat-hf", "tokenSecretRef": {"name": "hf-token", "key": "token"}},
    "resources": {"gpu": {"count": 1}, "requests": {"cpu": "4", "memory": "24Gi"}},
}


def _container(deployment: dict) -> dict:
    return deployment["spec"]["template"]["spec"]["containers"][0]


def test_children_are_owned_by_the_chatmodel_and_labelled(
    config: OperatorConfig, model_owner: Resource, by_kind
) -> None:
    children = build_model_children(model_owner, ChatModelSpec.model_validate(GODEL), config)
    assert sorted(c["kind"] for c in children) == sorted(
        [
            "ConfigMap",
            "ConfigMap",
            "ServiceAccount",
            "Role",
            "RoleBinding",
            "Deployment",
            "Service",
            "NetworkPolicy",
        ]
    )
    for child in children:
        (owner,) = child["metadata"]["ownerReferences"]
        assert owner == {
            "apiVersion": "kubechat.dev/v1alpha1",
            "kind": "ChatModel",
            "name": "godel",
            "uid": "uid-godel",
            "controller": True,
            "blockOwnerDeletion": True,
        }
        assert child["metadata"]["namespace"] == "chat"
        assert child["metadata"]["labels"]["kubechat.dev/chatmodel"] == "godel"
        assert child["metadata"]["labels"]["app.kubernetes.io/managed-by"] == "kubechat-operator"


def test_config_map_carries_the_env_contract(config: OperatorConfig, model_owner: Resource, by_kind) -> None:
    spec = ChatModelSpec.model_validate(
        {
            **GODEL,
            "prompt": {
                "instruction": "respond empathically",
                "knowledge": "kb",
                "persona": {"character": "Mira"},
            },
            "generation": {
                "maxNewTokens": 64,
                "temperature": 0.5,
                "topP": 0.9,
                "doSample": True,
                "stop": ["User:"],
            },
            "serving": {"maxBatchSize": 4},
        }
    )
    data = by_kind(build_model_children(model_owner, spec, config))["godel-config"]["data"]
    assert data["KUBECHAT_MODEL_ID"] == "microsoft/GODEL-v1_1-base-seq2seq"
    assert data["KUBECHAT_SERVED_MODEL_NAME"] == "godel"
    assert data["KUBECHAT_ARCHITECTURE"] == "auto"
    assert data["KUBECHAT_PROMPT_FORMAT"] == "auto"
    assert data["KUBECHAT_INSTRUCTION"] == "respond empathically"
    assert data["KUBECHAT_KNOWLEDGE"] == "kb"
    assert data["KUBECHAT_PERSONA_CHARACTER"] == "Mira"
    assert data["KUBECHAT_PERSONA_SCRATCHPAD"] == "false"
    assert data["KUBECHAT_MAX_NEW_TOKENS"] == "64"
    assert data["KUBECHAT_TEMPERATURE"] == "0.5"
    assert data["KUBECHAT_TOP_P"] == "0.9"
    assert data["KUBECHAT_DO_SAMPLE"] == "true"
    assert json.loads(data["KUBECHAT_STOP"]) == ["User:"]
    assert data["KUBECHAT_MAX_BATCH_SIZE"] == "4"
    assert data["KUBECHAT_PORT"] == "8080"
    assert data["KUBECHAT_PROGRESS_CONFIGMAP"] == "godel-progress"
    assert all(isinstance(v, str) for v in data.values())


def test_unset_generation_settings_are_left_to_the_model_family(
    config: OperatorConfig, model_owner: Resource, by_kind
) -> None:
    data = server_env(model_owner, ChatModelSpec.model_validate(GODEL))
    assert not {
        "KUBECHAT_MAX_NEW_TOKENS",
        "KUBECHAT_TEMPERATURE",
        "KUBECHAT_TOP_P",
        "KUBECHAT_DO_SAMPLE",
    } & set(data)


def test_gpu_is_requested_and_limited_with_a_toleration_and_a_single_replica_surges(
    config: OperatorConfig, model_owner: Resource, by_kind
) -> None:
    deployment = build_deployment(model_owner, ChatModelSpec.model_validate(LLAMA), config)
    container = _container(deployment)
    assert container["resources"] == {
        "requests": {"cpu": "4", "memory": "24Gi", "nvidia.com/gpu": "1"},
        "limits": {"nvidia.com/gpu": "1"},
    }
    pod = deployment["spec"]["template"]["spec"]
    assert {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"} in pod["tolerations"]
    # One replica: the old pod keeps serving until the new one is ready (no downtime on a prompt edit).
    assert deployment["spec"]["strategy"]["rollingUpdate"] == {"maxSurge": 1, "maxUnavailable": 0}


def test_several_gpu_replicas_are_replaced_one_at_a_time_without_a_spare_gpu(
    config: OperatorConfig, model_owner: Resource
) -> None:
    deployment = build_deployment(model_owner, ChatModelSpec.model_validate({**LLAMA, "replicas": 3}), config)
    assert deployment["spec"]["strategy"]["rollingUpdate"] == {"maxSurge": 0, "maxUnavailable": 1}


def test_gpu_resource_name_is_configurable(config: OperatorConfig, model_owner: Resource, by_kind) -> None:
    spec = ChatModelSpec.model_validate(
        {**GODEL, "resources": {"gpu": {"count": 2, "resourceName": "amd.com/gpu"}}}
    )
    container = _container(build_deployment(model_owner, spec, config))
    assert container["resources"]["limits"] == {"amd.com/gpu": "2"}


def test_cpu_model_has_no_gpu_and_no_gpu_toleration(
    config: OperatorConfig, model_owner: Resource, by_kind
) -> None:
    deployment = build_deployment(model_owner, ChatModelSpec.model_validate(GODEL), config)
    assert "resources" not in _container(deployment) or not _container(deployment)["resources"]
    assert "tolerations" not in deployment["spec"]["template"]["spec"]


def test_probes_follow_the_contract_with_the_startup_budget(
    config: OperatorConfig, model_owner: Resource, by_kind
) -> None:
    spec = ChatModelSpec.model_validate({**GODEL, "startupBudget": "1h30m"})
    container = _container(build_deployment(model_owner, spec, config))
    assert container["livenessProbe"]["httpGet"] == {"path": "/health", "port": "http"}
    assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http"}
    startup = container["startupProbe"]
    assert startup["httpGet"] == {"path": "/health", "port": "http"}
    assert startup["periodSeconds"] * startup["failureThreshold"] == 5400


def test_pod_env_has_downward_api_token_and_config(
    config: OperatorConfig, model_owner: Resource, by_kind
) -> None:
    container = _container(build_deployment(model_owner, ChatModelSpec.model_validate(LLAMA), config))
    env = {e["name"]: e for e in container["env"]}
    assert env["POD_NAME"]["valueFrom"] == {"fieldRef": {"fieldPath": "metadata.name"}}
    assert env["POD_NAMESPACE"]["valueFrom"] == {"fieldRef": {"fieldPath": "metadata.namespace"}}
    assert env["NODE_NAME"]["valueFrom"] == {"fieldRef": {"fieldPath": "spec.nodeName"}}
    assert env["HF_TOKEN"]["valueFrom"] == {"secretKeyRef": {"name": "hf-token", "key": "token"}}
    assert env["HF_HOME"]["value"] == "/cache"
    assert container["envFrom"] == [{"configMapRef": {"name": "godel-config"}}]


def test_extra_env_is_appended_and_overrides_ours_by_name(
    config: OperatorConfig, model_owner: Resource, by_kind
) -> None:
    spec = ChatModelSpec.model_validate(
        {**GODEL, "env": [{"name": "HF_HOME", "value": "/x"}, {"name": "A", "value": "1"}]}
    )
    env = _container(build_deployment(model_owner, spec, config))["env"]
    assert [e["name"] for e in env].count("HF_HOME") == 1
    assert env[-2:] == [{"name": "HF_HOME", "value": "/x"}, {"name": "A", "value": "1"}]


def test_pods_run_non_root_with_read_only_root_and_writable_tmp_and_cache(
    config: OperatorConfig, model_owner: Resource, by_kind
) -> None:
    pod = build_deployment(model_owner, ChatModelSpec.model_validate(GODEL), config)["spec"]["template"][
        "spec"
    ]
    container = pod["containers"][0]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert container["securityContext"]["allowPrivilegeEscalation"] is False
    assert {m["mountPath"] for m in container["volumeMounts"]} == {"/tmp", "/cache"}
    assert {"name": "cache", "emptyDir": {}} in pod["volumes"]
    assert pod["serviceAccountName"] == "godel-model-server"


def test_scheduling_fields_and_image_override_reach_the_pod(
    config: OperatorConfig, model_owner: Resource, by_kind
) -> None:
    spec = ChatModelSpec.model_validate(
        {
            **GODEL,
            "nodeSelector": {"gpu": "a100"},
            "tolerations": [{"key": "dedicated", "operator": "Equal", "value": "ml", "effect": "NoSchedule"}],
            "affinity": {"nodeAffinity": {"x": 1}},
            "runtimeClassName": "nvidia",
            "image": "registry.example/model-server:dev",
            "imagePullSecrets": [{"name": "regcred"}],
        }
    )
    pod = build_deployment(model_owner, spec, config)["spec"]["template"]["spec"]
    assert pod["nodeSelector"] == {"gpu": "a100"}
    assert pod["tolerations"][0]["key"] == "dedicated"
    assert pod["affinity"] == {"nodeAffinity": {"x": 1}}
    assert pod["runtimeClassName"] == "nvidia"
    assert pod["imagePullSecrets"] == [{"name": "regcred"}]
    assert pod["containers"][0]["image"] == "registry.example/model-server:dev"


def test_default_image_comes_from_the_operator_config(model_owner: Resource) -> None:
    deployment = build_deployment(
        model_owner, ChatModelSpec.model_validate(GODEL), OperatorConfig(model_server_image="x/y:1")
    )
    assert _container(deployment)["image"] == "x/y:1"
    assert _container(build_deployment(model_owner, ChatModelSpec.model_validate(GODEL), OperatorConfig()))[
        "image"
    ] == ("kubechat/model-server:0.1.0")


def test_config_change_changes_the_checksum_but_replica_change_does_not(
    config: OperatorConfig, model_owner: Resource, by_kind
) -> None:
    def checksum(spec: dict) -> str:
        deployment = build_deployment(model_owner, ChatModelSpec.model_validate(spec), config)
        return deployment["spec"]["template"]["metadata"]["annotations"][CHECKSUM_ANNOTATION]

    base = checksum(GODEL)
    assert checksum({**GODEL, "replicas": 3}) == base
    assert checksum({**GODEL, "generation": {"temperature": 0.1}}) != base
    assert checksum({**GODEL, "prompt": {"instruction": "be brief"}}) != base


def test_progress_rbac_allows_only_get_and_patch_on_the_progress_config_map(
    config: OperatorConfig, model_owner: Resource, by_kind
) -> None:
    children = build_model_children(model_owner, ChatModelSpec.model_validate(GODEL), config)
    kinds = by_kind(children)
    assert kinds["Role"]["rules"] == [
        {
            "apiGroups": [""],
            "resources": ["configmaps"],
            "resourceNames": ["godel-progress"],
            "verbs": ["get", "patch"],
        }
    ]
    assert kinds["RoleBinding"]["subjects"] == [
        {"kind": "ServiceAccount", "name": "godel-model-server", "namespace": "chat"}
    ]
    assert "data" not in kinds["godel-progress"]  # the pods own the data keys


def test_request_autoscaling_makes_no_hpa(config: OperatorConfig, model_owner: Resource, by_kind) -> None:
    spec = ChatModelSpec.model_validate({**GODEL, "autoscaling": {"minReplicas": 0, "maxReplicas": 4}})
    assert spec.autoscaling is not None and spec.autoscaling.metric == "requests"  # the default
    assert "HorizontalPodAutoscaler" not in by_kind(build_model_children(model_owner, spec, config))


def test_cpu_autoscaling_adds_an_hpa_that_scales_the_chatmodel(
    config: OperatorConfig, model_owner: Resource, by_kind
) -> None:
    autoscaling = {"metric": "cpu", "minReplicas": 1, "maxReplicas": 4}
    spec = ChatModelSpec.model_validate({**GODEL, "autoscaling": autoscaling})
    hpa = by_kind(build_model_children(model_owner, spec, config))["HorizontalPodAutoscaler"]
    assert hpa["apiVersion"] == "autoscaling/v2"
    assert hpa["spec"]["scaleTargetRef"] == {
        "apiVersion": "kubechat.dev/v1alpha1",
        "kind": "ChatModel",
        "name": "godel",
    }
    assert (hpa["spec"]["minReplicas"], hpa["spec"]["maxReplicas"]) == (1, 4)
    assert hpa["spec"]["metrics"][0]["resource"]["target"]["averageUtilization"] == 70
    assert hpa["spec"]["behavior"] == {  # the spec's defaults, which are the HPA's own
        "scaleUp": {"stabilizationWindowSeconds": 0},
        "scaleDown": {"stabilizationWindowSeconds": 300},
    }


def test_the_cpu_hpa_honours_the_chatmodels_stabilisation_windows(
    config: OperatorConfig, model_owner: Resource, by_kind
) -> None:
    autoscaling = {
        "metric": "cpu",
        "maxReplicas": 3,
        "scaleUpStabilizationSeconds": 20,
        "scaleDownStabilizationSeconds": 45,
    }
    spec = ChatModelSpec.model_validate({**GODEL, "autoscaling": autoscaling})
    hpa = by_kind(build_model_children(model_owner, spec, config))["HorizontalPodAutoscaler"]
    assert hpa["spec"]["behavior"] == {
        "scaleUp": {"stabilizationWindowSeconds": 20},
        "scaleDown": {"stabilizationWindowSeconds": 45},
    }


def test_a_read_write_many_cache_is_one_claim_shared_by_the_replicas(
    config: OperatorConfig, model_owner: Resource, by_kind
) -> None:
    spec = ChatModelSpec.model_validate(
        {**GODEL, "cache": {"size": "20Gi", "storageClassName": "fast", "accessMode": "ReadWriteMany"}}
    )
    kinds = by_kind(build_model_children(model_owner, spec, config))
    claim = kinds["PersistentVolumeClaim"]
    assert claim["metadata"]["name"] == "godel-cache"
    assert claim["spec"] == {
        "accessModes": ["ReadWriteMany"],
        "resources": {"requests": {"storage": "20Gi"}},
        "storageClassName": "fast",
    }
    volumes = kinds["Deployment"]["spec"]["template"]["spec"]["volumes"]
    assert {"name": "cache", "persistentVolumeClaim": {"claimName": "godel-cache"}} in volumes


def test_a_read_write_once_cache_is_one_claim_per_pod_so_replicas_never_multi_attach(
    config: OperatorConfig, model_owner: Resource, by_kind
) -> None:
    spec = ChatModelSpec.model_validate({**GODEL, "replicas": 4, "cache": {"size": "20Gi"}})
    kinds = by_kind(build_model_children(model_owner, spec, config))
    assert "PersistentVolumeClaim" not in kinds
    volumes = kinds["Deployment"]["spec"]["template"]["spec"]["volumes"]
    cache = next(v for v in volumes if v["name"] == "cache")
    template = cache["ephemeral"]["volumeClaimTemplate"]
    assert template["spec"] == {
        "accessModes": ["ReadWriteOnce"],
        "resources": {"requests": {"storage": "20Gi"}},
    }


def test_pvc_model_id_is_mounted_read_only_and_passed_as_a_path(
    config: OperatorConfig, model_owner: Resource, by_kind
) -> None:
    spec = ChatModelSpec.model_validate({"model": {"id": "pvc://weights/llama-2-7b"}})
    deployment = build_deployment(model_owner, spec, config)
    assert server_env(model_owner, spec)["KUBECHAT_MODEL_ID"] == "/models/weights/llama-2-7b"
    pod = deployment["spec"]["template"]["spec"]
    assert {"name": "model", "persistentVolumeClaim": {"claimName": "weights", "readOnly": True}} in pod[
        "volumes"
    ]
    assert {"name": "model", "mountPath": "/models/weights", "readOnly": True} in pod["containers"][0][
        "volumeMounts"
    ]


def test_gguf_file_in_a_pvc_reaches_the_server_beside_the_mounted_directory(
    config: OperatorConfig, model_owner: Resource
) -> None:
    spec = ChatModelSpec.model_validate({"model": {"id": "pvc://weights/smollm2", "file": "smol.Q4_1.gguf"}})
    env = server_env(model_owner, spec)
    assert (env["KUBECHAT_MODEL_ID"], env["KUBECHAT_MODEL_FILE"]) == (
        "/models/weights/smollm2",
        "smol.Q4_1.gguf",
    )
    assert "KUBECHAT_MODEL_FILE" not in server_env(model_owner, ChatModelSpec.model_validate(GODEL))


def test_knowledge_from_a_config_map_is_read_by_the_pod(
    config: OperatorConfig, model_owner: Resource, by_kind
) -> None:
    spec = ChatModelSpec.model_validate(
        {**GODEL, "prompt": {"knowledgeFrom": {"configMapKeyRef": {"name": "kb", "key": "text"}}}}
    )
    env = {e["name"]: e for e in _container(build_deployment(model_owner, spec, config))["env"]}
    assert env["KUBECHAT_KNOWLEDGE"]["valueFrom"] == {"configMapKeyRef": {"name": "kb", "key": "text"}}
    assert "KUBECHAT_KNOWLEDGE" not in server_env(model_owner, spec)


def test_service_is_cluster_ip_on_8080_named_after_the_model(
    config: OperatorConfig, model_owner: Resource, by_kind
) -> None:
    svc = by_kind(build_model_children(model_owner, ChatModelSpec.model_validate(GODEL), config))["Service"]
    assert svc["metadata"]["name"] == "godel"
    assert svc["spec"]["type"] == "ClusterIP"
    assert svc["spec"]["ports"] == [{"name": "http", "port": 8080, "targetPort": "http", "protocol": "TCP"}]
    assert svc["spec"]["selector"] == {
        "kubechat.dev/chatmodel": "godel",
        "app.kubernetes.io/component": "model-server",
    }


def test_engine_and_cpu_threads_reach_the_server_env(model_owner: Resource) -> None:
    assert server_env(model_owner, ChatModelSpec.model_validate(GODEL))["KUBECHAT_ENGINE"] == "auto"
    assert "KUBECHAT_TORCH_THREADS" not in server_env(model_owner, ChatModelSpec.model_validate(GODEL))
    assert server_env(model_owner, ChatModelSpec.model_validate(LLAMA))["KUBECHAT_TORCH_THREADS"] == "4"
    gguf = {
        "model": {"id": "pvc://weights/smollm2.Q4_1.gguf"},
        "engine": "llama.cpp",
        "resources": {"requests": {"cpu": "1500m"}},
    }
    env = server_env(model_owner, ChatModelSpec.model_validate(gguf))
    assert env["KUBECHAT_ENGINE"] == "llama.cpp"
    assert env["KUBECHAT_TORCH_THREADS"] == "2"
