"""Stop-string scanning (no partial stop string ever shown) and per-row sampling."""

from __future__ import annotations

import torch

from kubechat_server.engine.sampling import RowSampler, SamplingParams, scan_stop


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


def test_greedy_rows_take_the_argmax_whatever_the_other_rows_do():
    logits = torch.tensor([[0.1, 3.0, 0.2], [5.0, 0.0, 0.0]])
    params = [SamplingParams(temperature=0.0), SamplingParams(temperature=1.0, seed=1)]
    tokens = RowSampler(params, torch.Generator()).next_tokens(logits.clone())
    assert tokens[0].item() == 1


def test_same_seed_samples_the_same_tokens():
    logits = torch.randn(4, 50, generator=torch.Generator().manual_seed(0))

    def draw():
        sampler = RowSampler([SamplingParams(temperature=1.0, seed=7)] * 4, torch.Generator())
        return [sampler.next_tokens(logits.clone()).tolist() for _ in range(5)]

    assert draw() == draw()


def test_top_p_keeps_only_the_nucleus():
    logits = torch.log(torch.tensor([[0.7, 0.2, 0.05, 0.05]]))
    sampler = RowSampler([SamplingParams(temperature=1.0, top_p=0.5, seed=3)], torch.Generator())
    assert {sampler.next_tokens(logits.clone()).item() for _ in range(50)} == {0}
