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
    `kubectl edit` adding hostNetwork or `kubectl set env` adding a variable, in the order to remove them
    (later list items first). Each is the outermost field that is not ours: a whole env entry, not its
    name and value. Only spec.template.spec is watched: others legitimately write metadata (kubectl rollout
    restart's annotation), status and replicas."""
    ours: set[tuple[str, ...]] = set()
    theirs: set[tuple[str, ...]] = set()
    for entry in actual.get("metadata", {}).get("managedFields") or []:
        if entry.get("subresource"):
            continue
        paths = set(_paths(entry.get("fieldsV1") or {}))
        (ours if entry.get("manager") == FIELD_MANAGER else theirs).update(paths)
    our_prefixes = {path[:i] for path in ours for i in range(1, len(path) + 1)}
    cuts: set[tuple[str, ...]] = set()
    for path in theirs - ours:
        if path[:3] != ("f:spec", "f:template", "f:spec"):
            continue
        if any(path[:i] in ours for i in range(4, len(path))):
            continue  # inside a field of ours that is a whole value (an atomic list or map)
        cut = next((path[:i] for i in range(4, len(path) + 1) if path[:i] not in our_prefixes), None)
        if cut is not None:
            cuts.add(cut)
    outermost = [c for c in cuts if not any(c[: len(o)] == o and c != o for o in cuts)]
    pointers = [p for p in (_pointer(actual, cut) for cut in outermost) if p is not None]
    return sorted(pointers, key=_removal_order)


def _removal_order(pointer: str) -> tuple[tuple[int, int | str], ...]:
    # Descending, numbers compared as numbers: removing env/3 before env/1 keeps env/1's index valid.
    return tuple((0, -int(p)) if p.isdigit() else (1, p) for p in pointer.split("/"))


def drifted(desired: Manifest, actual: Manifest) -> bool:
    """Whether actual lost or changed a field of desired, or carries a foreign pod-template field."""
    comparable = {k: v for k, v in desired.items() if k not in ("apiVersion", "kind")}
    return not is_subset(comparable, actual) or bool(foreign_fields(actual))
