"""Generating a batch token by token with a KV cache, each row with its own parameters.

Rows are left-padded (causal) or right-padded (encoder input of seq2seq) and masked, so a row's greedy answer
does not depend on what else is in the batch. A row leaves as soon as it is done (EOS, a stop string, its
token limit, cancellation or its deadline) and its cache entries are dropped.

Batching is continuous: requests that arrive while a batch runs are prefilled on their own and then merged
into the running batch (caches and masks padded to common lengths), so nobody waits for the longest answer
of the batch before them.

Prompts are prefilled in groups of similar length (``prefill_groups``), then merged: one padded prefill of
the benchmark's 32 chat prompts (24 of ~40 tokens, 8 of 354-513) computed 16,416 positions for 4,476 real
ones and took 19.5 s on two cores; in three groups it took 4.4 s.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

import torch

from kubechat_server.engine.answer import Answer
from kubechat_server.engine.loader import LoadedModel
from kubechat_server.engine.requests import GenerationRequest
from kubechat_server.engine.sampling import RowSampler, TokenLogprob

# A prefill group may pad up to this share of its real tokens (or PAD_SLACK_TOKENS, whichever is more) before
# a prompt starts a group of its own: each extra group costs one more forward pass (~20 ms of Python and
# kernel launches for a 30-layer model) and one more cache merge, so near-equal lengths stay together.
PAD_SHARE = 0.25
PAD_SLACK_TOKENS = 64


def prefill_groups(requests: Sequence[GenerationRequest]) -> list[list[GenerationRequest]]:
    """``requests`` in groups of similar prompt length (shortest first), so that padding each group to its
    longest prompt wastes little work."""
    groups: list[list[GenerationRequest]] = []
    real = 0
    for request in sorted(requests, key=lambda r: len(r.prompt_ids)):
        length = len(request.prompt_ids)
        if groups:
            padded = (len(groups[-1]) + 1) * length
            if padded - (real + length) <= max(PAD_SHARE * (real + length), PAD_SLACK_TOKENS):
                groups[-1].append(request)
                real += length
                continue
        groups.append([request])
        real = length
    return groups


class NewcomerError(RuntimeError):
    """Requests joining a running batch failed in their own prefill; the batch itself is untouched."""


class Batch:
    """The rows being generated together and their model state; ``step()`` advances all rows by one token."""

    def __init__(
        self,
        loaded: LoadedModel,
        requests: Sequence[GenerationRequest],
        generator: torch.Generator,
        on_first_token: Callable[[GenerationRequest], None] = lambda request: None,
    ):
        self.loaded = loaded
        self.generator = generator
        self.on_first_token = on_first_token
        self.rows = [Answer(r, loaded.tokenizer, loaded.eos_token_ids) for r in requests]
        prompts = [r.prompt_ids for r in requests]
        self.logits = self._prefill(prompts)
        self.sampler = RowSampler(
            [r.params for r in requests],
            prompts,
            vocab_size=self.logits.shape[-1],
            device=self.logits.device,
            shared=generator,
            stop_token_ids=loaded.eos_token_ids,
        )

    @property
    def size(self) -> int:
        return len(self.rows)

    @classmethod
    def mergeable(cls, loaded: LoadedModel) -> bool:
        """Whether batches of this model can take newcomers (its cache layers are plain growing ones)."""
        return cls._mergeable(cls._empty_cache(loaded))

    def can_admit(self) -> bool:
        """Whether new requests may join this running batch."""
        return self._mergeable(self.cache)

    @classmethod
    def _mergeable(cls, cache) -> bool:
        from kubechat_server.engine import kv_cache  # imports transformers, which the llama.cpp engine skips

        return kv_cache.mergeable(cls._cache_layers(cache))

    def admit(self, requests: Sequence[GenerationRequest]) -> None:
        """Prefill ``requests`` on their own, in groups of similar length, and merge each group in (a group
        whose prefill fails raises ``NewcomerError``; groups merged before it stay)."""
        for group in prefill_groups(requests):
            self._merge(self._newcomers(group))

    @staticmethod
    def _empty_cache(loaded: LoadedModel):
        raise NotImplementedError

    @staticmethod
    def _cache_layers(cache) -> list:
        raise NotImplementedError

    def _merge(self, newcomers: Batch) -> None:
        raise NotImplementedError

    def _newcomers(self, requests: Sequence[GenerationRequest]) -> Batch:
        """``requests`` prefilled as a batch of their own, ready to merge; ``NewcomerError`` if that fails."""
        try:
            return type(self)(self.loaded, requests, self.generator, self.on_first_token)
        except Exception as exc:
            raise NewcomerError(str(exc)) from exc

    @torch.inference_mode()
    def step(self) -> int:
        """Pick every row's next token, emit text, drop finished rows, run the model once; tokens made."""
        draw = self.sampler.next_tokens(self.logits)
        tokens = draw.tokens
        keep = [
            i
            for i, (token, logprob) in enumerate(zip(tokens, draw.logprobs, strict=True))
            if self._advance(self.rows[i], token, logprob)
        ]
        if len(keep) < len(self.rows):
            self.rows = [self.rows[i] for i in keep]
            self.sampler.select(keep)
            if keep:
                self._select(torch.tensor(keep, device=self.loaded.device))
        if keep:
            self.logits = self._forward([tokens[i] for i in keep])
        return len(tokens)

    def _advance(self, row: Answer, token: int, logprob: TokenLogprob | None) -> bool:
        """Add ``token`` to ``row``; emit what may be shown; return whether the row goes on."""
        request = row.request
        if not row.tokens:
            self.on_first_token(request)
        if request.cancelled.is_set():
            row.finish("cancelled")
            return False
        if time.monotonic() > request.deadline:
            row.finish("timeout")
            return False
        return row.add(token, logprob)

    def _prefill(self, prompts: list[list[int]]) -> torch.Tensor:
        raise NotImplementedError

    def _forward(self, tokens: list[int]) -> torch.Tensor:
        raise NotImplementedError

    def _select(self, index: torch.Tensor) -> None:
        raise NotImplementedError


class CausalBatch(Batch):
    """Decoder-only models; new requests can join while the batch runs."""

    @torch.inference_mode()
    def _prefill(self, prompts: list[list[int]]) -> torch.Tensor:
        device, pad = self.loaded.device, self.loaded.pad_token_id
        width = max(len(p) for p in prompts)
        input_ids = torch.tensor([[pad] * (width - len(p)) + p for p in prompts], device=device)
        self.mask = torch.tensor([[0] * (width - len(p)) + [1] * len(p) for p in prompts], device=device)
        positions = (self.mask.cumsum(-1) - 1).clamp(min=0)
        self.cache = self._empty_cache(self.loaded)
        out = self.loaded.model(
            input_ids=input_ids,
            attention_mask=self.mask,
            position_ids=positions,
            past_key_values=self.cache,
            use_cache=True,
            logits_to_keep=1,
        )
        self.next_position = positions[:, -1] + 1
        return out.logits[:, -1, :]

    def _forward(self, tokens: list[int]) -> torch.Tensor:
        self.mask = torch.cat([self.mask, self.mask.new_ones((self.mask.shape[0], 1))], dim=-1)
        out = self.loaded.model(
            input_ids=torch.tensor(tokens, device=self.loaded.device)[:, None],
            attention_mask=self.mask,
            position_ids=self.next_position[:, None],
            past_key_values=self.cache,
            use_cache=True,
        )
        self.next_position = self.next_position + 1
        return out.logits[:, -1, :]

    @staticmethod
    def _empty_cache(loaded: LoadedModel):
        from transformers import DynamicCache

        from kubechat_server.engine import kv_cache

        cache = DynamicCache(config=loaded.model.config)
        cache.layers = kv_cache.growing(cache.layers)
        return cache

    @staticmethod
    def _cache_layers(cache) -> list:
        return cache.layers

    def _select(self, index: torch.Tensor) -> None:
        self.cache.batch_select_indices(index)
        self.mask, self.next_position = self.mask[index], self.next_position[index]
        # Columns no remaining row attends to (the oldest rows' prompts) go, so that a batch that keeps
        # taking newcomers does not drag an ever longer cache along.
        unused = int(self.mask.any(dim=0).int().argmax())
        if unused and self.can_admit():
            self.mask = self.mask[:, unused:]
            for layer in self.cache.layers:
                layer.keys, layer.values = layer.keys[:, :, unused:], layer.values[:, :, unused:]

    @torch.inference_mode()
    def _merge(self, newcomers: Batch) -> None:
        """Add the prefilled ``newcomers`` to this batch (left-padding the shorter)."""
        width = max(self.mask.shape[1], newcomers.mask.shape[1])
        for mine, theirs in zip(self.cache.layers, newcomers.cache.layers, strict=True):
            mine.keys = torch.cat([_left_pad(mine.keys, width), _left_pad(theirs.keys, width)])
            mine.values = torch.cat([_left_pad(mine.values, width), _left_pad(theirs.values, width)])
        self.mask = torch.cat([_left_pad(self.mask, width), _left_pad(newcomers.mask, width)])
        self.next_position = torch.cat([self.next_position, newcomers.next_position])
        self.logits = torch.cat([self.logits, newcomers.logits])
        self.rows += newcomers.rows
        self.sampler.extend(newcomers.sampler)


def _left_pad(tensor: torch.Tensor, width: int) -> torch.Tensor:
    """Zero-pad the sequence axis (last for masks, third for cache tensors) on the left up to ``width``."""
    axis = 1 if tensor.dim() == 2 else 2
    missing = width - tensor.shape[axis]
    if missing == 0:
        return tensor
    shape = list(tensor.shape)
    shape[axis] = missing
    return torch.cat([tensor.new_zeros(shape), tensor], dim=axis)


class Seq2SeqBatch(Batch):
    """Encoder-decoder models: encode once, then decode token by token.

    Newcomers join like in ``CausalBatch``: encoder states and cross-attention caches are right-padded to a
    common source length (the encoder mask hides the padding), decoder caches left-padded (a decoder mask
    hides it; T5's relative position bias only sees distances, which padding on the left leaves unchanged).
    """

    @torch.inference_mode()
    def _prefill(self, prompts: list[list[int]]) -> torch.Tensor:
        device, pad, model = self.loaded.device, self.loaded.pad_token_id, self.loaded.model
        width = max(len(p) for p in prompts)
        input_ids = torch.tensor([p + [pad] * (width - len(p)) for p in prompts], device=device)
        self.mask = torch.tensor([[1] * len(p) + [0] * (width - len(p)) for p in prompts], device=device)
        self.encoded = model.get_encoder()(input_ids=input_ids, attention_mask=self.mask)
        self.cache = self._empty_cache(self.loaded)
        self.decoder_mask = self.mask.new_zeros((len(prompts), 0))
        start = self.loaded.decoder_start_token_id
        return self._forward([start if start is not None else pad] * len(prompts))

    def _forward(self, tokens: list[int]) -> torch.Tensor:
        ones = self.decoder_mask.new_ones((self.decoder_mask.shape[0], 1))
        self.decoder_mask = torch.cat([self.decoder_mask, ones], dim=-1)
        out = self.loaded.model(
            encoder_outputs=self.encoded,
            attention_mask=self.mask,
            decoder_input_ids=torch.tensor(tokens, device=self.loaded.device)[:, None],
            decoder_attention_mask=self.decoder_mask,
            past_key_values=self.cache,
            use_cache=True,
        )
        return out.logits[:, -1, :]

    def _select(self, index: torch.Tensor) -> None:
        self.cache.batch_select_indices(index)
        self.mask, self.decoder_mask = self.mask[index], self.decoder_mask[index]
        self.encoded.last_hidden_state = self.encoded.last_hidden_state[index]
        unused = int(self.decoder_mask.any(dim=0).int().argmax())
        if unused and self.can_admit():
            self.decoder_mask = self.decoder_mask[:, unused:]
            for layer in self.cache.self_attention_cache.layers:
                layer.keys, layer.values = layer.keys[:, :, unused:], layer.values[:, :, unused:]

    @staticmethod
    def _empty_cache(loaded: LoadedModel):
        from transformers import DynamicCache, EncoderDecoderCache

        from kubechat_server.engine import kv_cache

        config = loaded.model.config
        decoder = DynamicCache(config=config)
        decoder.layers = kv_cache.growing(decoder.layers)
        return EncoderDecoderCache(decoder, DynamicCache(config=config))

    @staticmethod
    def _cache_layers(cache) -> list:
        return cache.self_attention_cache.layers + cache.cross_attention_cache.layers

    @torch.inference_mode()
    def _merge(self, newcomers: Batch) -> None:
        """Add the encoded ``newcomers`` (their first decoder step done) to this batch."""
        source = max(self.mask.shape[1], newcomers.mask.shape[1])
        target = max(self.decoder_mask.shape[1], newcomers.decoder_mask.shape[1])
        pairs = zip(
            self.cache.self_attention_cache.layers, newcomers.cache.self_attention_cache.layers, strict=True
        )
        for mine, theirs in pairs:
            mine.keys = torch.cat([_left_pad(mine.keys, target), _left_pad(theirs.keys, target)])
            mine.values = torch.cat([_left_pad(mine.values, target), _left_pad(theirs.values, target)])
        pairs = zip(
            self.cache.cross_attention_cache.layers, newcomers.cache.cross_attention_cache.layers, strict=True
        )
        for mine, theirs in pairs:
            mine.keys = torch.cat([_right_pad(mine.keys, source, 2), _right_pad(theirs.keys, source, 2)])
            mine.values = torch.cat(
                [_right_pad(mine.values, source, 2), _right_pad(theirs.values, source, 2)]
            )
        self.encoded.last_hidden_state = torch.cat(
            [
                _right_pad(self.encoded.last_hidden_state, source, 1),
                _right_pad(newcomers.encoded.last_hidden_state, source, 1),
            ]
        )
        self.mask = torch.cat([_right_pad(self.mask, source, 1), _right_pad(newcomers.mask, source, 1)])
        self.decoder_mask = torch.cat(
            [_left_pad(self.decoder_mask, target), _left_pad(newcomers.decoder_mask, target)]
        )
        self.logits = torch.cat([self.logits, newcomers.logits])
        self.rows += newcomers.rows
        self.sampler.extend(newcomers.sampler)


def _right_pad(tensor: torch.Tensor, width: int, axis: int) -> torch.Tensor:
    """Zero-pad ``axis`` on the right up to ``width``."""
    missing = width - tensor.shape[axis]
    if missing == 0:
        return tensor
    shape = list(tensor.shape)
    shape[axis] = missing
    return torch.cat([tensor, tensor.new_zeros(shape)], dim=axis)


def start_batch(
    loaded: LoadedModel,
    requests: Sequence[GenerationRequest],
    generator: torch.Generator,
    on_first_token: Callable[[GenerationRequest], None],
) -> Batch:
    """A running batch of the right kind for the model, prefilled in groups of similar length where its
    cache can merge them (else as one padded group)."""
    kind = Seq2SeqBatch if loaded.seq2seq else CausalBatch
    if not kind.mergeable(loaded):
        return kind(loaded, requests, generator, on_first_token)
    first, *rest = prefill_groups(requests)
    batch = kind(loaded, first, generator, on_first_token)
    batch.admit([request for group in rest for request in group])
    return batch
