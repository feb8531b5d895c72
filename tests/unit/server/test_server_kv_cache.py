"""The growing cache layer holds exactly what transformers' DynamicLayer would, through updates, row
selection and the batch's own assignments (merge, trim)."""

from __future__ import annotations

import torch
from transformers.cache_utils import DynamicLayer

from kubechat_server.engine.kv_cache import SPARE_COLUMNS, GrowingLayer, growing, mergeable


def states(rows: int, positions: int, seed: int) -> torch.Tensor:
    return torch.randn(rows, 2, positions, 4, generator=torch.Generator().manual_seed(seed))


def same(a: DynamicLayer, b: DynamicLayer) -> bool:
    return torch.equal(a.keys, b.keys) and torch.equal(a.values, b.values)


def test_updates_selects_and_assignments_match_the_dynamic_layer() -> None:
    plain, grown = DynamicLayer(), GrowingLayer()
    for layer in (plain, grown):
        layer.update(states(3, 5, 0), states(3, 5, 1))
    for step in range(SPARE_COLUMNS + 3):  # past the spare room: one move into a roomier buffer
        k, v = states(3, 1, 10 + step), states(3, 1, 100 + step)
        assert all(torch.equal(x, y) for x, y in zip(plain.update(k, v), grown.update(k, v), strict=True))
    assert same(plain, grown) and grown.get_seq_length() == 5 + SPARE_COLUMNS + 3
    for layer in (plain, grown):
        layer.batch_select_indices(torch.tensor([0, 2]))
        layer.keys, layer.values = layer.keys[:, :, 4:], layer.values[:, :, 4:]  # the batch's trim
        layer.update(states(2, 1, 7), states(2, 1, 8))
    assert same(plain, grown) and grown.keys.shape == (2, 2, 2 + SPARE_COLUMNS + 3, 4)


def test_only_plain_layers_grow_and_only_growing_ones_merge() -> None:
    class Sliding(DynamicLayer):
        pass

    layers = growing([DynamicLayer(), Sliding()])
    assert type(layers[0]) is GrowingLayer and type(layers[1]) is Sliding
    assert mergeable([GrowingLayer(), DynamicLayer()]) and not mergeable(layers)
