"""Contender (a): what the seeds did. Flask's own server, one ``model.generate`` per request, one at a time.

python bench/server/baseline.py MODEL_DIR PORT
"""

from __future__ import annotations

import sys

import torch
from flask import Flask, jsonify, request
from transformers import AutoConfig, AutoModelForCausalLM, AutoModelForSeq2SeqLM, AutoTokenizer


def create_app(model_dir: str) -> Flask:
    config = AutoConfig.from_pretrained(model_dir)
    auto = AutoModelForSeq2SeqLM if config.is_encoder_decoder else AutoModelForCausalLM
    model = auto.from_pretrained(model_dir).eval()
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    app = Flask(__name__)

    @app.get("/health")
    def health():
        return {"status": "ok"}

    @app.post("/generate")
    def generate():
        body = request.get_json()
        inputs = tokenizer(body["prompt"], return_tensors="pt")
        with torch.inference_mode():
            output = model.generate(
                **inputs,
                max_new_tokens=body["max_new_tokens"],
                do_sample=False,
                pad_token_id=tokenizer.pad_token_id or tokenizer.eos_token_id,
            )
        new = output[0] if config.is_encoder_decoder else output[0, inputs["input_ids"].shape[1] :]
        new = new[new != (tokenizer.pad_token_id or -1)]
        tokens = [t for t in new.tolist() if t not in (tokenizer.eos_token_id,)]
        return jsonify(text=tokenizer.decode(tokens, skip_special_tokens=True), tokens=len(tokens))

    return app


if __name__ == "__main__":
    torch.set_num_threads(int(sys.argv[3]))
    create_app(sys.argv[1]).run(host="127.0.0.1", port=int(sys.argv[2]), threaded=False)
