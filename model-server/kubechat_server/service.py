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
from kubechat_server.engine.engine import Engine, WorkItem
from kubechat_server.engine.loader import LoadedModel
from kubechat_server.engine.prompts import (
    UNSAFE_ERROR,
    BuiltPrompt,
    ContextBudgetError,
    Message,
    PromptFormat,
    PromptSettings,
    UnsafePromptError,
    choose_format,
    make_format,
)
from kubechat_server.engine.requests import GenerationRequest
from kubechat_server.engine.safety import find_forbidden, special_tokens
from kubechat_server.engine.sampling import MAX_TOP_LOGPROBS, SamplingParams
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
# generation_config.json fields that become defaults (the ChatModel's settings still win).
GENERATION_CONFIG_FIELDS = (
    "do_sample",
    "temperature",
    "top_p",
    "top_k",
    "max_new_tokens",
    "min_new_tokens",
    "repetition_penalty",
)


@dataclass(frozen=True)
class SamplingRequest:
    """What a request may set; ``None`` means "the ChatModel's default"."""

    max_new_tokens: int | None = None
    temperature: float | None = None
    top_p: float | None = None
    stop: tuple[str, ...] | None = None
    seed: int | None = None
    top_k: int | None = None
    min_new_tokens: int | None = None
    repetition_penalty: float | None = None
    presence_penalty: float | None = None
    frequency_penalty: float | None = None
    logprobs: int | None = None


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
            self.prompt_format = make_format(name, loaded.tokenizer, loaded.model_type)
            self._check_configured_prompt()
            self.defaults = self._config_defaults(model_defaults(loaded))
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
        """A greedy row and a sampled row with every per-row setting, batched: a device mismatch or a
        sampling bug fails here, before readiness, rather than on the first user's request."""
        built = await self.chat_prompt([Message("user", "Hello")])
        greedy = replace(self.defaults, max_new_tokens=2, do_sample=False)
        sampled = replace(
            self.defaults,
            max_new_tokens=3,
            do_sample=True,
            temperature=0.7,
            top_p=0.9,
            top_k=40,
            seed=0,
            min_new_tokens=1,
            repetition_penalty=1.1,
            presence_penalty=0.1,
            frequency_penalty=0.1,
            logprobs=2,
        )
        items = [WorkItem(built.input_ids, greedy), WorkItem(built.input_ids, sampled)]
        # Together when the queue holds two (a mixed batch), else one after the other.
        groups = [items] if self.config.max_queue >= len(items) else [[item] for item in items]
        for group in groups:
            for request in self.engine.submit_many(group, self.config.request_timeout_s):
                finished = await request.result()
                if finished.reason not in ("stop", "length"):
                    raise RuntimeError(f"warm-up generation ended with {finished.reason}: {finished.error}")

    def _config_defaults(self, model: SamplingParams) -> SamplingParams:
        """The ChatModel's settings over the model's own defaults."""
        c = self.config
        chosen = {
            "max_new_tokens": c.max_new_tokens,
            "temperature": c.temperature,
            "top_p": c.top_p,
            "top_k": c.top_k,
            "min_new_tokens": c.min_new_tokens,
            "do_sample": c.do_sample,
        }
        return replace(model, stop=c.stop, **{k: v for k, v in chosen.items() if v is not None})

    def _check_configured_prompt(self) -> None:
        """The ChatModel's own prompt text may carry no control strings either (refused at start)."""
        c = self.config
        texts = {
            "instruction": c.instruction,
            "knowledge": c.knowledge,
            "persona.character": c.persona.character,
            "persona.world": c.persona.world,
        }
        for name, text in texts.items():
            found = self.prompt_format.violations(text)
            if found:
                raise ValueError(f"the ChatModel's prompt.{name} carries control strings: {', '.join(found)}")

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
    def fault(self) -> str | None:
        """Why the engine stopped working (the pod needs a restart), or None."""
        return self.engine.fault if self.engine is not None else None

    @property
    def is_ready(self) -> bool:
        return self.ready.is_set() and not self.draining and self.fault is None

    def require_ready(self) -> None:
        if self.fault:
            raise APIError(
                503, f"the engine failed: {self.fault}", "engine_fault", "service_unavailable", retry_after=5
            )
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

    # Building a prompt (a Jinja chat template, then the tokenizer over up to a 1 MiB body) is CPU work that
    # would stall every stream on the event loop; on a worker thread it does not (transformers' fast
    # tokenizers encode through `tokenizers`' encode_batch, which releases the GIL).
    async def chat_prompt(
        self, messages: list[Message], persona: Persona | None = None, max_new_tokens: int | None = None
    ) -> BuiltPrompt:
        """The dialog as token ids within the input budget, built off the event loop."""
        return await asyncio.to_thread(self._chat_prompt, messages, persona, max_new_tokens)

    async def text_prompt(self, text: str, max_new_tokens: int | None = None) -> list[int]:
        """A raw completion prompt as token ids, built off the event loop."""
        return await asyncio.to_thread(self._text_prompt, text, max_new_tokens)

    def _chat_prompt(
        self, messages: list[Message], persona: Persona | None, max_new_tokens: int | None
    ) -> BuiltPrompt:
        budget = self.input_budget(max_new_tokens or self.defaults.max_new_tokens)
        if persona is not None:
            # A request's persona lands in the system prompt: it may carry no control tags either.
            self.prompt_format.check_safe(
                [Message("system", persona.character), Message("system", persona.world)]
            )
        return self.prompt_format.build(messages, self.settings(persona), budget)

    def _text_prompt(self, text: str, max_new_tokens: int | None) -> list[int]:
        """A raw completion prompt (``/generate``, ``/v1/completions``): tokenized as is, never truncated.

        There is no dialog to break out of, so only the tokenizer's special tokens (which would become
        control ids) are refused."""
        found = find_forbidden(text, special_tokens(self.loaded.tokenizer))
        if found:
            raise UnsafePromptError(f"{UNSAFE_ERROR} (the prompt contains {', '.join(found)})")
        ids = self.loaded.tokenizer.encode(text)
        budget = self.input_budget(max_new_tokens or self.defaults.max_new_tokens)
        if len(ids) > budget:
            raise ContextBudgetError(needed=len(ids), budget=budget, fixed=0)
        return ids

    # -- sampling and submitting -----------------------------------------------------------------------
    def sampling(self, asked: SamplingRequest) -> SamplingParams:
        """The request's parameters over the ChatModel's defaults, checked (400 naming the parameter)."""
        d = self.defaults

        def pick(name: str):
            value = getattr(asked, name)
            return value if value is not None else getattr(d, name)

        params = SamplingParams(
            max_new_tokens=pick("max_new_tokens"),
            temperature=pick("temperature"),
            top_p=pick("top_p"),
            # OpenAI semantics: a temperature in the request decides; 0 means greedy.
            do_sample=True if asked.temperature is not None else d.do_sample,
            stop=tuple(asked.stop) if asked.stop is not None else d.stop,
            seed=asked.seed,
            top_k=pick("top_k"),
            min_new_tokens=pick("min_new_tokens"),
            repetition_penalty=pick("repetition_penalty"),
            presence_penalty=pick("presence_penalty"),
            frequency_penalty=pick("frequency_penalty"),
            logprobs=asked.logprobs,
        )
        checks = [
            (
                "max_tokens",
                1 <= params.max_new_tokens <= MAX_NEW_TOKENS_LIMIT,
                f"max tokens must be between 1 and {MAX_NEW_TOKENS_LIMIT}",
            ),
            ("temperature", 0.0 <= params.temperature <= 2.0, "temperature must be between 0 and 2"),
            ("top_p", 0.0 < params.top_p <= 1.0, "top_p must be in (0, 1]"),
            ("top_k", params.top_k >= 0, "top_k must be 0 (off) or positive"),
            (
                "min_tokens",
                0 <= params.min_new_tokens <= params.max_new_tokens,
                "min tokens must be between 0 and the max tokens",
            ),
            (
                "repetition_penalty",
                0.0 < params.repetition_penalty <= 2.0,
                "repetition_penalty must be in (0, 2]",
            ),
            (
                "presence_penalty",
                -2.0 <= params.presence_penalty <= 2.0,
                "presence_penalty must be between -2 and 2",
            ),
            (
                "frequency_penalty",
                -2.0 <= params.frequency_penalty <= 2.0,
                "frequency_penalty must be between -2 and 2",
            ),
            ("stop", len(params.stop) <= 4 and all(params.stop), "stop takes at most 4 non-empty strings"),
            (
                "top_logprobs",
                params.logprobs is None or 0 <= params.logprobs <= MAX_TOP_LOGPROBS,
                f"top_logprobs must be between 0 and {MAX_TOP_LOGPROBS}",
            ),
        ]
        for param, ok, message in checks:
            if not ok:
                raise APIError(400, message, "invalid_parameters", param=param)
        return params

    def submit(
        self,
        prompt_ids: list[int],
        params: SamplingParams,
        stream: bool = False,
        hide_scratchpad: bool = False,
    ) -> GenerationRequest:
        return self.submit_many([WorkItem(prompt_ids, params)], stream, hide_scratchpad)[0]

    def submit_many(
        self, items: list[WorkItem], stream: bool = False, hide_scratchpad: bool = False
    ) -> list[GenerationRequest]:
        """Queue every item or none (429 when they do not all fit)."""
        self.require_ready()
        return self.engine.submit_many(items, self.config.request_timeout_s, stream, hide_scratchpad)

    def hides_scratchpad(self, persona: Persona | None) -> bool:
        """Whether answers must lose their scratchpad (the request's persona, else the ChatModel's)."""
        return (persona or self.config.persona).scratchpad

    def identity(self) -> dict:
        """``pod``, ``node`` and ``model`` for every response (downward-API env)."""
        return {"pod": self.config.pod_name, "node": self.config.node_name, "model": self.config.model_name}


def model_defaults(loaded: LoadedModel) -> SamplingParams:
    """The family's defaults, overridden by what the model's ``generation_config.json`` sets."""
    family = FAMILY_DEFAULTS[loaded.seq2seq]
    generation = loaded.generation_config
    if generation is None:
        return family
    # Only the values the file sets (the class's own defaults, e.g. top_k 50, are not the model's choice).
    given = generation.to_diff_dict()
    chosen = {k: given[k] for k in GENERATION_CONFIG_FIELDS if given.get(k) is not None}
    return replace(family, **chosen)
