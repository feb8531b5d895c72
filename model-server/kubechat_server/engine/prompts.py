"""Prompt formats: turn a dialog (plus the ChatModel's instruction, knowledge and persona) into token ids.

- ``godel``: the grounded format of GODEL's model card,
  ``{instruction} [CONTEXT] {turns joined by ' EOS '} [KNOWLEDGE] {knowledge}``.
- ``llama-2``: Meta's reference ``chat_completion``: the system text merged into the first user turn between
  ``<<SYS>>`` markers, every user/assistant pair tokenized as ``[INST] u [/INST] a`` framed by the BOS and EOS
  token ids (not the literal strings), the last user turn with BOS only.
- ``chat-template``: the tokenizer's own Jinja chat template.
- ``plain``: a ``Role: text`` transcript, for base models without a chat format.

The context budget is explicit: when a dialog does not fit, the oldest turns are dropped (and counted), never
the instruction, knowledge or persona; when even the last message does not fit, ``ContextBudgetError`` says
by how much. A message carrying the format's control tags (or the tokenizer's special tokens) is refused
with ``UnsafePromptError`` before anything is tokenized.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

from kubechat_server.config import Persona
from kubechat_server.engine.safety import LLAMA2_TAGS, UNSAFE_ERROR, find_forbidden, forbidden_strings

ROLES = ("system", "user", "assistant")

LLAMA2_B_INST, LLAMA2_E_INST = "[INST]", "[/INST]"
LLAMA2_B_SYS, LLAMA2_E_SYS = "<<SYS>>\n", "\n<</SYS>>\n\n"
GODEL_TAGS = ("[CONTEXT]", "[KNOWLEDGE]")
# The instruction of GODEL's model card (its spelling kept: the model was trained on such prompts).
GODEL_DEFAULT_INSTRUCTION = "Instruction: given a dialog context, you need to response empathically."
GODEL_INSTRUCTION_PREFIX = "Instruction: "
# GODEL joins turns with ' EOS ': the word on its own in a message would fake a turn boundary.
GODEL_EOS = re.compile(r"(?:^|\s)EOS(?:\s|$)")


class PromptError(ValueError):
    """A dialog the server cannot turn into a prompt; the message is safe to show to the client."""

    code = "invalid_prompt"


class UnsafePromptError(PromptError):
    """A message carries control tags of the prompt format, the model family or the tokenizer."""

    code = "unsafe_prompt"


class ChatTemplateError(PromptError):
    """The tokenizer's chat template refused the dialog (its ``raise_exception``) or failed on it."""

    code = "chat_template_error"


class ContextBudgetError(PromptError):
    """Even the shortest acceptable prompt does not fit the context budget."""

    code = "context_length_exceeded"

    def __init__(self, needed: int, budget: int, fixed: int):
        self.needed, self.budget, self.fixed = needed, budget, fixed
        super().__init__(
            f"the prompt needs {needed} tokens even with only the last message "
            f"(instruction, knowledge and persona take {fixed} of them), but at most {budget} fit; "
            f"shorten the message or the ChatModel's prompt settings"
        )


@dataclass(frozen=True)
class Message:
    """One turn of a dialog."""

    role: str
    content: str


@dataclass(frozen=True)
class PromptSettings:
    """What the ChatModel adds to every dialog."""

    instruction: str = ""
    knowledge: str = ""
    persona: Persona = field(default_factory=Persona)


@dataclass(frozen=True)
class BuiltPrompt:
    """Token ids ready for the model, and how many of the oldest messages were dropped to fit."""

    input_ids: list[int]
    dropped_messages: int = 0


def persona_text(persona: Persona) -> str:
    """The persona as a sentence the model reads before the dialog."""
    parts = []
    if persona.character:
        parts.append(f"You are {persona.character}.")
    if persona.world:
        parts.append(f"Your world: {persona.world}")
    if persona.scratchpad:
        parts.append(
            "Think first inside <scratchpad></scratchpad>; only the text after the scratchpad is shown."
        )
    return " ".join(parts)


@dataclass(frozen=True)
class Dialog:
    """A dialog split into what a format needs: the instruction, then the turns, ending with a user's."""

    instruction: str
    turns: list[Message]


def system_text(instruction: str, settings: PromptSettings) -> str:
    """Instruction, persona and knowledge as one system prompt (Llama-2's ``<<SYS>>`` text)."""
    return "\n\n".join(p for p in (instruction, persona_text(settings.persona), settings.knowledge) if p)


def split_dialog(messages: Sequence[Message], settings: PromptSettings) -> Dialog:
    """Merge the request's system messages with the settings; check roles; the last turn must be a user's."""
    if not messages:
        raise PromptError("the dialog has no messages")
    for message in messages:
        if message.role not in ROLES:
            raise PromptError(f"unknown role {message.role!r}; use one of {', '.join(ROLES)}")
    system_parts = [m.content for m in messages if m.role == "system"]
    turns = [m for m in messages if m.role != "system"]
    if not turns or turns[-1].role != "user":
        raise PromptError("the last message must be from the user")
    # A system message in the request replaces the configured instruction; knowledge and persona stay.
    instruction = "\n".join(system_parts) if system_parts else settings.instruction
    return Dialog(instruction=instruction, turns=turns)


class Tokenizer(Protocol):
    """The part of a Hugging Face tokenizer the formats use."""

    bos_token_id: int | None
    eos_token_id: int | None
    all_special_tokens: list[str]

    def encode(self, text: str, add_special_tokens: bool = True) -> list[int]: ...


class PromptFormat:
    """Base of the formats: control tags, rendering, and the budget loop shared by all."""

    name = ""
    tags: tuple[str, ...] = ()

    def __init__(self, tokenizer: Tokenizer, model_type: str = ""):
        self.tokenizer = tokenizer
        self.forbidden = forbidden_strings(tokenizer, model_type, self.tags)

    def violations(self, text: str) -> list[str]:
        """The control strings ``text`` carries (empty when it is safe)."""
        return find_forbidden(text, self.forbidden)

    def check_safe(self, messages: Sequence[Message]) -> None:
        """Raise ``UnsafePromptError`` when any message carries a control string."""
        for message in messages:
            found = self.violations(message.content)
            if found:
                raise UnsafePromptError(
                    f"{UNSAFE_ERROR} ({message.role} message contains {', '.join(found)})"
                )

    def render(self, instruction: str, turns: Sequence[Message], settings: PromptSettings) -> list[int]:
        raise NotImplementedError

    def build(self, messages: Sequence[Message], settings: PromptSettings, budget: int) -> BuiltPrompt:
        """Token ids for the dialog within ``budget`` tokens, dropping the oldest turns if needed."""
        self.check_safe(messages)
        dialog = split_dialog(messages, settings)
        turns = list(dialog.turns)
        dropped = 0
        while True:
            ids = self.render(dialog.instruction, turns, settings)
            if len(ids) <= budget:
                return BuiltPrompt(input_ids=ids, dropped_messages=dropped)
            if len(turns) == 1:
                fixed = len(self.render(dialog.instruction, [Message("user", "")], settings))
                raise ContextBudgetError(needed=len(ids), budget=budget, fixed=fixed)
            # Drop the oldest turn, then any assistant turn it leaves at the front (turns alternate).
            turns.pop(0)
            dropped += 1
            while turns[0].role == "assistant":
                turns.pop(0)
                dropped += 1


class GodelFormat(PromptFormat):
    """GODEL's model-card format."""

    name = "godel"
    tags = GODEL_TAGS

    def violations(self, text: str) -> list[str]:
        found = super().violations(text)
        return [*found, "EOS"] if GODEL_EOS.search(text) else found

    def render(self, instruction: str, turns: Sequence[Message], settings: PromptSettings) -> list[int]:
        # The persona is grounding, like the knowledge: both go after [KNOWLEDGE].
        knowledge = " ".join(p for p in (persona_text(settings.persona), settings.knowledge) if p)
        query = godel_query(godel_instruction(instruction), [t.content for t in turns], knowledge)
        return self.tokenizer.encode(query)


def godel_instruction(instruction: str) -> str:
    """The instruction as the card writes it: ``Instruction: …`` (the card's own when none is given)."""
    instruction = instruction.strip()
    if not instruction:
        return GODEL_DEFAULT_INSTRUCTION
    if instruction.lower().startswith(GODEL_INSTRUCTION_PREFIX.lower().strip()):
        return instruction
    return GODEL_INSTRUCTION_PREFIX + instruction


def godel_query(instruction: str, dialog: Sequence[str], knowledge: str) -> str:
    """The query string exactly as GODEL's model card builds it."""
    if knowledge != "":
        knowledge = "[KNOWLEDGE] " + knowledge
    context = " EOS ".join(dialog)
    return f"{instruction} [CONTEXT] {context} {knowledge}"


class Llama2Format(PromptFormat):
    """Llama-2-chat as Meta's reference ``chat_completion`` builds it, with BOS/EOS as token ids."""

    name = "llama-2"
    tags = LLAMA2_TAGS

    def render(self, instruction: str, turns: Sequence[Message], settings: PromptSettings) -> list[int]:
        turns = list(turns)
        system = system_text(instruction, settings)
        if system:
            turns[0] = Message(turns[0].role, LLAMA2_B_SYS + system + LLAMA2_E_SYS + turns[0].content)
        users, answers = turns[::2], turns[1::2]
        if any(m.role != "user" for m in users) or any(m.role != "assistant" for m in answers):
            raise PromptError("llama-2 dialogs alternate user and assistant turns, starting with the user")
        bos, eos = self.tokenizer.bos_token_id, self.tokenizer.eos_token_id
        ids: list[int] = []
        for user, answer in zip(users, answers, strict=False):
            text = f"{LLAMA2_B_INST} {user.content.strip()} {LLAMA2_E_INST} {answer.content.strip()} "
            ids += [bos, *self.tokenizer.encode(text, add_special_tokens=False), eos]
        last = f"{LLAMA2_B_INST} {turns[-1].content.strip()} {LLAMA2_E_INST}"
        ids += [bos, *self.tokenizer.encode(last, add_special_tokens=False)]
        return ids


class ChatTemplateFormat(PromptFormat):
    """The tokenizer's own chat template (its special tokens are the control tags)."""

    name = "chat-template"

    def render(self, instruction: str, turns: Sequence[Message], settings: PromptSettings) -> list[int]:
        system = system_text(instruction, settings)
        messages = ([{"role": "system", "content": system}] if system else []) + [
            {"role": t.role, "content": t.content} for t in turns
        ]
        from jinja2.exceptions import TemplateError

        try:
            text = self.tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        except TemplateError as exc:
            raise ChatTemplateError(f"the model's chat template refused the dialog: {exc}") from exc
        # The template writes its own BOS when the model wants one.
        return self.tokenizer.encode(text, add_special_tokens=False)


class PlainFormat(PromptFormat):
    """A readable transcript for models without a chat format."""

    name = "plain"
    tags = ("\nUser:", "\nAssistant:", "\nSystem:")

    def render(self, instruction: str, turns: Sequence[Message], settings: PromptSettings) -> list[int]:
        system = system_text(instruction, settings)
        lines = [f"System: {system}"] if system else []
        lines += [f"{t.role.capitalize()}: {t.content}" for t in turns]
        lines.append("Assistant:")
        return self.tokenizer.encode("\n".join(lines))


FORMATS: dict[str, type[PromptFormat]] = {
    f.name: f for f in (GodelFormat, Llama2Format, ChatTemplateFormat, PlainFormat)
}


def choose_format(requested: str, seq2seq: bool, model_type: str, has_chat_template: bool) -> str:
    """The format to use: the requested one, or for ``auto`` the one the model family was trained on."""
    if requested != "auto":
        return requested
    if seq2seq:
        return "godel"
    if has_chat_template:
        return "chat-template"
    if model_type == "llama":
        return "llama-2"
    return "plain"


def make_format(name: str, tokenizer: Tokenizer, model_type: str = "") -> PromptFormat:
    """An instance of the named format bound to ``tokenizer`` (``model_type`` adds the family's tags)."""
    return FORMATS[name](tokenizer, model_type)
