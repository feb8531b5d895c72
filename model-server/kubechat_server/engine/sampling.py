"""Per-request sampling parameters, next-token choice for a whole batch, and stop-string scanning.

The batch's choice is vectorised: every per-row setting (temperature, top-p, top-k, penalties, minimum
length) is a tensor on the model's device, so one step is a handful of kernels whatever the rows ask for.
Random numbers come from generators on that same device: one shared by unseeded rows, one per seeded row
(``torch.multinomial`` and ``torch.rand`` refuse a CPU generator for CUDA tensors).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

MIN_TEMPERATURE = 1e-6
MAX_TOP_LOGPROBS = 20


@dataclass(frozen=True)
class SamplingParams:
    """How one request generates. ``temperature == 0`` or ``do_sample=False`` means greedy (argmax).

    ``top_k == 0`` keeps every token. Penalties follow vLLM (and OpenAI): ``repetition_penalty`` (1 = off)
    divides positive / multiplies negative logits of tokens seen in the prompt or the answer;
    ``presence_penalty`` and ``frequency_penalty`` (0 = off) subtract once per token present in the answer /
    per occurrence. ``logprobs`` asks for the chosen token's log-probability plus that many alternatives
    (``None``: none at all).
    """

    max_new_tokens: int = 128
    temperature: float = 1.0
    top_p: float = 1.0
    do_sample: bool = True
    stop: tuple[str, ...] = ()
    seed: int | None = None
    top_k: int = 0
    min_new_tokens: int = 0
    repetition_penalty: float = 1.0
    presence_penalty: float = 0.0
    frequency_penalty: float = 0.0
    logprobs: int | None = None

    @property
    def greedy(self) -> bool:
        return not self.do_sample or self.temperature == 0.0


@dataclass(frozen=True)
class TokenLogprob:
    """A token's log-probability (under the model's raw distribution) and the best alternatives."""

    token_id: int
    logprob: float
    top: tuple[tuple[int, float], ...] = ()


@dataclass(frozen=True)
class Draw:
    """One step's choice: a token per row and, for rows that asked, its log-probabilities."""

    tokens: list[int]
    logprobs: list[TokenLogprob | None]


def device_generator(device: torch.device, seed: int | None = None) -> torch.Generator:
    """A random generator that lives on ``device`` (seeded, or from the OS's entropy)."""
    generator = torch.Generator(device=device)
    if seed is None:
        generator.seed()
    else:
        generator.manual_seed(seed)
    return generator


class RowSampler:
    """Chooses each row's next token with that row's own parameters, all rows at once.

    It keeps, per row, which tokens the prompt and answer hold (for the penalties) and how far the answer
    is (for ``min_new_tokens``); ``select`` and ``extend`` follow rows leaving and joining the batch.
    """

    def __init__(
        self,
        params: Sequence[SamplingParams],
        prompts: Sequence[Sequence[int]],
        vocab_size: int,
        device: torch.device,
        shared: torch.Generator,
        stop_token_ids: frozenset[int] = frozenset(),
    ):
        if shared.device.type != device.type:
            raise ValueError(f"the shared generator is on {shared.device}, the logits on {device}")
        self.params = list(params)
        self.device = device
        self.shared = shared
        self.stop_token_ids = torch.tensor(
            sorted(i for i in stop_token_ids if i < vocab_size), dtype=torch.long, device=device
        )
        self.generators = [None if p.seed is None else device_generator(device, p.seed) for p in self.params]
        rows = len(self.params)
        self.seen = torch.zeros((rows, vocab_size), dtype=torch.bool, device=device)
        for row, prompt in enumerate(prompts):
            ids = torch.tensor([i for i in prompt if 0 <= i < vocab_size], dtype=torch.long)
            self.seen[row, ids.to(device)] = True
        self.counts = torch.zeros((rows, vocab_size), dtype=torch.float32, device=device)
        self.made = torch.zeros(rows, dtype=torch.long, device=device)
        self._tensors()

    def _tensors(self) -> None:
        """The per-row settings as tensors on the device (rebuilt when rows leave or join)."""

        def column(values, dtype=torch.float32) -> torch.Tensor:
            return torch.tensor(values, dtype=dtype, device=self.device)

        p = self.params
        self.greedy = column([x.greedy for x in p], torch.bool)
        self.temperature = column([max(x.temperature, MIN_TEMPERATURE) for x in p])
        self.top_p = column([x.top_p for x in p])
        self.top_k = column([x.top_k if x.top_k > 0 else 1 << 62 for x in p], torch.long)
        self.min_new = column([x.min_new_tokens for x in p], torch.long)
        self.repetition = column([x.repetition_penalty for x in p])
        self.presence = column([x.presence_penalty for x in p])
        self.frequency = column([x.frequency_penalty for x in p])
        self.any_sampled = not all(x.greedy for x in p)
        self.any_penalty = any(
            x.repetition_penalty != 1.0 or x.presence_penalty or x.frequency_penalty for x in p
        )
        self.any_min_new = any(x.min_new_tokens > 0 for x in p)
        self.top_logprobs = max((x.logprobs for x in p if x.logprobs is not None), default=None)

    def select(self, keep: Sequence[int]) -> None:
        """Keep only the rows at ``keep`` (after finished rows left the batch)."""
        self.params = [self.params[i] for i in keep]
        self.generators = [self.generators[i] for i in keep]
        index = torch.tensor(list(keep), dtype=torch.long, device=self.device)
        self.seen, self.counts, self.made = self.seen[index], self.counts[index], self.made[index]
        self._tensors()

    def extend(self, other: RowSampler) -> None:
        """Append ``other``'s rows (requests that joined a running batch)."""
        self.params += other.params
        self.generators += other.generators
        self.seen = torch.cat([self.seen, other.seen])
        self.counts = torch.cat([self.counts, other.counts])
        self.made = torch.cat([self.made, other.made])
        self._tensors()

    @torch.inference_mode()
    def next_tokens(self, logits: torch.Tensor) -> Draw:
        """One token per row from ``logits`` of shape ``[rows, vocab]`` (on this sampler's device)."""
        raw = logits.float()
        scores = self._penalised(raw)
        tokens = scores.argmax(dim=-1)
        if self.any_sampled:
            tokens = torch.where(self.greedy, tokens, self._sample(scores))
        self.counts.scatter_add_(1, tokens[:, None], torch.ones_like(tokens[:, None], dtype=torch.float32))
        self.seen.scatter_(1, tokens[:, None], True)
        self.made += 1
        chosen = tokens.tolist()
        if self.top_logprobs is None:
            return Draw(chosen, [None] * len(chosen))
        return Draw(chosen, self._logprobs(raw, tokens, chosen))

    def _penalised(self, scores: torch.Tensor) -> torch.Tensor:
        if self.any_penalty:
            repeated = torch.where(
                scores > 0, scores / self.repetition[:, None], scores * self.repetition[:, None]
            )
            scores = torch.where(self.seen, repeated, scores)
            scores = scores - self.frequency[:, None] * self.counts
            scores = scores - self.presence[:, None] * (self.counts > 0).float()
        if self.any_min_new and self.stop_token_ids.numel():
            early = (self.made < self.min_new)[:, None]
            blocked = torch.zeros_like(scores, dtype=torch.bool)
            blocked[:, self.stop_token_ids] = True
            scores = scores.masked_fill(early & blocked, float("-inf"))
        return scores

    def _sample(self, scores: torch.Tensor) -> torch.Tensor:
        """Temperature, then top-k and top-p on the sorted distribution, then inverse-CDF sampling with one
        uniform number per row (drawn from that row's generator)."""
        vocab = scores.shape[-1]
        sorted_scores, order = (scores / self.temperature[:, None]).sort(dim=-1, descending=True)
        ranks = torch.arange(vocab, device=self.device)
        sorted_scores = sorted_scores.masked_fill(ranks[None, :] >= self.top_k[:, None], float("-inf"))
        probs = torch.softmax(sorted_scores, dim=-1)
        # Keep the smallest prefix whose mass reaches top_p (always at least the top token, also for a
        # top_p so small that it is 0 in float32).
        outside = probs.cumsum(-1) - probs >= self.top_p[:, None]
        outside[:, 0] = False
        cdf = probs.masked_fill(outside, 0.0).cumsum(-1)
        uniforms = self._uniforms() * cdf[:, -1]
        picked = torch.searchsorted(cdf, uniforms[:, None], right=True).clamp(max=vocab - 1)
        return order.gather(1, picked).squeeze(1)

    def _uniforms(self) -> torch.Tensor:
        """One number in [0, 1) per row: seeded rows from their own generator, the rest from the shared."""
        uniforms = torch.rand(len(self.params), generator=self.shared, device=self.device)
        for row, generator in enumerate(self.generators):
            if generator is not None:
                uniforms[row] = torch.rand(1, generator=generator, device=self.device)[0]
        return uniforms

    def _logprobs(self, raw: torch.Tensor, tokens: torch.Tensor, ids: list[int]) -> list[TokenLogprob | None]:
        logprobs = torch.log_softmax(raw, dim=-1)
        chosen = logprobs.gather(1, tokens[:, None]).squeeze(1).tolist()
        k = min(self.top_logprobs, MAX_TOP_LOGPROBS, raw.shape[-1])
        top_values, top_ids = logprobs.topk(k, dim=-1)
        top_values, top_ids = top_values.tolist(), top_ids.tolist()
        out: list[TokenLogprob | None] = []
        for row, params in enumerate(self.params):
            if params.logprobs is None:
                out.append(None)
                continue
            k = params.logprobs
            alternatives = tuple(zip(top_ids[row][:k], top_values[row][:k], strict=True))
            out.append(TokenLogprob(ids[row], chosen[row], alternatives))
        return out


def scan_stop(text: str, stops: Sequence[str], start: int = 0) -> tuple[int, bool]:
    """How much of ``text`` may be shown, and whether a stop string was hit.

    Returns ``(end, stopped)``: with ``stopped`` the text ends (exclusively) at the earliest stop string;
    otherwise ``end`` leaves out a tail that could still grow into a stop string, so a stream never shows
    part of one. ``start`` is where new text begins (earlier text was already scanned).
    """
    if not stops:
        return len(text), False
    longest = max(len(s) for s in stops)
    window = max(0, start - longest + 1)
    hits = [i for i in (text.find(s, window) for s in stops) if i >= 0]
    if hits:
        return min(hits), True
    for held in range(min(longest - 1, len(text)), 0, -1):
        tail = text[-held:]
        if any(s.startswith(tail) for s in stops):
            return len(text) - held, False
    return len(text), False
