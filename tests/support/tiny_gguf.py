"""The tiny Llama models of ``tiny_models.py`` as GGUF files, for the llama.cpp engine's tests.

``tiny_gguf_dir("llama")`` writes the tiny Llama's weights (float32) into ``model.gguf`` with the ``gguf``
package, beside a copy of its Hugging Face tokenizer files, in ``~/.cache/kubechat/models/`` (cached). The
model server then prompts it with the very tokenizer the transformers engine uses, so both engines can run
the same test suite on the same model. llama.cpp's own converter (``convert_hf_to_gguf.py``) refuses this
tokenizer: it only accepts pre-tokenizers it knows by hash.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

import pytest

from tests.support.procs import cache_dir
from tests.support.tiny_models import SPECS, tiny_model_dir

TOKENIZER_FILES = (
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "chat_template.jinja",
)
FORMAT_VERSION = 1


def _permute(weights, heads: int):
    """Rotary halves (Hugging Face) to interleaved pairs (llama.cpp), as llama.cpp's converter does."""
    return (
        weights.reshape(heads, 2, weights.shape[0] // heads // 2, *weights.shape[1:])
        .swapaxes(1, 2)
        .reshape(weights.shape)
    )


def _tensor_names(layers: int) -> dict[str, str]:
    names = {
        "model.embed_tokens.weight": "token_embd.weight",
        "model.norm.weight": "output_norm.weight",
        "lm_head.weight": "output.weight",
    }
    parts = {
        "input_layernorm": "attn_norm",
        "self_attn.q_proj": "attn_q",
        "self_attn.k_proj": "attn_k",
        "self_attn.v_proj": "attn_v",
        "self_attn.o_proj": "attn_output",
        "post_attention_layernorm": "ffn_norm",
        "mlp.gate_proj": "ffn_gate",
        "mlp.up_proj": "ffn_up",
        "mlp.down_proj": "ffn_down",
    }
    for i in range(layers):
        for hf, gg in parts.items():
            names[f"model.layers.{i}.{hf}.weight"] = f"blk.{i}.{gg}.weight"
    return names


def write_gguf(model_dir: Path, target: Path) -> None:
    """Write the Llama in ``model_dir`` as a float32 GGUF file ``target`` with a byte-level BPE vocabulary."""
    import gguf
    from safetensors.numpy import load_file
    from transformers import AutoConfig, AutoTokenizer

    config = AutoConfig.from_pretrained(model_dir)
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    weights = load_file(model_dir / "model.safetensors")
    writer = gguf.GGUFWriter(target, "llama")
    writer.add_context_length(config.max_position_embeddings)
    writer.add_embedding_length(config.hidden_size)
    writer.add_block_count(config.num_hidden_layers)
    writer.add_feed_forward_length(config.intermediate_size)
    writer.add_head_count(config.num_attention_heads)
    writer.add_head_count_kv(config.num_key_value_heads)
    writer.add_rope_dimension_count(config.hidden_size // config.num_attention_heads)
    writer.add_rope_freq_base(float(config.rope_parameters["rope_theta"]))
    writer.add_layer_norm_rms_eps(config.rms_norm_eps)
    writer.add_vocab_size(config.vocab_size)
    writer.add_file_type(gguf.LlamaFileType.ALL_F32)

    vocab = json.loads((model_dir / "tokenizer.json").read_text())
    merges = [m if isinstance(m, str) else " ".join(m) for m in vocab["model"]["merges"]]
    special = set(tokenizer.all_special_ids)
    tokens = tokenizer.convert_ids_to_tokens(list(range(config.vocab_size)))
    writer.add_tokenizer_model("gpt2")
    writer.add_tokenizer_pre("default")
    writer.add_token_list(tokens)
    writer.add_token_types(
        [gguf.TokenType.CONTROL if i in special else gguf.TokenType.NORMAL for i in range(len(tokens))]
    )
    writer.add_token_merges(merges)
    writer.add_bos_token_id(tokenizer.bos_token_id)
    writer.add_eos_token_id(tokenizer.eos_token_id)
    writer.add_add_bos_token(False)  # the server sends token ids, BOS included

    heads, kv_heads = config.num_attention_heads, config.num_key_value_heads
    for hf_name, gg_name in _tensor_names(config.num_hidden_layers).items():
        if hf_name not in weights:
            continue  # lm_head of a model with tied embeddings
        tensor = weights[hf_name]
        if hf_name.endswith("q_proj.weight"):
            tensor = _permute(tensor, heads)
        elif hf_name.endswith("k_proj.weight"):
            tensor = _permute(tensor, kv_heads)
        writer.add_tensor(gg_name, tensor.astype("float32"))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()


def tiny_gguf_dir(name: str) -> Path:
    """A directory with ``model.gguf`` of the tiny model ``name`` (``llama`` or ``llama-chat``) and its
    tokenizer files."""
    source = tiny_model_dir(name)
    target = cache_dir("models") / f"tiny-{name}-gguf-{SPECS[name].key()}-v{FORMAT_VERSION}"
    if (target / "model.gguf").exists():
        return target
    staging = Path(tempfile.mkdtemp(prefix=f".tiny-{name}-gguf-", dir=target.parent))
    try:
        for file in TOKENIZER_FILES:
            if (source / file).exists():
                shutil.copy(source / file, staging / file)
        write_gguf(source, staging / "model.gguf")
        try:
            os.rename(staging, target)
        except OSError:
            if not (target / "model.gguf").exists():
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target


@pytest.fixture(scope="session")
def tiny_llama_gguf_dir() -> Path:
    """The tiny Llama (llama-2 prompt format) as a GGUF file with its tokenizer files beside it."""
    return tiny_gguf_dir("llama")
