"""A scratchpad persona's reasoning never reaches the user, however the stream splits the tags."""

from __future__ import annotations

import pytest

from kubechat_frontend.scratchpad import ScratchpadFilter, without_scratchpad

ANSWER = "<scratchpad>3 times 8: 8+8+8 = 24. Be proud.</scratchpad>\n\nIt is 24, good sir!"


def streamed(text: str, size: int) -> str:
    pad = ScratchpadFilter()
    shown = [pad.feed(text[i : i + size]) for i in range(0, len(text), size)]
    return "".join(shown) + pad.end()


@pytest.mark.parametrize("size", [1, 2, 3, 5, 7, 13, 1000])
def test_reasoning_is_cut_whatever_the_piece_size(size):
    assert streamed(ANSWER, size) == "It is 24, good sir!"


def test_text_around_and_between_scratchpads_is_kept():
    assert without_scratchpad("Hmm. <scratchpad>a</scratchpad> Yes.<scratchpad>b</scratchpad> Done") == (
        "Hmm. Yes.Done"
    )


def test_an_unclosed_scratchpad_shows_nothing_of_it():
    assert streamed("Well <scratchpad>secret plans never closed", 4) == "Well "


def test_a_lone_angle_bracket_or_tag_prefix_is_still_shown():
    assert streamed("a < b and <scratch is not a tag", 3) == "a < b and <scratch is not a tag"
    assert streamed("ends with <scr", 1) == "ends with <scr"
