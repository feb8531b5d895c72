"""Per-request sampling parameters, next-token choice for a whole batch, and stop-string scanning."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

MIN_TEMPERATURE = 1e-6


@dataclass(frozen=True)
class SamplingParams:
    """How one request generates. ``temperature == 0`` or ``do_sample=False`` means greedy (argmax)."""

    max_new_tokens: int = 128
    temperature: float = 1.0
    top_p: float = 1.0
    do_sample: bool = True
    stop: tuple[str, ...] = ()
    seed: int | None = None

    @property
    def greedy(self) -> bool:
        return not self.do_sample or self.temperature == 0.0


class RowSampler:
    """Chooses each row's next token with that row's own parameters (and its own seeded generator)."""

    def __init__(self, params: Sequence[SamplingParams], shared: torch.Generator):
        self.params = list(params)
        self.generators = [self._generator(p, shared) for p in self.params]

    @staticmethod
    def _generator(params: SamplingParams, shared: torch.Generator) -> torch.Generator:
        if params.seed is None:
            return shared
        generator = torch.Generator()
        generator.manual_seed(params.seed)
        return generator

    def select(self, keep: Sequence[int]) -> None:
        """Keep only the rows at ``keep`` (after finished rows left the batch)."""
        self.params = [self.params[i] for i in keep]
        self.generators = [self.generators[i] for i in keep]

    def extend(self, other: RowSampler) -> None:
        """Append ``other``'s rows (requests that joined a running batch)."""
        self.params += other.params
        self.generators += other.generators

    def next_tokens(self, logits: torch.Tensor) -> torch.Tensor:
        """One token id per row from ``logits`` of shape ``[rows, vocab]``."""
        tokens = logits.argmax(dim=-1)
        for row, params in enumerate(self.params):
            if not params.greedy:
                tokens[row] = _sample(logits[row].float(), params, self.generators[row])
        return tokens


def _sample(logits: torch.Tensor, params: SamplingParams, generator: torch.Generator) -> torch.Tensor:
    # A temperature near 0 (a valid request) would overflow the division into inf/NaN: it is argmax anyway.
    probs = torch.softmax(logits / max(params.temperature, MIN_TEMPERATURE), dim=-1)
    if params.top_p < 1.0:
        sorted_probs, order = probs.sort(descending=True)
        # Keep the smallest prefix whose mass reaches top_p (always at least the top token, also for a
        # top_p so small that it is 0 in float32).
        outside = sorted_probs.cumsum(-1) - sorted_probs >= params.top_p
        outside[0] = False
        sorted_probs[outside] = 0.0
        probs = torch.zeros_like(probs).scatter(0, order, sorted_probs)
    return torch.multinomial(probs, 1, generator=generator)[0]


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
