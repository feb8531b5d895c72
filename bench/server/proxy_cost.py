"""What kubechat's Python side costs per token on the llama.cpp engine, without the model's compute.

    python bench/server/proxy_cost.py [--clients 32] [--step-ms 100] [--rounds 2]

kubechat-server runs on the llama.cpp engine with a stand-in for ``llama-server``: this file again, started
by kubechat as its child, which streams fixed tokens to every open ``/completion`` in lockstep (one
"decoding step" every ``--step-ms``). The clients and requests are bench/server/compare.py's; reported:
kubechat's CPU ms per generated token (its process, from ``/proc/<pid>/stat``) and the stand-in's. Add
py-spy (``py-spy record --pid``) to see where the time goes (bench/results/server.md, run 6).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import stat
import sys
import tempfile
from pathlib import Path

# SmolLM2's ids of plain English text, no end-of-generation token among them.
TOKENS = [504, 3575, 282, 4649, 314, 7042, 30, 378, 1343, 3030, 281, 260, 1834, 282, 260, 1911, 28]


def stand_in(port: int, step_s: float) -> None:
    """The child: ``/health`` and a streaming ``/completion`` as llama-server answers them."""
    from aiohttp import web

    tick = asyncio.Event()

    async def stepper() -> None:
        nonlocal tick
        while True:
            await asyncio.sleep(step_s)
            tick, done = asyncio.Event(), tick
            done.set()

    async def health(request):
        return web.json_response({"status": "ok"})

    async def completion(request):
        body = await request.json()
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        for i in range(body["n_predict"]):
            await tick.wait()
            token = TOKENS[i % len(TOKENS)]
            chunk = {"index": 0, "content": "", "tokens": [token], "stop": False, "tokens_predicted": i + 1}
            await response.write(f"data: {json.dumps(chunk)}\n\n".encode())
        last = {"index": 0, "content": "", "tokens": [], "stop": True, "stop_type": "limit"}
        await response.write(f"data: {json.dumps(last)}\n\n".encode())
        return response

    async def serve() -> None:
        app = web.Application()
        app.router.add_get("/health", health)
        app.router.add_post("/completion", completion)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", port).start()
        await stepper()

    asyncio.run(serve())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--step-ms", type=float, default=100)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    sys.argv[1:] = []  # compare.py parses nothing at import, but keep its view of argv clean
    sys.path.insert(0, str(Path(__file__).parent))
    import compare
    from models import smollm2_gguf

    with tempfile.TemporaryDirectory(prefix="kubechat-proxy-cost-") as work:
        # kubechat executes its llama-server binary directly: a wrapper that runs this file as the child.
        binary = Path(work) / "llama-server"
        itself = Path(__file__).resolve()
        binary.write_text(f'#!/bin/sh\nexec "{sys.executable}" "{itself}" --stand-in {args.step_ms} "$@"\n')
        binary.chmod(binary.stat().st_mode | stat.S_IXUSR)
        gguf = smollm2_gguf()
        kubechat = compare.Contender(
            "kubechat-stand-in",
            [sys.executable, "-m", "kubechat_server", "--host", "127.0.0.1", "--port", "{port}",
             "--torch-threads", "1", "--max-batch-size", str(args.clients), "--model", str(gguf.parent),
             "--engine", "llama.cpp", "--llama-server", str(binary)],
            {},
            "",
            ready_path="/readyz",
        )  # fmt: skip
        kubechat.start(Path(work))
        try:
            kubechat.wait_ready(300)
            print(f"kubechat pid {kubechat.process.pid}", flush=True)
            compare.drive(kubechat, 1, compare.request_list(2, 8))
            for round_ in range(args.rounds):
                work_list = compare.request_list(args.clients * 2, 64, f"({round_}) ")
                cell = compare.drive(kubechat, args.clients, work_list)
                print(
                    f"{args.clients} clients: {cell.tokens} tokens, {cell.tokens_per_s:.0f} tok/s; "
                    f"CPU ms/token: kubechat {cell.cpu_ms_per_token('process'):.3f}, stand-in "
                    f"{cell.cpu_ms_per_token('children'):.3f}; errors {len(cell.samples) - len(cell.ok)}",
                    flush=True,
                )
        finally:
            kubechat.stop()


if __name__ == "__main__":
    if len(sys.argv) > 2 and sys.argv[1] == "--stand-in":
        stand_in(int(sys.argv[sys.argv.index("--port") + 1]), float(sys.argv[2]) / 1000)
    else:
        main()
