"""Stop-string scanning (no partial stop string ever shown) and the vectorised per-row sampler (on every
device this machine has: CPU always, the GPU when there is one)."""

from __future__ import annotations

import math

import pytest
import torch

from kubechat_server.engine.sampling import RowSampler, SamplingParams, device_generator, scan_stop


def test_text_without_stops_is_shown_whole():
    assert scan_stop("hello world", ()) == (11, False)


def test_stop_string_cuts_the_text_before_it():
    assert scan_stop("hello\nUser: more", ("\nUser:",)) == (5, True)


def test_earliest_of_several_stop_strings_wins():
    assert scan_stop("abc STOP def END", ("END", "STOP")) == (4, True)


def test_a_tail_that_may_grow_into_a_stop_string_is_held_back():
    assert scan_stop("hello\nUs", ("\nUser:",)) == (5, False)
    assert scan_stop("hello\n", ("\nUser:",)) == (5, False)


def test_streaming_never_shows_part_of_a_stop_string():
    stops = ("###",)
    shown, text = "", ""
    for piece in ["Hi", " there", " #", "#", "# more"]:
        scanned = len(text)
        text += piece
        end, stopped = scan_stop(text, stops, start=scanned)
        assert end >= len(shown)
        shown = text[:end]
        assert "#" not in shown
        if stopped:
            break
    assert stopped and shown == "Hi there "


DEVICES = [
    "cpu",
    pytest.param("cuda", marks=pytest.mark.skipif(not torch.cuda.is_available(), reason="no GPU")),
]


def sampler(params, logits, prompts=None, stop_ids=frozenset()):
    device = logits.device
    return RowSampler(
        params,
        prompts or [[] for _ in params],
        vocab_size=logits.shape[-1],
        device=device,
        shared=device_generator(device, 0),
        stop_token_ids=stop_ids,
    )


@pytest.mark.parametrize("device", DEVICES)
def test_generators_live_on_the_device_of_the_probabilities(device):
    logits = torch.randn(3, 40, generator=torch.Generator().manual_seed(0)).to(device)
    params = [SamplingParams(seed=5), SamplingParams(), SamplingParams(temperature=0.0)]
    rows = sampler(params, logits)
    tokens = rows.next_tokens(logits).tokens
    assert len(tokens) == 3
    generators = [rows.shared] + [g for g in rows.generators if g is not None]
    assert {g.device.type for g in generators} == {logits.device.type}


def test_a_cpu_generator_for_gpu_logits_is_refused_before_sampling():
    # The bug this guards against: CPU generators with CUDA probabilities fail every sampled request.
    with pytest.raises(ValueError, match="generator"):
        RowSampler([SamplingParams()], [[]], 10, torch.device("cuda"), torch.Generator())


@pytest.mark.parametrize("device", DEVICES)
def test_greedy_rows_take_the_argmax_whatever_the_other_rows_do(device):
    logits = torch.tensor([[0.1, 3.0, 0.2], [5.0, 0.0, 0.0]], device=device)
    params = [SamplingParams(temperature=0.0), SamplingParams(temperature=1.0, seed=1)]
    assert sampler(params, logits).next_tokens(logits).tokens[0] == 1


@pytest.mark.parametrize("device", DEVICES)
def test_same_seed_samples_the_same_tokens_whatever_shares_the_batch(device):
    logits = torch.randn(4, 50, generator=torch.Generator().manual_seed(0)).to(device)

    def draw(others):
        params = [SamplingParams(temperature=1.0, seed=7)] + [SamplingParams(temperature=1.0)] * others
        rows = sampler(params, logits[: others + 1])
        return [rows.next_tokens(logits[: others + 1]).tokens[0] for _ in range(8)]

    assert draw(0) == draw(3)


def test_top_p_keeps_only_the_nucleus():
    logits = torch.log(torch.tensor([[0.7, 0.2, 0.05, 0.05]]))
    rows = sampler([SamplingParams(temperature=1.0, top_p=0.5)], logits)
    assert {rows.next_tokens(logits).tokens[0] for _ in range(50)} == {0}


def test_top_k_keeps_only_the_k_best():
    logits = torch.log(torch.tensor([[0.3, 0.3, 0.2, 0.2]]))
    rows = sampler([SamplingParams(temperature=1.0, top_k=2)], logits)
    assert {rows.next_tokens(logits).tokens[0] for _ in range(80)} == {0, 1}


def test_each_row_keeps_its_own_top_k_and_temperature_in_one_batch():
    logits = torch.log(torch.tensor([[0.3, 0.3, 0.2, 0.2]] * 2))
    rows = sampler([SamplingParams(top_k=1), SamplingParams(top_k=0, temperature=2.0)], logits)
    draws = [rows.next_tokens(logits).tokens for _ in range(80)]
    assert {d[0] for d in draws} == {0}
    assert len({d[1] for d in draws}) == 4


def test_frequency_penalty_moves_greedy_off_a_repeated_token():
    logits = torch.tensor([[2.0, 1.5, 0.0]])
    rows = sampler([SamplingParams(temperature=0.0, frequency_penalty=1.0)], logits)
    assert [rows.next_tokens(logits).tokens[0] for _ in range(2)] == [0, 1]


def test_presence_penalty_counts_a_token_once():
    logits = torch.tensor([[2.0, 1.5, 0.0]])
    rows = sampler([SamplingParams(temperature=0.0, presence_penalty=0.4)], logits)
    assert [rows.next_tokens(logits).tokens[0] for _ in range(3)] == [0, 0, 0]


def test_repetition_penalty_covers_the_prompt():
    logits = torch.tensor([[2.0, 1.5, 0.0]])
    rows = sampler([SamplingParams(temperature=0.0, repetition_penalty=2.0)], logits, prompts=[[0]])
    assert rows.next_tokens(logits).tokens == [1]


def test_min_new_tokens_holds_eos_back_until_reached():
    logits = torch.tensor([[0.0, 5.0, 1.0]])
    rows = sampler([SamplingParams(temperature=0.0, min_new_tokens=2)], logits, stop_ids=frozenset({1}))
    assert [rows.next_tokens(logits).tokens[0] for _ in range(3)] == [2, 2, 1]


def test_rows_leaving_and_joining_keep_their_own_state():
    logits = torch.tensor([[2.0, 1.5, 0.0], [0.0, 0.0, 3.0]])
    rows = sampler(
        [SamplingParams(temperature=0.0), SamplingParams(temperature=0.0, frequency_penalty=1.0)], logits
    )
    rows.next_tokens(logits)
    rows.select([1])
    joining = sampler([SamplingParams(temperature=0.0)], logits[:1])
    rows.extend(joining)
    assert rows.next_tokens(torch.stack([logits[0], logits[0]])).tokens == [0, 0]


def test_logprobs_are_those_of_the_raw_distribution_with_alternatives():
    logits = torch.log(torch.tensor([[0.5, 0.25, 0.25], [0.1, 0.1, 0.8]]))
    params = [SamplingParams(temperature=0.0, logprobs=2), SamplingParams(temperature=0.0)]
    draw = sampler(params, logits).next_tokens(logits)
    first = draw.logprobs[0]
    assert first.token_id == 0 and first.logprob == pytest.approx(math.log(0.5))
    assert [t for t, _ in first.top] == [0, first.top[1][0]] and len(first.top) == 2
    assert draw.logprobs[1] is None
