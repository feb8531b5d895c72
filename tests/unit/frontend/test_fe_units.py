"""Small pure pieces: rate-limit windows, store URLs with passwords, message validation."""

import pytest

from kubechat_frontend.conversations import validate_message
from kubechat_frontend.errors import ApiError
from kubechat_frontend.store import _with_password
from kubechat_frontend.store.base import title_from, window_of
from kubechat_frontend.text import clean_text


def test_replicas_agree_on_the_window_and_its_remaining_time():
    assert window_of(60, now=120.0) == (2, 60.0)
    assert window_of(60, now=179.5) == (2, 0.5)


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("postgresql://kubechat@db:5432/chat", "postgresql://kubechat:p%40ss%2Fw@db:5432/chat"),
        ("redis://cache:6379/0", "redis://:p%40ss%2Fw@cache:6379/0"),
    ],
)
def test_store_password_from_its_own_secret_is_put_into_the_url_escaped(url, expected):
    assert _with_password(url, "p@ss/w") == expected


@pytest.mark.parametrize(
    ("text", "status"), [("", 400), ("   \n", 400), (None, 400), (42, 400), ("x" * 11, 413)]
)
def test_empty_or_oversized_messages_are_refused(text, status):
    with pytest.raises(ApiError) as refused:
        validate_message(text, max_chars=10)
    assert refused.value.status == status


def test_a_message_within_the_limit_is_kept_verbatim():
    assert validate_message("  hi\n", max_chars=10) == "  hi\n"


def test_control_characters_are_removed_and_line_breaks_unified():
    # NUL would not survive PostgreSQL or a browser's HTML parser; CR would come back as LF after a reload.
    assert clean_text("a\x00b\r\nc\rd\te\x1bf\x7f") == "ab\nc\nd\tef"
    assert validate_message("hi\x00 there", max_chars=10) == "hi there"
    with pytest.raises(ApiError):
        validate_message("\x00\x01", max_chars=10)


def test_a_title_is_the_first_question_on_one_line_cut_with_an_ellipsis():
    assert title_from("  How  do\nI\tbake bread? ") == "How do I bake bread?"
    long = title_from("word " * 40)
    assert len(long) <= 60 and long.endswith("\u2026") and not long[:-1].endswith(" ")
    assert title_from("x" * 60) == "x" * 60
