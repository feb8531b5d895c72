"""The served model as the routes see it: loading state, prompts, sampling defaults, submitting work.

Loading happens on a background thread so that liveness (``/health``) answers at once while readiness
(``/readyz``) stays 503 until the model has answered a warm-up request.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from dataclasses import dataclass, replace

from kubechat_server.config import Persona, ServerConfig
from kubechat_server.engine.engine import Engine
from kubechat_server.engine.loader import LoadedModel
from kubechat_server.engine.prompts import (
    BuiltPrompt,
    ContextBudgetError,
    Message,
    PromptFormat,
    PromptSettings,
    choose_format,
    make_format,
)
from kubechat_server.engine.requests import GenerationRequest
from kubechat_server.engine.sampling import SamplingParams
from kubechat_server.engine.select import start_engine
from kubechat_server.errors import APIError, not_ready
from kubechat_server.metrics import ServerMetrics
from kubechat_server.progress import ProgressReporter

log = logging.getLogger("kubechat_server.service")

# Per family, from the model cards: GODEL samples with top_p 0.9; Meta's Llama-2 examples use 0.6 / 0.9.
FAMILY_DEFAULTS = {
    True: SamplingParams(max_new_tokens=128, temperature=1.0, top_p=0.9, do_sample=True),
    False: SamplingParams(max_new_tokens=128, temperature=0.6, top_p=0.9, do_sample=True),
}
MAX_NEW_TOKENS_LIMIT = 4096


@dataclass(frozen=True)
class SamplingRequest:
    """What a request may set; ``None`` means "the ChatModel's default"."""

    max_new_tokens: int | None = None
    temperature: float | None = None
    top_p: float | None = None
    stop: tuple[str, ...] | None = None
    seed: int | None = None


class ModelService:
    """Owns the model, its prompt format and the engine; tracks loading, readiness and draining."""

    def __init__(self, config: ServerConfig, metrics: ServerMetrics, reporter: ProgressReporter):
        self.config = config
        self.metrics = metrics
        self.reporter = reporter
        self.loaded: LoadedModel | None = None
        self.prompt_format: PromptFormat | None = None
        self.engine: Engine | None = None
        self.ready = threading.Event()
        self.draining = False
        self.failure: str | None = None
        self.defaults = SamplingParams()

    # -- lifecycle -------------------------------------------------------------------------------------
    def start_loading(self) -> threading.Thread:
        thread = threading.Thread(target=self._load, name="model-loader", daemon=True)
        thread.start()
        return thread

    def _load(self) -> None:
        try:
            loaded, engine = start_engine(self.config, self.metrics, self.reporter)
            name = choose_format(
                self.config.prompt_format, loaded.seq2seq, loaded.model_type, loaded.has_chat_template
            )
            self.prompt_format = make_format(name, loaded.tokenizer)
            self.defaults = self._config_defaults(FAMILY_DEFAULTS[loaded.seq2seq])
            self.loaded = loaded
            self.engine = engine
            self.reporter.update("warming", "warm-up generation")
            asyncio.run(self._warm_up())
            self.reporter.update("ready", f"{self.config.model_name} ({name} prompts) on {loaded.device}")
            self.ready.set()
        except Exception as exc:  # any load failure: report it and keep answering probes with the reason
            log.exception("loading %s failed", self.config.model_id)
            self.failure = f"{type(exc).__name__}: {exc}"
            self.reporter.update("failed", self.failure[:500])

    async def _warm_up(self) -> None:
        built = self.chat_prompt([Message("user", "Hello")])
        params = replace(self.defaults, max_new_tokens=2, do_sample=False)
        request = self.engine.submit(built.input_ids, params, self.config.request_timeout_s)
        finished = await request.result()
        if finished.reason not in ("stop", "length"):
            raise RuntimeError(f"warm-up generation ended with {finished.reason}: {finished.error}")

    def _config_defaults(self, family: SamplingParams) -> SamplingParams:
        c = self.config
        return SamplingParams(
            max_new_tokens=c.max_new_tokens if c.max_new_tokens is not None else family.max_new_tokens,
            temperature=c.temperature if c.temperature is not None else family.temperature,
            top_p=c.top_p if c.top_p is not None else family.top_p,
            do_sample=c.do_sample if c.do_sample is not None else family.do_sample,
            stop=c.stop,
        )

    def begin_drain(self) -> None:
        """Readiness goes 503 and new work is refused; queued and running work finishes."""
        self.draining = True
        if self.engine is not None:
            self.engine.stop_accepting()

    def close(self) -> None:
        if self.engine is not None:
            self.engine.close()
        self.reporter.close()

    # -- state -----------------------------------------------------------------------------------------
    @property
    def is_ready(self) -> bool:
        return self.ready.is_set() and not self.draining

    def require_ready(self) -> None:
        if self.draining:
            raise APIError(503, "the server is shutting down", "shutting_down", "service_unavailable", 5)
        if self.failure:
            raise APIError(
                503, f"the model failed to load: {self.failure}", "model_failed", "service_unavailable"
            )
        if not self.ready.is_set():
            raise not_ready()

    def check_model_name(self, name: str | None) -> None:
        """Clients may name the served model or its id; anything else is a 404, as OpenAI answers."""
        if name and name not in (self.config.model_name, self.config.model_id):
            raise APIError(
                404,
                f"the model {name!r} does not exist here; use {self.config.model_name!r}",
                "model_not_found",
            )

    # -- prompts ---------------------------------------------------------------------------------------
    def settings(self, persona: Persona | None = None) -> PromptSettings:
        c = self.config
        return PromptSettings(instruction=c.instruction, knowledge=c.knowledge, persona=persona or c.persona)

    def input_budget(self, max_new_tokens: int) -> int:
        """How many prompt tokens fit: the configured limit, and the model's window minus the answer."""
        budget = self.config.max_input_tokens
        if self.loaded.max_positions and not self.loaded.seq2seq:
            budget = min(budget, self.loaded.max_positions - max_new_tokens)
        return budget

    def chat_prompt(
        self, messages: list[Message], persona: Persona | None = None, max_new_tokens: int | None = None
    ) -> BuiltPrompt:
        budget = self.input_budget(max_new_tokens or self.defaults.max_new_tokens)
        if persona is not None:
            # A request's persona lands in the system prompt: it may carry no control tags either.
            self.prompt_format.check_safe(
                [Message("system", persona.character), Message("system", persona.world)]
            )
        return self.prompt_format.build(messages, self.settings(persona), budget)

    def text_prompt(self, text: str, max_new_tokens: int | None = None) -> list[int]:
        """A raw completion prompt (``/generate``, ``/v1/completions``): tokenized as is, never truncated."""
        ids = self.loaded.tokenizer.encode(text)
        budget = self.input_budget(max_new_tokens or self.defaults.max_new_tokens)
        if len(ids) > budget:
            raise ContextBudgetError(needed=len(ids), budget=budget, fixed=0)
        return ids

    # -- sampling and submitting -----------------------------------------------------------------------
    def sampling(self, asked: SamplingRequest) -> SamplingParams:
        """The request's parameters over the ChatModel's defaults, checked (422 for absurd values)."""
        d = self.defaults
        params = SamplingParams(
            max_new_tokens=asked.max_new_tokens if asked.max_new_tokens is not None else d.max_new_tokens,
            temperature=asked.temperature if asked.temperature is not None else d.temperature,
            top_p=asked.top_p if asked.top_p is not None else d.top_p,
            # OpenAI semantics: a temperature in the request decides; 0 means greedy.
            do_sample=True if asked.temperature is not None else d.do_sample,
            stop=tuple(asked.stop) if asked.stop is not None else d.stop,
            seed=asked.seed,
        )
        problems = []
        if not 1 <= params.max_new_tokens <= MAX_NEW_TOKENS_LIMIT:
            problems.append(f"max tokens must be between 1 and {MAX_NEW_TOKENS_LIMIT}")
        if not 0.0 <= params.temperature <= 2.0:
            problems.append("temperature must be between 0 and 2")
        if not 0.0 < params.top_p <= 1.0:
            problems.append("top_p must be in (0, 1]")
        if len(params.stop) > 4 or any(not s for s in params.stop):
            problems.append("stop takes at most 4 non-empty strings")
        if problems:
            raise APIError(422, "; ".join(problems), "invalid_parameters")
        return params

    def submit(
        self, prompt_ids: list[int], params: SamplingParams, stream: bool = False
    ) -> GenerationRequest:
        self.require_ready()
        return self.engine.submit(prompt_ids, params, self.config.request_timeout_s, stream)

    def identity(self) -> dict:
        """``pod``, ``node`` and ``model`` for every response (downward-API env)."""
        return {"pod": self.config.pod_name, "node": self.config.node_name, "model": self.config.model_name}
