"""Request bodies of every API family; they are also what the published OpenAPI document shows."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictInt, StrictStr, field_validator

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
    model_config = ConfigDict(extra="forbid")

    include_usage: StrictBool = False


class ResponseFormat(BaseModel):
    type: StrictStr


# At most this many generations per request (prompts x n, dialogs): a bigger request would hold the queue.
MAX_ITEMS = 64
MAX_CHOICES = 16


class _Sampling(BaseModel):
    """Parameters both OpenAI endpoints share. Unknown fields are refused (400 naming them); fields OpenAI
    defines that this server cannot honour are declared so that the refusal can say so (``unsupported``)."""

    model_config = ConfigDict(extra="forbid")

    model: StrictStr | None = Field(None, description="the served model name (GET /v1/models)")
    temperature: float | None = Field(None, description="0 is greedy; default: the ChatModel's")
    top_p: float | None = None
    top_k: StrictInt | None = Field(None, description="vLLM's extension; 0 = off")
    min_tokens: StrictInt | None = Field(None, description="vLLM's extension: EOS is held back until then")
    repetition_penalty: float | None = Field(None, description="vLLM's extension; 1 = off")
    presence_penalty: float | None = None
    frequency_penalty: float | None = None
    stop: StrictStr | list[StrictStr] | None = Field(None, description="up to 4 stop strings")
    seed: StrictInt | None = Field(None, description="makes sampling repeatable")
    stream: StrictBool = False
    stream_options: StreamOptions | None = None
    n: StrictInt = Field(1, ge=1, le=MAX_CHOICES, description=f"choices per prompt (1 to {MAX_CHOICES})")
    user: StrictStr | None = Field(None, description="accepted for OpenAI clients; not used")
    logit_bias: dict[str, float] | None = None
    kubechat: KubechatExtension | None = None

    def stop_list(self) -> tuple[str, ...] | None:
        if self.stop is None:
            return None
        return (self.stop,) if isinstance(self.stop, str) else tuple(self.stop)

    def unsupported(self) -> tuple[str, str] | None:
        """``(param, why)`` for the first parameter given that this server cannot honour."""
        if self.logit_bias:
            return "logit_bias", "logit_bias is not supported"
        return None


class ChatCompletionRequest(_Sampling):
    messages: list[ChatMessage] = Field(min_length=1)
    max_tokens: StrictInt | None = None
    max_completion_tokens: StrictInt | None = None
    logprobs: StrictBool = False
    top_logprobs: StrictInt | None = None
    response_format: ResponseFormat | None = None
    tools: list[dict] | None = None
    tool_choice: StrictStr | dict | None = None
    parallel_tool_calls: StrictBool | None = None
    functions: list[dict] | None = None
    function_call: StrictStr | dict | None = None

    def unsupported(self) -> tuple[str, str] | None:
        if self.response_format is not None and self.response_format.type != "text":
            return "response_format", (
                f"response_format {self.response_format.type!r} is not supported: this server cannot "
                "constrain answers to JSON; only 'text' is"
            )
        for name in ("tools", "functions"):
            if getattr(self, name):
                return name, f"{name} (function calling) is not supported"
        if self.tool_choice not in (None, "none"):
            return "tool_choice", "tool_choice is not supported (no tools)"
        if self.function_call not in (None, "none"):
            return "function_call", "function_call is not supported (no functions)"
        if self.top_logprobs is not None and not self.logprobs:
            return "top_logprobs", "top_logprobs needs logprobs: true"
        return super().unsupported()

    def logprob_count(self) -> int | None:
        """How many alternatives per token the client wants (None: no logprobs)."""
        return (self.top_logprobs or 0) if self.logprobs else None


class CompletionRequest(_Sampling):
    prompt: StrictStr | list[StrictStr] = Field(description=f"a prompt or a list of up to {MAX_ITEMS}")
    max_tokens: StrictInt | None = None
    logprobs: StrictInt | None = Field(None, description="alternatives per token (0 to 20)")
    echo: StrictBool = False
    suffix: StrictStr | None = None
    best_of: StrictInt | None = None

    @field_validator("prompt")
    @classmethod
    def _prompts(cls, prompt: str | list[str]) -> str | list[str]:
        prompts = [prompt] if isinstance(prompt, str) else prompt
        if not prompts or not all(prompts):
            raise ValueError("give a non-empty prompt (or a list of non-empty prompts)")
        if len(prompts) > MAX_ITEMS:
            raise ValueError(f"at most {MAX_ITEMS} prompts per request")
        return prompt

    def prompts(self) -> list[str]:
        return [self.prompt] if isinstance(self.prompt, str) else list(self.prompt)

    def unsupported(self) -> tuple[str, str] | None:
        if self.echo:
            return "echo", "echo is not supported"
        if self.suffix:
            return "suffix", "suffix (insertion) is not supported"
        if self.best_of not in (None, self.n):
            return "best_of", "best_of is not supported (it must equal n)"
        return super().unsupported()


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
    input_string: list[list[SeedMessage]] = Field(min_length=1, max_length=MAX_ITEMS)
    parameters: LlamaParameters | None = None


class LlamaChatRequest(BaseModel):
    """The Llama-2 seed's ``/chat``: several dialogs answered together."""

    input_data: LlamaInputData
    parameters: LlamaParameters | None = None


class GenerateRequest(BaseModel):
    """The Llama-2 seed's ``/generate``: plain text completion of several prompts."""

    prompts: list[StrictStr] = Field(min_length=1, max_length=MAX_ITEMS)
    parameters: LlamaParameters | None = None
