"""Plain llama-server in several configurations side by side: which flags or OpenMP settings serve faster,
and which keep their rate beside a busy neighbour (bench/results/server.md: the child's spin count).

    python bench/server/llama_variants.py --clients 1 8 --neighbour \
        --variant default: --variant spin300:GOMP_SPINCOUNT=300 --variant asleep:OMP_WAIT_POLICY=PASSIVE
    python bench/server/llama_variants.py --clients 32 --variant default: --variant fa:"-fa on"

A variant is ``NAME:WORDS``: words like ``VAR=value`` (upper-case name) go to the environment, the others
to llama-server's command line after ``--threads T --threads-batch T`` (a later ``--threads`` wins). Every
variant serves the SmolLM2 GGUF of compare.py with ``--parallel 32``, all are started before the first
request, and each cell sends compare.py's requests with a prompt tag of its own (no prompt-cache reuse).
"""

from __future__ import annotations

import argparse
import re
import shlex
import tempfile
from pathlib import Path

from compare import Contender, Neighbour, drive, llama_server_binary, llama_server_command, request_list
from models import smollm2_gguf


def variant(text: str, binary: str, gguf: Path, threads: int) -> Contender:
    name, _, words = text.partition(":")
    settings, flags = {}, []
    for word in shlex.split(words):
        if re.match(r"^[A-Z_]+=", word):
            key, value = word.split("=", 1)
            settings[key] = value
        else:
            flags.append(word)
    command = llama_server_command(binary, gguf, 32, 1536, threads) + flags
    return Contender(name, command, settings, "gguf")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--variant", action="append", required=True, help="NAME:WORDS (see above)")
    parser.add_argument("--clients", type=int, nargs="+", default=[1, 8])
    parser.add_argument("--min-requests", type=int, default=4)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--neighbour", action="store_true", help="each cell again beside one busy process")
    args = parser.parse_args()
    binary, gguf = llama_server_binary(), smollm2_gguf()
    chosen = [variant(text, binary, gguf, args.threads) for text in args.variant]
    logs = Path(tempfile.mkdtemp(prefix="kubechat-llama-variants-"))
    try:
        for contender in chosen:
            contender.start(logs)
        for contender in chosen:
            contender.wait_ready(300)
        for level, clients in enumerate(args.clients):
            for index, contender in enumerate(chosen):
                tag = f"({level}{chr(ord('a') + index)}) "
                count = max(args.min_requests, clients)
                cell = drive(contender, clients, request_list(count, 64, tag))
                line = f"{clients:3d} clients {contender.name:16s} {cell.tokens_per_s:6.1f} tok/s"
                cpu = cell.cpu_ms_per_token("process")
                line += f"  itl {cell.itl() * 1000:5.1f} ms  cpu {cpu:5.1f} ms/tok"
                line += f"  load {cell.load:.1f}"
                if args.neighbour:
                    with Neighbour(600):
                        crowded = drive(contender, clients, request_list(count, 64, tag + "n "))
                    ratio = crowded.tokens_per_s / cell.tokens_per_s
                    line += f"  | + neighbour {crowded.tokens_per_s:6.1f} tok/s ({ratio:.2f})"
                print(line, flush=True)
    finally:
        for contender in chosen:
            contender.stop()


if __name__ == "__main__":
    main()
