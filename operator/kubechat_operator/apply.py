"""The one place that writes children: server-side apply of desired manifests, pruning of dropped ones."""

from __future__ import annotations

from kubechat_operator.kube import Kube, Manifest
from kubechat_operator.observe import is_subset


def apply_children(kube: Kube, desired: list[Manifest], only: set[tuple[str, str]] | None = None) -> int:
    """Apply the desired children (all, or only those named (kind, name) in only); returns how many.

    Server-side apply is idempotent (a second operator run or a restart creates no duplicates) and, forced,
    takes back fields someone edited by hand.
    """
    applied = 0
    for manifest in desired:
        if only is not None and (manifest["kind"], manifest["metadata"]["name"]) not in only:
            continue
        kube.apply(manifest)
        applied += 1
    return applied


def drifted_children(
    desired: list[Manifest], seen: dict[tuple[str, str], Manifest | None]
) -> set[tuple[str, str]]:
    """Children seen changing ((kind, name) -> body, None if deleted) that left the desired state."""
    drifted = set()
    for manifest in desired:
        key = (manifest["kind"], manifest["metadata"]["name"])
        if key in seen and (seen[key] is None or not is_subset(_comparable(manifest), seen[key])):
            drifted.add(key)
    return drifted


def _comparable(manifest: Manifest) -> Manifest:
    # ownerReferences and labels are compared too; apiVersion/kind are not echoed identically by every GET.
    return {k: v for k, v in manifest.items() if k not in ("apiVersion", "kind")}


def prune(kube: Kube, namespace: str, owner_uid: str, unwanted: list[tuple[str, str]]) -> None:
    """Delete children the resource no longer asks for (e.g. the HPA when autoscaling is removed).

    Only objects this resource controls are deleted, never a same-named object someone else made.
    """
    for kind, name in unwanted:
        existing = kube.get(kind, namespace, name)
        refs = (existing or {}).get("metadata", {}).get("ownerReferences") or []
        if any(ref.get("uid") == owner_uid and ref.get("controller") for ref in refs):
            kube.delete(kind, namespace, name)
