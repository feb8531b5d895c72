"""Why llama.cpp and transformers answer differently on the same GGUF file: same prompt token ids, greedy.

    python bench/server/gguf_parity.py [--llama-server BIN] [--gguf FILE] [--question TEXT]

Renders the question with the GGUF's chat template (transformers, as kubechat does), checks that llama-server
tokenises and templates it to the same ids, then feeds those ids to llama-server (greedy, samplers as
kubechat's engine sends them) once on the file as it is and once on an all-float32 copy (every tensor
dequantised, written to a temporary directory), and to transformers (the file dequantised). Prints each
answer and the top log-probabilities of the first tokens. The float32 copy runs the same llama.cpp graph
(tokenizer, RoPE, attention, norms) with float activations; the original runs llama.cpp's quantised dot
products, which quantise each activation vector to 8 bits first (ggml-org/llama.cpp#4755). Results:
docs/model-server.md ("llama.cpp and SmolLM2's answers").
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import numpy as np

ROOT = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(ROOT), str(ROOT / "bench" / "server")]

from compare import llama_server_binary  # noqa: E402
from models import smollm2_gguf  # noqa: E402

PORT = 18931
SHOWN_STEPS = 4


def float32_copy(source: Path, target: Path) -> Path:
    """``source`` with every tensor dequantised to float32, metadata unchanged but the file type."""
    from gguf import GGUFReader, GGUFValueType, GGUFWriter, LlamaFileType
    from gguf.quants import dequantize

    reader = GGUFReader(source)
    writer = GGUFWriter(target, reader.get_field("general.architecture").contents())
    for field in reader.fields.values():
        if field.name.startswith("GGUF.") or field.name == "general.architecture":
            continue
        value = int(LlamaFileType.ALL_F32) if field.name == "general.file_type" else field.contents()
        sub_type = field.types[-1] if field.types[0] == GGUFValueType.ARRAY else None
        writer.add_key_value(field.name, value, field.types[0], sub_type=sub_type)
    for tensor in reader.tensors:
        weights = dequantize(tensor.data, tensor.tensor_type).astype(np.float32)
        writer.add_tensor(tensor.name, np.ascontiguousarray(weights))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return target


def on_llama_server(binary: str, gguf: Path, text: str, ids: list[int], messages: list[dict]) -> None:
    command = [binary, "-m", str(gguf), "--host", "127.0.0.1", "--port", str(PORT), "-c", "2048"]
    process = subprocess.Popen(
        [*command, "-t", "2", "--no-webui", "--no-repack"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{PORT}", timeout=300) as client:
            deadline = time.monotonic() + 300
            while time.monotonic() < deadline:
                try:
                    if client.get("/health").status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                time.sleep(0.2)
            own_ids = client.post(
                "/tokenize", json={"content": text, "add_special": False, "parse_special": True}
            ).json()["tokens"]
            own_text = client.post("/apply-template", json={"messages": messages}).json()["prompt"]
            print(f"{gguf.name}: llama.cpp's template, ids == ours: {own_text == text}, {own_ids == ids}")
            body = {"prompt": ids, "n_predict": 20, "temperature": 0.0, "samplers": ["temperature"]}
            answer = client.post("/completion", json={**body, "n_probs": 5, "cache_prompt": False}).json()
            print(f"  answer {answer['content']!r}")
            for step in answer["completion_probabilities"][:SHOWN_STEPS]:
                print("  ", [(alt["token"], round(alt["logprob"], 3)) for alt in step["top_logprobs"]])
    finally:
        process.terminate()
        process.wait(10)


def on_transformers(gguf: Path, ids: list[int], tokenizer) -> None:
    import torch
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32)
    with torch.no_grad():
        out = model.generate(
            torch.tensor([ids]),
            max_new_tokens=20,
            do_sample=False,
            output_scores=True,
            return_dict_in_generate=True,
        )
    print(f"transformers (dequantised): answer {tokenizer.decode(out.sequences[0, len(ids) :])!r}")
    for scores in out.scores[:SHOWN_STEPS]:
        best = torch.log_softmax(scores[0].float(), -1).topk(5)
        print("  ", [(tokenizer.decode([int(i)]), round(float(v), 3)) for v, i in zip(*best, strict=True)])


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--llama-server", default=None)
    parser.add_argument("--gguf", type=Path, default=None)
    parser.add_argument("--question", default="What is the capital of France?")
    args = parser.parse_args()
    from transformers import AutoTokenizer

    gguf = args.gguf or smollm2_gguf()
    binary = args.llama_server or llama_server_binary()
    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    messages = [{"role": "user", "content": args.question}]
    text = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    print(f"prompt {text!r}\nids {ids}")
    on_llama_server(binary, gguf, text, ids, messages)
    with tempfile.TemporaryDirectory() as scratch:
        on_llama_server(binary, float32_copy(gguf, Path(scratch) / "f32.gguf"), text, ids, messages)
    on_transformers(gguf, ids, tokenizer)


if __name__ == "__main__":
    main()
