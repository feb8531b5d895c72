"""The model server's configuration: defaults, then environment (the ChatModel's ConfigMap), then overrides.

The environment variables are the contract of docs/contracts.md; the CLI flags of ``kubechat-server`` mirror
them.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

ARCHITECTURES = ("auto", "seq2seq", "causal")
PROMPT_FORMATS = ("auto", "godel", "llama-2", "chat-template", "plain")
ENGINES = ("auto", "transformers", "llama.cpp")
DTYPES = ("auto", "float32", "bfloat16", "float16")


class ConfigError(ValueError):
    """A configuration value that cannot be used; the server refuses to start with it."""


@dataclass(frozen=True)
class Persona:
    """The NPC of the seeds: who the model plays and in which world."""

    character: str = ""
    world: str = ""
    scratchpad: bool = False


@dataclass(frozen=True)
class ServerConfig:
    """Everything the server reads at start; ``None`` generation values mean "the model family's default"."""

    model_id: str = ""
    model_revision: str = ""  # a Hub branch, tag or commit; empty = the default branch
    model_file: str = ""  # a GGUF file in the repo or directory of model_id; empty = transformers files
    served_model_name: str = ""
    architecture: str = "auto"
    prompt_format: str = "auto"
    instruction: str = ""
    knowledge: str = ""
    persona: Persona = field(default_factory=Persona)
    max_new_tokens: int | None = None
    temperature: float | None = None
    top_p: float | None = None
    top_k: int | None = None
    min_new_tokens: int | None = None
    do_sample: bool | None = None
    stop: tuple[str, ...] = ()
    max_batch_size: int = 16
    max_queue_delay_ms: float = 10.0
    max_queue: int = 256
    max_input_tokens: int = 1024
    request_timeout_s: float = 120.0
    port: int = 8080
    host: str = "0.0.0.0"
    admin_token: str | None = None
    pod_name: str = ""
    pod_namespace: str = ""
    node_name: str = ""
    progress_configmap: str | None = None
    drain_seconds: float = 0.0
    device: str = "auto"
    torch_threads: int | None = None
    dtype: str = "auto"  # transformers engine; auto: bf16 on GPUs and on CPUs with native bf16, else fp32
    engine: str = "auto"  # auto | transformers | llama.cpp (auto: llama.cpp for a GGUF file on CPU)
    llama_server: str | None = None  # the llama-server binary; None = the one on PATH

    @property
    def model_name(self) -> str:
        """The name clients use in ``model``: the served name, else the last part of the model id."""
        return self.served_model_name or self.model_id.rstrip("/").split("/")[-1]

    def with_overrides(self, **overrides: Any) -> ServerConfig:
        """A copy with the given fields replaced (``None`` values are ignored)."""
        return replace(self, **{k: v for k, v in overrides.items() if v is not None})


def _bool(name: str, raw: str) -> bool:
    value = raw.strip().lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off", ""):
        return False
    raise ConfigError(f"{name} must be true or false, got {raw!r}")


def _number(name: str, raw: str, kind: type) -> Any:
    try:
        return kind(raw)
    except ValueError as exc:
        noun = "an integer" if kind is int else "a number"
        raise ConfigError(f"{name} must be {noun}, got {raw!r}") from exc


def _stop(raw: str) -> tuple[str, ...]:
    try:
        value = json.loads(raw) if raw.strip() else []
    except json.JSONDecodeError as exc:
        raise ConfigError(f"KUBECHAT_STOP must be a JSON list of strings: {exc}") from exc
    if not isinstance(value, list) or not all(isinstance(s, str) and s for s in value):
        raise ConfigError("KUBECHAT_STOP must be a JSON list of non-empty strings")
    return tuple(value)


_ENV: dict[str, tuple[str, Any]] = {
    "KUBECHAT_MODEL_ID": ("model_id", str),
    "KUBECHAT_MODEL_REVISION": ("model_revision", str),
    "KUBECHAT_MODEL_FILE": ("model_file", str),
    "KUBECHAT_SERVED_MODEL_NAME": ("served_model_name", str),
    "KUBECHAT_ARCHITECTURE": ("architecture", str),
    "KUBECHAT_PROMPT_FORMAT": ("prompt_format", str),
    "KUBECHAT_INSTRUCTION": ("instruction", str),
    "KUBECHAT_KNOWLEDGE": ("knowledge", str),
    "KUBECHAT_MAX_NEW_TOKENS": ("max_new_tokens", int),
    "KUBECHAT_TEMPERATURE": ("temperature", float),
    "KUBECHAT_TOP_P": ("top_p", float),
    "KUBECHAT_TOP_K": ("top_k", int),
    "KUBECHAT_MIN_NEW_TOKENS": ("min_new_tokens", int),
    "KUBECHAT_DO_SAMPLE": ("do_sample", bool),
    "KUBECHAT_STOP": ("stop", tuple),
    "KUBECHAT_MAX_BATCH_SIZE": ("max_batch_size", int),
    "KUBECHAT_MAX_QUEUE_DELAY_MS": ("max_queue_delay_ms", float),
    "KUBECHAT_MAX_QUEUE": ("max_queue", int),
    "KUBECHAT_MAX_INPUT_TOKENS": ("max_input_tokens", int),
    "KUBECHAT_REQUEST_TIMEOUT_S": ("request_timeout_s", float),
    "KUBECHAT_PORT": ("port", int),
    "KUBECHAT_ADMIN_TOKEN": ("admin_token", str),
    "POD_NAME": ("pod_name", str),
    "POD_NAMESPACE": ("pod_namespace", str),
    "NODE_NAME": ("node_name", str),
    "KUBECHAT_PROGRESS_CONFIGMAP": ("progress_configmap", str),
    "KUBECHAT_DRAIN_SECONDS": ("drain_seconds", float),
    "KUBECHAT_DEVICE": ("device", str),
    "KUBECHAT_TORCH_THREADS": ("torch_threads", int),
    "KUBECHAT_ENGINE": ("engine", str),
    "KUBECHAT_DTYPE": ("dtype", str),
    "KUBECHAT_LLAMA_SERVER": ("llama_server", str),
}


def config_from_env(env: Mapping[str, str] | None = None) -> ServerConfig:
    """Read the contract's environment variables; unset ones keep their defaults."""
    env = os.environ if env is None else env
    values: dict[str, Any] = {}
    for name, (attr, kind) in _ENV.items():
        raw = env.get(name)
        if raw is None or (raw == "" and kind is not str):
            continue
        if kind is bool:
            values[attr] = _bool(name, raw)
        elif kind is tuple:
            values[attr] = _stop(raw)
        elif kind is str:
            values[attr] = raw or (
                None if attr in ("admin_token", "progress_configmap", "llama_server") else raw
            )
        else:
            values[attr] = _number(name, raw, kind)
    values["persona"] = Persona(
        character=env.get("KUBECHAT_PERSONA_CHARACTER", ""),
        world=env.get("KUBECHAT_PERSONA_WORLD", ""),
        scratchpad=_bool("KUBECHAT_PERSONA_SCRATCHPAD", env.get("KUBECHAT_PERSONA_SCRATCHPAD", "false")),
    )
    return validate(ServerConfig(**values))


def validate(config: ServerConfig) -> ServerConfig:
    """Refuse values the server cannot run with, naming the setting."""
    if config.architecture not in ARCHITECTURES:
        raise ConfigError(f"architecture must be one of {ARCHITECTURES}, got {config.architecture!r}")
    if config.model_file and not config.model_file.endswith(".gguf"):
        raise ConfigError(f"the model file must be a GGUF file (name.gguf), got {config.model_file!r}")
    if config.prompt_format not in PROMPT_FORMATS:
        raise ConfigError(f"prompt format must be one of {PROMPT_FORMATS}, got {config.prompt_format!r}")
    if config.dtype not in DTYPES:
        raise ConfigError(f"dtype must be one of {DTYPES}, got {config.dtype!r}")
    if config.engine not in ENGINES:
        raise ConfigError(f"engine must be one of {ENGINES}, got {config.engine!r}")
    positive = ("max_batch_size", "max_queue", "max_input_tokens", "request_timeout_s")
    for name in positive:
        if getattr(config, name) <= 0:
            raise ConfigError(f"{name} must be positive, got {getattr(config, name)}")
    for name in ("top_k", "min_new_tokens"):
        if (getattr(config, name) or 0) < 0:
            raise ConfigError(f"{name} must not be negative, got {getattr(config, name)}")
    if config.max_queue_delay_ms < 0:
        raise ConfigError("max_queue_delay_ms must not be negative")
    return config
