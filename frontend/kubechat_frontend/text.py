"""Text as the frontend keeps and shows it: no control characters a browser or a database would mangle."""

from __future__ import annotations

import re

# C0 controls except tab and newline, and DEL. A browser's HTML parser drops NUL and turns CR into LF, and
# PostgreSQL cannot store NUL at all, so text with them would read differently after a reload (or not save).
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


def clean_text(text: str) -> str:
    """`text` with line breaks as `\\n` and other control characters removed."""
    return _CONTROL.sub("", text.replace("\r\n", "\n").replace("\r", "\n"))
