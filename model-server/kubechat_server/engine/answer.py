"""One request's answer as its tokens arrive: text decoded incrementally, stop strings, limits, what may be
shown (less a private scratchpad), and the tokens' log-probabilities.

Every engine feeds generated token ids (and, when the request asked, their log-probabilities) through an
``Answer``, so EOS, stop strings, token limits, scratchpad hiding, logprobs and streamed text behave the same
whichever engine made the tokens.
"""

from __future__ import annotations

from kubechat_server.engine.requests import Finished, GenerationRequest, TextDelta
from kubechat_server.engine.sampling import TokenLogprob, scan_stop
from kubechat_server.engine.scratchpad import visible_text


class TextDecoder:
    """The text of a growing list of token ids, decoded incrementally where the tokenizer allows.

    Decoding the whole answer again at every step costs O(n) per token (48x the work of incremental decoding
    at 512 tokens, measured for issue 14); ``tokenizers``' ``DecodeStream`` decodes only a small window.
    Tokenizers that tidy spaces after decoding (``clean_up_tokenization_spaces``, e.g. T5's) or have no fast
    backend keep the full decode, whose text can differ from the sum of the pieces.
    """

    def __init__(self, tokenizer):
        self.tokenizer = tokenizer
        self.tokens: list[int] = []
        self.text = ""
        backend = getattr(tokenizer, "backend_tokenizer", None)
        self._stream = None
        if backend is not None and not getattr(tokenizer, "clean_up_tokenization_spaces", False):
            from tokenizers.decoders import DecodeStream

            self._backend = backend
            self._stream = DecodeStream(skip_special_tokens=True)

    def add(self, token: int) -> str:
        """Append ``token``; return the whole text so far."""
        self.tokens.append(token)
        if self._stream is None:
            self.text = self.tokenizer.decode(self.tokens, skip_special_tokens=True)
        else:
            # None: the token is part of a multi-byte character whose rest has not come yet.
            self.text += self._stream.step(self._backend, token) or ""
        return self.text

    def complete(self) -> str:
        """The whole text once the answer ends: bytes that still wait for the rest of a character (which
        will not come) become U+FFFD, as decoding the whole answer shows them (one full decode per answer)."""
        if self._stream is not None:
            full = self.tokenizer.decode(self.tokens, skip_special_tokens=True)
            if full.startswith(self.text):
                self.text = full
        return self.text


class Answer:
    """A request's tokens, text and logprobs so far, and how much of the text its client has been shown.

    ``shown`` is how far into ``text`` the stop-string scan has cleared; ``visible`` is what the client has
    actually seen of that (the same unless the scratchpad is hidden).
    """

    def __init__(self, request: GenerationRequest, tokenizer, eos_token_ids: frozenset[int]):
        self.request = request
        self.eos_token_ids = eos_token_ids
        self.decoder = TextDecoder(tokenizer)
        self.logprobs: list[TokenLogprob] = []
        self.shown = 0
        self.visible = ""
        self.unsent_logprobs = 0
        self.done = False

    @property
    def tokens(self) -> list[int]:
        return self.decoder.tokens

    @property
    def text(self) -> str:
        return self.decoder.text

    def _visible(self, text: str, final: bool) -> str:
        return visible_text(text, final) if self.request.hide_scratchpad else text

    def _pop_logprobs(self) -> tuple[TokenLogprob, ...]:
        """The logprobs of the tokens whose text no delta has carried yet."""
        if not self.unsent_logprobs:
            return ()
        unsent = tuple(self.logprobs[len(self.logprobs) - self.unsent_logprobs :])
        self.unsent_logprobs = 0
        return unsent

    def show(self, end: int) -> None:
        """Let the client see ``text[:end]`` (less any private scratchpad)."""
        if end <= self.shown:
            return
        self.shown = end
        visible = self._visible(self.text[:end], final=False)
        if len(visible) > len(self.visible):
            if self.request.streams_text:
                self.request.emit(TextDelta(visible[len(self.visible) :], self._pop_logprobs()))
            self.visible = visible

    def finish(self, reason: str, text: str | None = None, error: str = "") -> None:
        """Emit ``Finished`` with ``text`` (default: what was shown) and a stream's last visible piece."""
        if self.done:
            return
        self.done = True
        final = self._visible(self.text[: self.shown] if text is None else text, final=True)
        if self.request.streams_text and len(final) > len(self.visible) and final.startswith(self.visible):
            self.request.emit(TextDelta(final[len(self.visible) :], self._pop_logprobs()))
        self.request.emit(
            Finished(
                reason,
                final,
                len(self.request.prompt_ids),
                len(self.tokens),
                error=error,
                logprobs=tuple(self.logprobs),
            )
        )

    def end(self, reason: str) -> None:
        """The answer ends with all its text (EOS, the token limit): show and finish it."""
        text = self.decoder.complete()
        self.show(len(text))
        self.finish(reason, text)

    def add(self, token: int, logprob: TokenLogprob | None = None) -> bool:
        """Add ``token`` (and its log-probabilities); emit what may be shown (and ``Finished`` when done);
        return whether the answer goes on."""
        if self.done:
            return False
        if token in self.eos_token_ids:
            self.end("stop")
            return False
        if logprob is not None:
            self.logprobs.append(logprob)
            self.unsent_logprobs += 1
        scanned = len(self.text)
        text = self.decoder.add(token)
        params = self.request.params
        end, stopped = scan_stop(text, params.stop, start=scanned)
        if stopped:
            self.show(end)
            self.finish("stop", text[:end])
            return False
        if len(self.tokens) >= params.max_new_tokens:
            self.end("length")
            return False
        # A trailing U+FFFD is half of a multi-byte character (full decode): wait for the rest.
        while end > self.shown and text[end - 1] == "\ufffd":
            end -= 1
        self.show(end)
        return True
