"""Request bodies of every API family; they are also what the published OpenAPI document shows."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field, StrictBool, StrictInt, StrictStr, field_validator

from kubechat_server.config import Persona


class KubechatPersona(BaseModel):
    character: StrictStr = ""
    world: StrictStr = ""
    scratchpad: StrictBool = False

    def to_persona(self) -> Persona:
        return Persona(self.character, self.world, self.scratchpad)


class KubechatExtension(BaseModel):
    """kubechat's extension field: per-request persona (the frontend's NPC switcher)."""

    persona: KubechatPersona | None = None


class ContentPart(BaseModel):
    type: Literal["text"]
    text: StrictStr


class ChatMessage(BaseModel):
    role: Literal["system", "user", "assistant", "developer"]
    content: StrictStr | list[ContentPart]
    name: StrictStr | None = None

    def text(self) -> str:
        if isinstance(self.content, str):
            return self.content
        return "".join(part.text for part in self.content)


class StreamOptions(BaseModel):
    include_usage: StrictBool = False


class _Sampling(BaseModel):
    model: StrictStr | None = Field(None, description="the served model name (GET /v1/models)")
    temperature: float | None = Field(None, description="0 is greedy; default: the ChatModel's")
    top_p: float | None = None
    stop: StrictStr | list[StrictStr] | None = Field(None, description="up to 4 stop strings")
    seed: StrictInt | None = Field(None, description="makes sampling repeatable")
    stream: StrictBool = False
    stream_options: StreamOptions | None = None
    n: StrictInt = Field(1, description="only 1 is supported")
    kubechat: KubechatExtension | None = None

    @field_validator("n")
    @classmethod
    def _one_choice(cls, n: int) -> int:
        if n != 1:
            raise ValueError("only n=1 is supported")
        return n

    def stop_list(self) -> tuple[str, ...] | None:
        if self.stop is None:
            return None
        return (self.stop,) if isinstance(self.stop, str) else tuple(self.stop)


class ChatCompletionRequest(_Sampling):
    messages: list[ChatMessage] = Field(min_length=1)
    max_tokens: StrictInt | None = None
    max_completion_tokens: StrictInt | None = None


class CompletionRequest(_Sampling):
    prompt: StrictStr = Field(min_length=1)
    max_tokens: StrictInt | None = None


class SeedMessage(BaseModel):
    role: StrictStr
    content: StrictStr


class GodelChatRequest(BaseModel):
    """The GODEL seed's ``/chat``: one message and the earlier turns (oldest first)."""

    message: StrictStr = Field(min_length=1)
    history: list[StrictStr | SeedMessage] = Field(default_factory=list)


class LlamaParameters(BaseModel):
    max_gen_len: StrictInt | None = None
    temperature: float | None = None
    top_p: float | None = None


class LlamaInputData(BaseModel):
    input_string: list[list[SeedMessage]] = Field(min_length=1)
    parameters: LlamaParameters | None = None


class LlamaChatRequest(BaseModel):
    """The Llama-2 seed's ``/chat``: several dialogs answered together."""

    input_data: LlamaInputData
    parameters: LlamaParameters | None = None


class GenerateRequest(BaseModel):
    """The Llama-2 seed's ``/generate``: plain text completion of several prompts."""

    prompts: list[StrictStr] = Field(min_length=1)
    parameters: LlamaParameters | None = None
