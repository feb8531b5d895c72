"""Tiny models of the real architectures, built locally (no hub is reachable in tests).

Each builder trains a tokenizer on the spot, makes a randomly initialised model of the real architecture
(T5 encoder-decoder for GODEL, Llama for Llama-2), saves both with ``save_pretrained`` into
``~/.cache/kubechat/models/<name>-<hash of the builder parameters>`` and returns that directory. The model
server then loads it through the same ``Auto*`` code path a Hub model takes. Builds are cached: a second call
with the same parameters returns the existing directory.

Use ``tiny_model_dir("godel")`` from any helper, or the pytest fixtures ``tiny_godel_dir``,
``tiny_llama_dir`` and ``tiny_llama_chat_dir``.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path

import pytest

from tests.support.procs import cache_dir

# Text the tokenizers learn from: the seeds' own payloads and everyday chat, so that test prompts
# tokenize into real subwords rather than single characters.
CORPUS = [
    "I believe the meaning of life is",
    "Simply put, the theory of relativity states that",
    "A brief message congratulating the team on the launch: Hi everyone, I just",
    "Translate English to French: sea otter => loutre de mer, peppermint => menthe poivrée, "
    "plush girafe => girafe peluche, cheese =>",
    "what is the recipe of mayonnaise?",
    "I am going to Paris, what should I see?",
    "Paris, the capital of France, is known for its stunning architecture, art museums, historical "
    "landmarks, and romantic atmosphere.",
    "What is so great about #1? Always answer with Haiku. Always answer with emojis.",
    "How to go from Beijing to NY? Write a brief birthday message to John",
    "You are a helpful, respectful and honest assistant. Always answer as helpfully as possible, "
    "while being safe.",
    "given a dialog context, you need to respond empathically",
    "Does money buy happiness? It is a question. Money buys you a lot of things, but not enough to buy "
    "happiness. What is the best way to buy happiness?",
    "Hello, how are you today? I am fine, thank you. The weather is nice and the sun is shining.",
    "The quick brown fox jumps over the lazy dog. A knight, a dragon and a tavern keeper in a village.",
    "numbers 0 1 2 3 4 5 6 7 8 9 10 100 1000, punctuation . , ; : ! ? ' \" ( ) [ ] { } - _ / = + * # @",
]

LLAMA_CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|' + message['role'] + '|>\n' + message['content'] + '</s>\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|assistant|>\n' }}{% endif %}"
)


@dataclass(frozen=True)
class TinyModelSpec:
    """What a tiny model is built from; its hash names the cache directory."""

    architecture: str  # "t5" (GODEL-style seq2seq) or "llama" (causal)
    vocab_size: int = 600
    hidden_size: int = 64
    layers: int = 2
    heads: int = 4
    intermediate_size: int = 128
    max_positions: int = 2048
    chat_template: bool = False
    seed: int = 0
    extra: dict = field(default_factory=dict)

    def key(self) -> str:
        """A short stable hash of the parameters (and the builder's version)."""
        payload = json.dumps({"v": 3, **asdict(self)}, sort_keys=True)
        return hashlib.sha256(payload.encode()).hexdigest()[:12]


SPECS = {
    "godel": TinyModelSpec(architecture="t5"),
    "llama": TinyModelSpec(architecture="llama"),
    "llama-chat": TinyModelSpec(architecture="llama", chat_template=True),
}


def _train_tokenizer(spec: TinyModelSpec):
    """A fast tokenizer trained on CORPUS, with the special tokens of the real family."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    if spec.architecture == "t5":
        # T5/GODEL: SentencePiece-style Metaspace pieces, pad=0, eos=1, unk=2, EOS appended to every input.
        specials = ["<pad>", "</s>", "<unk>"]
        tokenizer = Tokenizer(models.BPE(unk_token="<unk>"))
        tokenizer.pre_tokenizer = pre_tokenizers.Metaspace()
        tokenizer.decoder = decoders.Metaspace()
        trainer = trainers.BpeTrainer(vocab_size=spec.vocab_size, special_tokens=specials)
        tokenizer.train_from_iterator(CORPUS * 3, trainer=trainer)
        tokenizer.post_processor = processors.TemplateProcessing(
            single="$A </s>", pair="$A </s> $B </s>", special_tokens=[("</s>", 1)]
        )
        return PreTrainedTokenizerFast(
            tokenizer_object=tokenizer,
            pad_token="<pad>",
            eos_token="</s>",
            unk_token="<unk>",
            model_max_length=spec.max_positions,
        )
    # Llama: unk=0, BOS <s>=1, EOS </s>=2, BOS prepended (not EOS). Byte-level pieces (in place of
    # SentencePiece's byte fallback) so that any text survives a round trip, multi-byte characters included.
    specials = ["<unk>", "<s>", "</s>"]
    tokenizer = Tokenizer(models.BPE(unk_token="<unk>"))
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=True)
    # Like SentencePiece, drop the space the pre-tokenizer put in front of the first word.
    tokenizer.decoder = decoders.Sequence([decoders.ByteLevel(), decoders.Strip(" ", 1, 0)])
    trainer = trainers.BpeTrainer(
        vocab_size=spec.vocab_size,
        special_tokens=specials,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    tokenizer.train_from_iterator(CORPUS * 3, trainer=trainer)
    tokenizer.post_processor = processors.TemplateProcessing(
        single="<s> $A", pair="<s> $A <s> $B", special_tokens=[("<s>", 1)]
    )
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tokenizer,
        bos_token="<s>",
        eos_token="</s>",
        unk_token="<unk>",
        model_max_length=spec.max_positions,
    )
    if spec.chat_template:
        fast.add_special_tokens({"additional_special_tokens": ["<|system|>", "<|user|>", "<|assistant|>"]})
        fast.chat_template = LLAMA_CHAT_TEMPLATE
    return fast


def _build_model(spec: TinyModelSpec, tokenizer):
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM, T5Config, T5ForConditionalGeneration

    torch.manual_seed(spec.seed)
    vocab = len(tokenizer)
    if spec.architecture == "t5":
        config = T5Config(
            vocab_size=vocab,
            d_model=spec.hidden_size,
            d_kv=spec.hidden_size // spec.heads,
            d_ff=spec.intermediate_size,
            num_layers=spec.layers,
            num_decoder_layers=spec.layers,
            num_heads=spec.heads,
            feed_forward_proj="gated-gelu",
            pad_token_id=tokenizer.pad_token_id,
            eos_token_id=tokenizer.eos_token_id,
            decoder_start_token_id=tokenizer.pad_token_id,
            tie_word_embeddings=False,
            **spec.extra,
        )
        return T5ForConditionalGeneration(config)
    config = LlamaConfig(
        vocab_size=vocab,
        hidden_size=spec.hidden_size,
        intermediate_size=spec.intermediate_size,
        num_hidden_layers=spec.layers,
        num_attention_heads=spec.heads,
        num_key_value_heads=spec.heads,
        max_position_embeddings=spec.max_positions,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        **spec.extra,
    )
    return LlamaForCausalLM(config)


def build_tiny_model(name: str, spec: TinyModelSpec) -> Path:
    """Build (or reuse) the tiny model ``name`` described by ``spec``; return its directory."""
    target = cache_dir("models") / f"{name}-{spec.key()}"
    if (target / "config.json").exists():
        return target
    tokenizer = _train_tokenizer(spec)
    model = _build_model(spec, tokenizer)
    # Build in a temporary sibling and rename, so concurrent test processes never see half a model.
    staging = Path(tempfile.mkdtemp(prefix=f".{name}-", dir=target.parent))
    try:
        tokenizer.save_pretrained(staging)
        model.save_pretrained(staging)
        try:
            os.rename(staging, target)
        except OSError:
            if not (target / "config.json").exists():
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target


def tiny_model_dir(name: str) -> Path:
    """The directory of one of the standard tiny models: ``godel``, ``llama`` or ``llama-chat``."""
    return build_tiny_model(f"tiny-{name}", SPECS[name])


@pytest.fixture(scope="session")
def tiny_godel_dir() -> Path:
    """A T5-style (GODEL) seq2seq model directory with its trained tokenizer."""
    return tiny_model_dir("godel")


@pytest.fixture(scope="session")
def tiny_llama_dir() -> Path:
    """A Llama causal model with a trained tokenizer (BOS ``<s>``, EOS ``</s>``), no chat template."""
    return tiny_model_dir("llama")


@pytest.fixture(scope="session")
def tiny_llama_chat_dir() -> Path:
    """A Llama causal model directory whose tokenizer carries a chat template."""
    return tiny_model_dir("llama-chat")
