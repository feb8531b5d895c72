"""A scratchpad persona's private reasoning, cut out of the answer as it streams.

The model server asks such a persona to think inside `<scratchpad>…</scratchpad>` before answering; only the
text outside reaches the user (page, API, seed gateway) and the history. Tags may arrive split across
streamed pieces, so a piece that could be the start of a tag is held back until the next one decides.
"""

from __future__ import annotations

OPEN, CLOSE = "<scratchpad>", "</scratchpad>"


def _partial_tag_at_end(text: str, tag: str) -> int:
    """How many characters at the end of `text` could begin `tag` (held back until more arrives)."""
    for size in range(min(len(tag) - 1, len(text)), 0, -1):
        if tag.startswith(text[-size:]):
            return size
    return 0


class ScratchpadFilter:
    """Feed pieces in order with `feed()`, then `end()`; both return the text the user may see."""

    def __init__(self) -> None:
        self._pending = ""
        self._inside = False
        self._after_close = False  # the answer after a scratchpad starts without the blank lines between

    def feed(self, piece: str) -> str:
        self._pending += piece
        visible = []
        while True:
            if self._inside:
                end = self._pending.find(CLOSE)
                if end < 0:
                    # Private text is dropped as it comes; only a possible start of the closing tag is kept.
                    self._pending = self._pending[
                        len(self._pending) - _partial_tag_at_end(self._pending, CLOSE) :
                    ]
                    break
                self._pending = self._pending[end + len(CLOSE) :]
                self._inside, self._after_close = False, True
                continue
            start = self._pending.find(OPEN)
            if start >= 0:
                visible.append(self._shown(self._pending[:start]))
                self._pending = self._pending[start + len(OPEN) :]
                self._inside = True
                continue
            keep = _partial_tag_at_end(self._pending, OPEN)
            visible.append(self._shown(self._pending[: len(self._pending) - keep]))
            self._pending = self._pending[len(self._pending) - keep :]
            break
        return "".join(visible)

    def end(self) -> str:
        """What is left to show: held-back text that was no tag after all; never an unclosed scratchpad."""
        rest = "" if self._inside else self._pending
        self._pending = ""
        return self._shown(rest)

    def _shown(self, text: str) -> str:
        if self._after_close and text:
            text = text.lstrip()
            self._after_close = not text
        return text


def without_scratchpad(text: str) -> str:
    """The whole answer without its scratchpad."""
    pad = ScratchpadFilter()
    return pad.feed(text) + pad.end()
