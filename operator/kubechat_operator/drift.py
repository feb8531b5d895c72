"""Whether a child left the state we applied: a field of ours changed or gone, or a field someone else set
in a pod template (hostNetwork, a privileged container). Server defaults and canonical forms are not drift."""

from __future__ import annotations

import json
from decimal import Decimal

from kubernetes.utils.quantity import parse_quantity

from kubechat_operator.kube import FIELD_MANAGER, Manifest

# Maps whose values are resource quantities, which the apiserver rewrites to canonical form ("0.5" → "500m").
_QUANTITY_MAPS = ("requests", "limits")


def _quantity(value: object) -> Decimal | None:
    try:
        return parse_quantity(value)
    except (ValueError, TypeError):
        return None


def is_subset(desired: object, actual: object, quantities: bool = False) -> bool:
    """Whether every field we set is still there with our value (defaults the apiserver adds are ignored)."""
    if isinstance(desired, dict):
        return isinstance(actual, dict) and all(
            k in actual and is_subset(v, actual[k], quantities or k in _QUANTITY_MAPS)
            for k, v in desired.items()
        )
    if isinstance(desired, list):
        return (
            isinstance(actual, list) and len(desired) == len(actual) and all(map(is_subset, desired, actual))
        )
    if quantities and desired != actual:
        ours = _quantity(desired)
        return ours is not None and ours == _quantity(actual)
    return desired == actual


def _paths(fields: Manifest, prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    """Leaf paths of a managedFields fieldsV1 tree (keys like f:spec, k:{"name":"x"})."""
    leaves = []
    for key, sub in fields.items():
        if key == ".":
            continue
        if isinstance(sub, dict) and any(k != "." for k in sub):
            leaves.extend(_paths(sub, (*prefix, key)))
        else:
            leaves.append((*prefix, key))
    return leaves


def _pointer(actual: Manifest, path: tuple[str, ...]) -> str | None:
    """The JSON pointer of a fieldsV1 path in actual (list items found by their keys), else None."""
    node: object = actual
    parts = []
    for segment in path:
        kind, _, name = segment.partition(":")
        if kind == "f" and isinstance(node, dict) and name in node:
            node = node[name]
            parts.append(name.replace("~", "~0").replace("/", "~1"))
        elif kind == "k" and isinstance(node, list):
            keys = json.loads(name)
            index = next(
                (i for i, item in enumerate(node) if all(item.get(k) == v for k, v in keys.items())), None
            )
            if index is None:
                return None
            node = node[index]
            parts.append(str(index))
        else:
            return None
    return "/" + "/".join(parts)


def foreign_fields(actual: Manifest) -> list[str]:
    """JSON pointers of pod-template fields that another field manager set and we did not, e.g. a
    `kubectl edit` adding hostNetwork. Only spec.template.spec is watched: others legitimately write
    metadata (kubectl rollout restart's annotation), status and replicas."""
    ours: set[tuple[str, ...]] = set()
    theirs: set[tuple[str, ...]] = set()
    for entry in actual.get("metadata", {}).get("managedFields") or []:
        if entry.get("subresource"):
            continue
        paths = set(_paths(entry.get("fieldsV1") or {}))
        (ours if entry.get("manager") == FIELD_MANAGER else theirs).update(paths)
    foreign = []
    for path in sorted(theirs - ours):
        if path[:3] != ("f:spec", "f:template", "f:spec"):
            continue
        if any(path[: i + 1] in ours for i in range(3, len(path))):
            continue  # a field inside one of ours (e.g. a key of a map we set) is ours to keep or not
        pointer = _pointer(actual, path)
        if pointer is not None:
            foreign.append(pointer)
    return foreign


def drifted(desired: Manifest, actual: Manifest) -> bool:
    """Whether actual lost or changed a field of desired, or carries a foreign pod-template field."""
    comparable = {k: v for k, v in desired.items() if k not in ("apiVersion", "kind")}
    return not is_subset(comparable, actual) or bool(foreign_fields(actual))
