"""The one place that writes children: server-side apply of desired manifests, only over objects the owner
controls, and pruning of dropped ones."""

from __future__ import annotations

import threading

from kubernetes.client.rest import ApiException

from kubechat_operator.api_errors import api_error_blocker
from kubechat_operator.drift import drifted, foreign_fields
from kubechat_operator.kube import Kube, Manifest
from kubechat_operator.metrics import APPLIES
from kubechat_operator.spec import Resource
from kubechat_operator.status import Blocker

ChildKey = tuple[str, str, str]  # (kind, namespace, name)


def controller_uid(child: Manifest) -> str | None:
    """uid of the child's controller (the ownerReference with controller: true), if any."""
    for ref in child.get("metadata", {}).get("ownerReferences") or []:
        if ref.get("controller"):
            return ref.get("uid")
    return None


def _key(manifest: Manifest) -> ChildKey:
    meta = manifest["metadata"]
    return manifest["kind"], meta["namespace"], meta["name"]


class OwnedChildren:
    """Which owner controls each child, learnt from our own applies and the child watches, so that checking
    a child before applying it costs a GET only for a child not seen yet."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._controllers: dict[ChildKey, str] = {}

    def record(self, child: Manifest) -> None:
        uid = controller_uid(child)
        with self._lock:
            if uid:
                self._controllers[_key(child)] = uid
            else:
                self._controllers.pop(_key(child), None)

    def forget(self, kind: str, namespace: str, name: str) -> None:
        with self._lock:
            self._controllers.pop((kind, namespace, name), None)

    def controller(self, kind: str, namespace: str, name: str) -> str | None:
        with self._lock:
            return self._controllers.get((kind, namespace, name))


def _holder(existing: Manifest) -> str:
    for ref in existing["metadata"].get("ownerReferences") or []:
        if ref.get("controller"):
            return f"controlled by {ref.get('kind')} {ref.get('name')!r}"
    return "not created by this operator"


def find_conflict(
    kube: Kube, owned: OwnedChildren, owner: Resource, desired: list[Manifest]
) -> Blocker | None:
    """The first desired child that exists but is not controlled by owner (a user's object, or another
    resource's child): the operator refuses to apply over it, let alone adopt it."""
    for manifest in desired:
        kind, namespace, name = _key(manifest)
        if owned.controller(kind, namespace, name) == owner.uid:
            continue
        existing = kube.get(kind, namespace, name)
        if existing is None:
            continue
        owned.record(existing)
        if controller_uid(existing) != owner.uid:
            return Blocker(
                "Conflict",
                f"{kind} {name!r} already exists and is {_holder(existing)}; this {owner.kind} does not "
                f"apply over objects it did not create: delete or rename that {kind}",
            )
    return None


def apply_children(
    kube: Kube, owned: OwnedChildren, owner: Resource, desired: list[Manifest]
) -> Blocker | None:
    """Apply the desired children (config first) unless one of them would land on a foreign object.

    Server-side apply is idempotent (a second operator run or a restart creates no duplicates) and, forced,
    takes back fields someone edited by hand on a child we control; pod-template fields another manager
    added (hostNetwork) are removed with a JSON patch. A refused request stops the apply and
    becomes the blocker (its reason and the apiserver's message)."""
    blocker = find_conflict(kube, owned, owner, desired)
    if blocker is not None:
        return blocker
    for manifest in desired:
        kind, namespace, name = _key(manifest)
        try:
            applied = kube.apply(manifest)
            APPLIES.labels(kind).inc()
            foreign = foreign_fields(applied)
            if foreign:  # apply keeps fields other managers own; take them out explicitly
                removals = [{"op": "remove", "path": pointer} for pointer in foreign]
                applied = kube.json_patch(kind, namespace, name, removals)
            owned.record(applied)
        except ApiException as exc:
            return api_error_blocker(exc, f"applying {kind} {name}")
    return None


def drifted_children(desired: list[Manifest], seen: dict[tuple[str, str], Manifest | None]) -> list[Manifest]:
    """Desired children seen changing ((kind, name) -> body, None if deleted) that left the desired state."""
    changed = []
    for manifest in desired:
        key = (manifest["kind"], manifest["metadata"]["name"])
        if key in seen and (seen[key] is None or drifted(manifest, seen[key])):
            changed.append(manifest)
    return changed


def prune(
    kube: Kube, owned: OwnedChildren, owner: Resource, unwanted: list[tuple[str, str]], *, verify: bool
) -> None:
    """Delete children the resource no longer asks for (e.g. the HPA when autoscaling is removed).

    Only objects this resource controls are deleted, never a same-named object someone else made. With
    verify each one is read first (a spec change); otherwise only children the watches showed us are
    considered, so a restart of the operator over a thousand resources costs no GET per optional child."""
    for kind, name in unwanted:
        if verify:
            existing = kube.get(kind, owner.namespace, name)
            ours = existing is not None and controller_uid(existing) == owner.uid
        else:
            ours = owned.controller(kind, owner.namespace, name) == owner.uid
        if ours:
            kube.delete(kind, owner.namespace, name)
            owned.forget(kind, owner.namespace, name)
