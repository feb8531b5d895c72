"""Prompts are prefilled in groups of similar length, so that padding to a group's longest wastes little."""

from __future__ import annotations

from types import SimpleNamespace

from kubechat_server.engine.batch import PAD_SLACK_TOKENS, prefill_groups


def prompts(*lengths: int) -> list[SimpleNamespace]:
    return [SimpleNamespace(prompt_ids=[0] * n) for n in lengths]


def lengths(groups) -> list[list[int]]:
    return [[len(r.prompt_ids) for r in group] for group in groups]


def test_the_benchmarks_mix_falls_into_one_group_per_length_class() -> None:
    mix = prompts(*([40, 45, 41, 43] * 6), *([354, 513] * 4))
    assert lengths(prefill_groups(mix)) == [
        sorted([40, 45, 41, 43] * 6),
        [354] * 4,
        [513] * 4,
    ]


def test_every_request_is_in_exactly_one_group_shortest_first() -> None:
    mix = prompts(300, 7, 1000, 7, 12, 290, 1)
    groups = prefill_groups(mix)
    flat = [r for group in groups for r in group]
    assert sorted(map(id, flat)) == sorted(map(id, mix))
    assert [len(r.prompt_ids) for r in flat] == sorted(len(r.prompt_ids) for r in mix)


def test_short_prompts_share_a_group_while_their_padding_stays_within_the_slack() -> None:
    assert lengths(prefill_groups(prompts(1, PAD_SLACK_TOKENS // 2))) == [[1, PAD_SLACK_TOKENS // 2]]
    assert len(prefill_groups(prompts(1, 1 + 2 * PAD_SLACK_TOKENS))) == 2


def test_one_prompt_is_one_group_and_none_is_none() -> None:
    assert lengths(prefill_groups(prompts(17))) == [[17]]
    assert prefill_groups([]) == []
