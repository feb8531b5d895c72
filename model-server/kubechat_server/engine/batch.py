"""Generating one batch: a token-by-token loop with a KV cache, each row with its own parameters.

Rows are left-padded (causal) or right-padded (encoder input of seq2seq) and masked, so a row's greedy answer
does not depend on what else is in the batch. A row leaves the batch as soon as it is done (EOS, a stop
string, its token limit, cancellation or its deadline): its cache entries are dropped, so the rest go
on faster.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

import torch

from kubechat_server.engine.loader import LoadedModel
from kubechat_server.engine.requests import Finished, GenerationRequest, TextDelta
from kubechat_server.engine.sampling import RowSampler, scan_stop


class Row:
    """One request's progress inside a batch: tokens so far, text shown so far."""

    def __init__(self, request: GenerationRequest):
        self.request = request
        self.tokens: list[int] = []
        self.text = ""
        self.shown = 0
        self.finished: Finished | None = None

    def finish(self, reason: str, text: str | None = None) -> None:
        final = self.text[: self.shown] if text is None else text
        self.finished = Finished(reason, final, len(self.request.prompt_ids), len(self.tokens))
        self.request.emit(self.finished)


class BatchRun:
    """Runs a list of requests to completion on ``loaded``; ``on_token`` is told about every first token."""

    def __init__(
        self,
        loaded: LoadedModel,
        requests: Sequence[GenerationRequest],
        generator: torch.Generator,
        on_first_token: Callable[[GenerationRequest], None] = lambda request: None,
    ):
        self.loaded = loaded
        self.rows = [Row(r) for r in requests]
        self.sampler = RowSampler([r.params for r in requests], generator)
        self.on_first_token = on_first_token

    @torch.inference_mode()
    def run(self) -> int:
        """Generate until every row is done; returns the number of tokens generated."""
        step = self._seq2seq_steps() if self.loaded.seq2seq else self._causal_steps()
        logits = next(step)
        generated = 0
        active = list(range(len(self.rows)))
        while True:
            tokens = self.sampler.next_tokens(logits).tolist()
            keep = [i for i, token in enumerate(tokens) if self._advance(self.rows[active[i]], token)]
            generated += len(tokens)
            if not keep:
                return generated
            if len(keep) < len(active):
                self.sampler.select(keep)
                active = [active[i] for i in keep]
            logits = step.send((keep, [tokens[i] for i in keep]))

    def _advance(self, row: Row, token: int) -> bool:
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
        if token in self.loaded.eos_token_ids:
            row.finish("stop", row.text)
            return False
        row.tokens.append(token)
        text = self.loaded.tokenizer.decode(row.tokens, skip_special_tokens=True)
        scanned = len(row.text)
        row.text = text
        end, stopped = scan_stop(text, request.params.stop, start=scanned)
        if not stopped:
            # A trailing U+FFFD is half of a multi-byte character: wait for the rest.
            while end > row.shown and text[end - 1] == "\ufffd":
                end -= 1
        if end > row.shown:
            request.emit(TextDelta(text[row.shown : end]))
            row.shown = end
        if stopped:
            row.finish("stop", text[:end])
            return False
        if len(row.tokens) >= request.params.max_new_tokens:
            if len(text) > row.shown:
                request.emit(TextDelta(text[row.shown :]))
                row.shown = len(text)
            row.finish("length", text)
            return False
        return True

    def _causal_steps(self):
        """A coroutine: yields next-token logits; is sent (rows kept, their tokens) for the next step."""
        from transformers import DynamicCache

        device = self.loaded.device
        prompts = [r.request.prompt_ids for r in self.rows]
        width = max(len(p) for p in prompts)
        pad = self.loaded.pad_token_id
        input_ids = torch.tensor([[pad] * (width - len(p)) + p for p in prompts], device=device)
        mask = torch.tensor([[0] * (width - len(p)) + [1] * len(p) for p in prompts], device=device)
        positions = (mask.cumsum(-1) - 1).clamp(min=0)
        cache = DynamicCache(config=self.loaded.model.config)
        out = self.loaded.model(
            input_ids=input_ids,
            attention_mask=mask,
            position_ids=positions,
            past_key_values=cache,
            use_cache=True,
            logits_to_keep=1,
        )
        next_position = positions[:, -1] + 1
        while True:
            keep, tokens = yield out.logits[:, -1, :]
            if len(keep) < mask.shape[0]:
                index = torch.tensor(keep, device=device)
                cache.batch_select_indices(index)
                mask, next_position = mask[index], next_position[index]
            mask = torch.cat([mask, mask.new_ones((mask.shape[0], 1))], dim=-1)
            out = self.loaded.model(
                input_ids=torch.tensor(tokens, device=device)[:, None],
                attention_mask=mask,
                position_ids=next_position[:, None],
                past_key_values=cache,
                use_cache=True,
            )
            next_position = next_position + 1

    def _seq2seq_steps(self):
        """Like ``_causal_steps`` for encoder-decoder models: encode once, then decode token by token."""
        from transformers import DynamicCache, EncoderDecoderCache

        device = self.loaded.device
        model = self.loaded.model
        prompts = [r.request.prompt_ids for r in self.rows]
        width = max(len(p) for p in prompts)
        pad = self.loaded.pad_token_id
        input_ids = torch.tensor([p + [pad] * (width - len(p)) for p in prompts], device=device)
        mask = torch.tensor([[1] * len(p) + [0] * (width - len(p)) for p in prompts], device=device)
        encoded = model.get_encoder()(input_ids=input_ids, attention_mask=mask)
        cache = EncoderDecoderCache(DynamicCache(config=model.config), DynamicCache(config=model.config))
        start = self.loaded.decoder_start_token_id
        decoder_ids = torch.full((len(prompts), 1), start if start is not None else pad, device=device)
        while True:
            out = model(
                encoder_outputs=encoded,
                attention_mask=mask,
                decoder_input_ids=decoder_ids,
                past_key_values=cache,
                use_cache=True,
            )
            keep, tokens = yield out.logits[:, -1, :]
            if len(keep) < mask.shape[0]:
                index = torch.tensor(keep, device=device)
                cache.batch_select_indices(index)
                mask = mask[index]
                encoded.last_hidden_state = encoded.last_hidden_state[index]
            decoder_ids = torch.tensor(tokens, device=device)[:, None]
