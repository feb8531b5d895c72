"""What user-controlled text may not carry, whatever the prompt format: one list per served model.

A user (or a persona, a system message, a raw completion prompt) must never smuggle in control structure:

- the model family's tags: Llama-2's ``[INST]``, ``[/INST]``, ``<<SYS>>``, ``<</SYS>>`` for every
  Llama-2-style model (``model_type`` llama or mistral), also when a chat template or plain text builds the
  prompt;
- the literal markers of the tokenizer's chat template (``<|im_start|>``, ``[INST]``, ``<start_of_turn>``,
  …), read from its string literals;
- every special or added-special token (``<s>``, ``</s>``, also those a tokenizer added with ``special=True``
  but left out of ``all_special_tokens``): a fast tokenizer turns them into control ids;
- the prompt format's own tags (GODEL's ``[CONTEXT]``, ``[KNOWLEDGE]`` and its ``EOS`` turn separator).

Non-special added tokens are refused too when they look like markup (they carry one of ``<>[]|``); plain
words that a tokenizer added stay allowed.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

LLAMA2_TAGS = ("[INST]", "[/INST]", "<<SYS>>", "<</SYS>>")
LLAMA2_FAMILY = ("llama", "mistral")
# Meta's reference answers an unsafe dialog with exactly this text.
UNSAFE_ERROR = "Error: special tags are not allowed as part of the prompt."

_LITERAL = re.compile(r"'((?:[^'\\]|\\.)*)'|\"((?:[^\"\\]|\\.)*)\"")
_MARKER = re.compile(r"<\|[^<>|\s]+\|>|\[/?[A-Za-z_]+\]|<</?[A-Za-z_]+>>|</?[A-Za-z_][A-Za-z0-9_]*>")
_MARKUP = re.compile(r"[<>\[\]|]")


def family_tags(model_type: str) -> tuple[str, ...]:
    """The control tags of the model family (Llama-2's for Llama-2-style models)."""
    return LLAMA2_TAGS if model_type in LLAMA2_FAMILY else ()


def template_markers(template: str | None) -> tuple[str, ...]:
    """Marker-looking pieces of the chat template's string literals (``'[INST] '`` gives ``[INST]``)."""
    if not template:
        return ()
    found = set()
    for match in _LITERAL.finditer(template):
        literal = match.group(1) if match.group(1) is not None else match.group(2)
        found.update(_MARKER.findall(literal))
    return tuple(sorted(found))


def special_tokens(tokenizer) -> tuple[str, ...]:
    """Every special token of ``tokenizer``, and the added tokens that are special or look like markup."""
    tokens = set(getattr(tokenizer, "all_special_tokens", ()) or ())
    for added in (getattr(tokenizer, "added_tokens_decoder", None) or {}).values():
        content = getattr(added, "content", str(added))
        if getattr(added, "special", False) or _MARKUP.search(content):
            tokens.add(content)
    return tuple(sorted(t for t in tokens if t.strip()))


def forbidden_strings(tokenizer, model_type: str, format_tags: Iterable[str]) -> tuple[str, ...]:
    """All strings user text may not contain for this model and prompt format."""
    template = getattr(tokenizer, "chat_template", None)
    if isinstance(template, dict):  # named templates: every one of them may be used
        template = "\n".join(template.values())
    parts = (*format_tags, *family_tags(model_type), *template_markers(template), *special_tokens(tokenizer))
    return tuple(dict.fromkeys(p for p in parts if p))


def find_forbidden(text: str, forbidden: Iterable[str]) -> list[str]:
    """The forbidden strings ``text`` contains, sorted."""
    return sorted({tag for tag in forbidden if tag in text})
