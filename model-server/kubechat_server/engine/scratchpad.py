"""What users see of an answer whose persona thinks in a private ``<scratchpad>…</scratchpad>`` first.

``visible_text`` removes every scratchpad block. While the answer is still growing (``final=False``) it also
holds back an unclosed block and a tail that could still become an opening tag, so a stream never shows a
character of the scratchpad: what it returns for a longer text always begins with what it returned for a
shorter one. A block left open at the end stays hidden (the persona was told it is private).
"""

from __future__ import annotations

OPEN, CLOSE = "<scratchpad>", "</scratchpad>"


def visible_text(text: str, final: bool) -> str:
    """``text`` without its scratchpad blocks (and, unless ``final``, without what may still become one)."""
    shown = []
    position = 0
    while True:
        start = text.find(OPEN, position)
        if start < 0:
            break
        shown.append(text[position:start])
        end = text.find(CLOSE, start + len(OPEN))
        if end < 0:
            return "".join(shown).lstrip()
        position = end + len(CLOSE)
    rest = text[position:]
    if not final:
        rest = rest[: len(rest) - _partial_open(rest)]
    shown.append(rest)
    # The answer usually follows the scratchpad after a newline: users see it without the blank start.
    return "".join(shown).lstrip()


def _partial_open(text: str) -> int:
    """Length of the longest tail of ``text`` that is a proper prefix of the opening tag."""
    for size in range(min(len(OPEN) - 1, len(text)), 0, -1):
        if OPEN.startswith(text[-size:]):
            return size
    return 0
