"""One request's answer as its tokens arrive: text decoded incrementally, stop strings, what may be shown.

Every engine feeds generated token ids through an ``Answer``, so EOS, stop strings, token limits and streamed
text behave the same whichever engine made the tokens.
"""

from __future__ import annotations

from kubechat_server.engine.requests import Finished, GenerationRequest, TextDelta
from kubechat_server.engine.sampling import scan_stop


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


class Answer:
    """A request's tokens and text so far, and how much of the text its client has been shown."""

    def __init__(self, request: GenerationRequest, tokenizer, eos_token_ids: frozenset[int]):
        self.request = request
        self.eos_token_ids = eos_token_ids
        self.decoder = TextDecoder(tokenizer)
        self.shown = 0

    @property
    def tokens(self) -> list[int]:
        return self.decoder.tokens

    @property
    def text(self) -> str:
        return self.decoder.text

    def show(self, end: int) -> None:
        if end > self.shown:
            if self.request.streams_text:
                self.request.emit(TextDelta(self.text[self.shown : end]))
            self.shown = end

    def finish(self, reason: str, text: str | None = None) -> None:
        final = self.text[: self.shown] if text is None else text
        self.request.emit(Finished(reason, final, len(self.request.prompt_ids), len(self.tokens)))

    def add(self, token: int) -> bool:
        """Add ``token``; emit what may be shown (and ``Finished`` when done); return whether to go on."""
        if token in self.eos_token_ids:
            self.show(len(self.text))
            self.finish("stop", self.text)
            return False
        scanned = len(self.text)
        text = self.decoder.add(token)
        params = self.request.params
        end, stopped = scan_stop(text, params.stop, start=scanned)
        if stopped:
            self.show(end)
            self.finish("stop", text[:end])
            return False
        if len(self.tokens) >= params.max_new_tokens:
            self.show(len(text))
            self.finish("length", text)
            return False
        # A trailing U+FFFD is half of a multi-byte character (full decode): wait for the rest.
        while end > self.shown and text[end - 1] == "\ufffd":
            end -= 1
        self.show(end)
        return True
