"""The scratchpad filter: users never see a character of it, and a stream only ever grows."""

from __future__ import annotations

import pytest

from kubechat_server.engine.scratchpad import visible_text

ANSWER = "Hmm <scratchpad>secret plan</scratchpad>\nHello friend. <scratchpad>more</scratchpad> Bye."


def test_every_block_is_removed_from_the_final_answer():
    assert visible_text(ANSWER, final=True) == "Hmm \nHello friend.  Bye."


def test_a_block_left_open_stays_hidden():
    assert visible_text("Hi <scratchpad>never closed", final=True) == "Hi "


def test_leading_whitespace_after_a_leading_block_is_dropped():
    assert visible_text("<scratchpad>x</scratchpad>\n\nAnswer", final=True) == "Answer"


@pytest.mark.parametrize("text", [ANSWER, "<scratchpad>a</scratchpad>b<scr", "plain <s> text <scratch"])
def test_a_growing_text_only_ever_extends_what_was_shown_and_never_shows_the_scratchpad(text):
    shown = ""
    for end in range(len(text) + 1):
        visible = visible_text(text[:end], final=False)
        assert visible.startswith(shown), (text[:end], shown, visible)
        assert "secret" not in visible and "<scr" not in visible and "more" not in visible
        shown = visible
    assert visible_text(text, final=True).startswith(shown)
