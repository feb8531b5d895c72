"""What the cluster reports about a resource: its referenced ConfigMaps/claims, its workload."""

from __future__ import annotations

import threading

from kubechat_operator.kube import Kube, Manifest
from kubechat_operator.spec import ChatFrontendSpec, ChatModelSpec, ConfigMapKeyRef
from kubechat_operator.status import Blocker, Observed

MAX_STUCK_PODS_READ = 3
VOLUME_EVENT_REASONS = ("FailedMount", "FailedAttachVolume")
KUBELET_MOUNT_SUMMARY = "Unable to attach or mount volumes"


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
    """The first unresolvable reference of a ChatModel (a ConfigMap or claim), else None.

    Secrets are not checked: the operator may not read them (least privilege); a missing token Secret shows
    as the kubelet's CreateContainerConfigError on the pods, which the status reports with its message."""
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
    kube: Kube,
    namespace: str,
    name: str,
    selector: str,
    desired: int,
    progress_config_map: tuple[str, str] | None = None,
) -> Observed:
    """The Deployment named name, its pods (by selector) and, for model servers, the progress reports of
    progress_config_map = (name, owner uid) when that owner controls it (never a foreign ConfigMap's data)."""
    progress: dict[str, str] = {}
    if progress_config_map:
        config_map = kube.get("ConfigMap", namespace, progress_config_map[0]) or {}
        refs = config_map.get("metadata", {}).get("ownerReferences") or []
        if any(r.get("controller") and r.get("uid") == progress_config_map[1] for r in refs):
            progress = config_map.get("data") or {}
    pods = kube.list("Pod", namespace, label_selector=selector)
    creating = creating_pods(pods)
    return Observed(
        desired=desired,
        deployment=kube.get("Deployment", namespace, name),
        pods=pods,
        progress=progress,
        creating=creating,
        volume_events=_volume_events(kube, namespace, creating[:MAX_STUCK_PODS_READ]),
    )


def creating_pods(pods: list[Manifest]) -> list[str]:
    """Pods placed on a node whose sandbox is not up yet (PodReadyToStartContainers is not True): the kubelet
    is still mounting or attaching their volumes. The pod's own status only says ContainerCreating; why it
    waits is in its Events, which no watch of ours sees."""
    return [
        p["metadata"]["name"]
        for p in pods
        if (p.get("spec") or {}).get("nodeName")
        and (p.get("status") or {}).get("phase") == "Pending"
        and not p["metadata"].get("deletionTimestamp")
        and not any(
            c.get("type") == "PodReadyToStartContainers" and c.get("status") == "True"
            for c in (p.get("status") or {}).get("conditions") or []
        )
    ]


def _volume_events(kube: Kube, namespace: str, pods: list[str]) -> dict[str, Manifest]:
    """The most telling volume Warning of each pod named (FailedMount, FailedAttachVolume such as
    Multi-Attach). Read only for pods still creating (a few at most), so a healthy workload costs no reads."""
    found: dict[str, Manifest] = {}
    for pod in pods:
        events = kube.list(
            "Event",
            namespace,
            field_selector=f"involvedObject.kind=Pod,involvedObject.name={pod},type=Warning",
        )
        event = telling_volume_event(events)
        if event is not None:
            found[pod] = event
    return found


def telling_volume_event(events: list[Manifest]) -> Manifest | None:
    """The latest volume Warning that names a cause. The kubelet's summary after its two-minute wait
    ("Unable to attach or mount volumes: unmounted volumes=[cache] ...: timed out waiting for the
    condition") names none, and it alternates with the per-volume Event that does ("MountVolume.SetUp failed
    for volume ... : hostPath type check failed: ..."), so the summary is shown only when it is all there is.
    """
    volume = [e for e in events if e.get("reason") in VOLUME_EVENT_REASONS]
    causes = [e for e in volume if not (e.get("message") or "").startswith(KUBELET_MOUNT_SUMMARY)]
    candidates = causes or volume
    if not candidates:
        return None
    return max(candidates, key=lambda e: e.get("lastTimestamp") or e.get("eventTime") or "")


def stale_progress_keys(observed: Observed) -> list[str]:
    """Progress keys of pods that no longer exist (removed so the ConfigMap does not grow forever)."""
    live = {pod["metadata"]["name"] for pod in observed.pods}
    return [key for key in observed.progress if key not in live]


def frontend_blocker(kube: Kube, namespace: str, spec: ChatFrontendSpec) -> Blocker | None:
    """A ChatFrontend waits for missing ChatModels (Pending); missing Secrets show on its pods (see above)."""
    missing = [m.name for m in spec.models if kube.get("ChatModel", namespace, m.name) is None]
    if missing:
        names = ", ".join(repr(m) for m in missing)
        return Blocker(
            "ModelNotFound", f"waiting for ChatModel {names} in namespace {namespace!r}", phase="Pending"
        )
    return None


class PodStore:
    """The operator's pods as the pod watch last reported them (an informer's store), trimmed to what load
    progress and the request autoscaler need, so neither lists pods."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._pods: dict[tuple[str, str], Manifest] = {}

    def update(self, pod: Manifest, deleted: bool = False) -> None:
        meta = pod.get("metadata") or {}
        key = (meta.get("namespace", ""), meta.get("name", ""))
        with self._lock:
            if deleted:
                self._pods.pop(key, None)
                return
            self._pods[key] = {
                "metadata": {
                    "name": key[1],
                    "namespace": key[0],
                    "labels": meta.get("labels") or {},
                    "deletionTimestamp": meta.get("deletionTimestamp"),
                },
                "status": {
                    "phase": (pod.get("status") or {}).get("phase"),
                    "conditions": (pod.get("status") or {}).get("conditions") or [],
                    "podIP": (pod.get("status") or {}).get("podIP"),  # where the autoscaler reads /metrics
                },
            }

    def select(self, namespace: str, labels: dict[str, str]) -> list[Manifest]:
        with self._lock:
            return [
                pod
                for (ns, _), pod in self._pods.items()
                if ns == namespace and all(pod["metadata"]["labels"].get(k) == v for k, v in labels.items())
            ]
