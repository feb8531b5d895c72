"""What the cluster reports about a resource: its referenced Secrets/ConfigMaps/claims, its workload."""

from __future__ import annotations

import base64

from kubechat_operator.kube import Kube, Manifest
from kubechat_operator.spec import ChatFrontendSpec, ChatModelSpec, ConfigMapKeyRef, SecretKeyRef
from kubechat_operator.status import Blocker, Observed


def _secret_blocker(kube: Kube, namespace: str, ref: SecretKeyRef, field: str) -> Blocker | None:
    secret = kube.get("Secret", namespace, ref.name)
    if secret is None:
        return Blocker("SecretNotFound", f"{field}: Secret {ref.name!r} not found in namespace {namespace!r}")
    if ref.key not in (secret.get("data") or {}) and ref.key not in (secret.get("stringData") or {}):
        return Blocker("SecretKeyNotFound", f"{field}: Secret {ref.name!r} has no key {ref.key!r}")
    if not base64.b64decode((secret.get("data") or {}).get(ref.key, "")).strip():
        return Blocker("SecretKeyEmpty", f"{field}: key {ref.key!r} of Secret {ref.name!r} is empty")
    return None


def _config_map_blocker(kube: Kube, namespace: str, ref: ConfigMapKeyRef, field: str) -> Blocker | None:
    config_map = kube.get("ConfigMap", namespace, ref.name)
    if config_map is None:
        return Blocker(
            "ConfigMapNotFound", f"{field}: ConfigMap {ref.name!r} not found in namespace {namespace!r}"
        )
    if ref.key not in (config_map.get("data") or {}):
        return Blocker("ConfigMapKeyNotFound", f"{field}: ConfigMap {ref.name!r} has no key {ref.key!r}")
    return None


def model_blocker(kube: Kube, namespace: str, spec: ChatModelSpec) -> Blocker | None:
    """The first unresolvable reference of a ChatModel (a Secret, ConfigMap or claim), else None."""
    if spec.model.token_secret_ref:
        blocker = _secret_blocker(kube, namespace, spec.model.token_secret_ref, "spec.model.tokenSecretRef")
        if blocker:
            return blocker
    if spec.prompt.knowledge_from:
        ref = spec.prompt.knowledge_from.config_map_key_ref
        blocker = _config_map_blocker(kube, namespace, ref, "spec.prompt.knowledgeFrom")
        if blocker:
            return blocker
    pvc = spec.model.pvc
    if pvc and kube.get("PersistentVolumeClaim", namespace, pvc[0]) is None:
        return Blocker(
            "ModelClaimNotFound",
            f"spec.model.id: PersistentVolumeClaim {pvc[0]!r} not found in namespace {namespace!r}",
            phase="Pending",
        )
    return None


def observe_workload(
    kube: Kube, namespace: str, name: str, selector: str, desired: int, progress_config_map: str | None = None
) -> Observed:
    """The Deployment named name, its pods (by selector) and, for model servers, the progress reports."""
    progress: dict[str, str] = {}
    if progress_config_map:
        progress = (kube.get("ConfigMap", namespace, progress_config_map) or {}).get("data") or {}
    return Observed(
        desired=desired,
        deployment=kube.get("Deployment", namespace, name),
        pods=kube.list("Pod", namespace, label_selector=selector),
        progress=progress,
    )


def stale_progress_keys(observed: Observed) -> list[str]:
    """Progress keys of pods that no longer exist (removed so the ConfigMap does not grow forever)."""
    live = {pod["metadata"]["name"] for pod in observed.pods}
    return [key for key in observed.progress if key not in live]


def is_subset(desired: object, actual: object) -> bool:
    """Whether every field we set is still there with our value (defaults the apiserver adds are ignored)."""
    if isinstance(desired, dict):
        return isinstance(actual, dict) and all(
            k in actual and is_subset(v, actual[k]) for k, v in desired.items()
        )
    if isinstance(desired, list):
        return (
            isinstance(actual, list) and len(desired) == len(actual) and all(map(is_subset, desired, actual))
        )
    return desired == actual


def owner_of(child: Manifest, kind: str) -> str | None:
    """Name of the child's controller of the given kind (from ownerReferences), if any."""
    for ref in child.get("metadata", {}).get("ownerReferences") or []:
        if ref.get("kind") == kind and ref.get("controller"):
            return ref.get("name")
    return None


def frontend_blocker(kube: Kube, namespace: str, spec: ChatFrontendSpec) -> Blocker | None:
    """A ChatFrontend waits for missing ChatModels (Pending) and fails on missing Secrets."""
    missing = [m.name for m in spec.models if kube.get("ChatModel", namespace, m.name) is None]
    if missing:
        names = ", ".join(repr(m) for m in missing)
        return Blocker(
            "ModelNotFound", f"waiting for ChatModel {names} in namespace {namespace!r}", phase="Pending"
        )
    refs = (
        ("spec.store.passwordSecretRef", spec.store.password_secret_ref),
        ("spec.apiKeysSecretRef", spec.api_keys_secret_ref),
        ("spec.adminKeySecretRef", spec.admin_key_secret_ref),
        ("spec.secretKeySecretRef", spec.secret_key_secret_ref),
    )
    for field, ref in refs:
        blocker = _secret_blocker(kube, namespace, ref, field) if ref else None
        if blocker:
            return blocker
    return None
