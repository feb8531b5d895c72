"""Many long streams held by one frontend: N chats streaming at once through one frontend process (gunicorn,
its default worker count) from an upstream that streams slowly, against the same N streams taken straight
from that upstream in the same run.

The upstream is `tests.support.fake_upstream.hostile_model` with a pause between pieces (P pieces, S seconds
apart: every answer takes (P-1)*S seconds however many are open), so the frontend's work is what varies.
Every client starts at once, posts `/api/chat/stream` (SQLite history, as a pod's default) and reads the
events to `done`. Per stream: time to the first piece and to the end; *added* = through the frontend minus
the median of the same taken straight from the upstream. The frontend's processes (gunicorn arbiter and
workers) are sampled every 0.25 s for their summed RSS.

    python bench/frontend/streams.py --streams 1000 --threads 64 default
    python bench/frontend/streams.py --streams 1000 --store postgresql

It prints a markdown table (results in bench/results/frontend.md, "Many long streams").
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import statistics
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import psutil

ROOT = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(ROOT), str(ROOT / "frontend")]

from kubechat_frontend.cli import DEFAULT_THREADS  # noqa: E402
from tests.support.databases import create_database, postgres  # noqa: E402
from tests.support.fake_upstream import hostile_model  # noqa: E402
from tests.support.frontend import run_frontend  # noqa: E402


@dataclass
class Stream:
    first: float = 0.0  # seconds from sending to the first piece of the answer
    total: float = 0.0  # seconds from sending to the end of the answer
    error: str = ""


@dataclass
class Run:
    label: str
    streams: list[Stream]
    peak_rss_mb: float = 0.0
    idle_rss_mb: float = 0.0
    cpu_s: float = 0.0
    wall_s: float = 0.0
    load: tuple[float, float] = (0.0, 0.0)
    notes: list[str] = field(default_factory=list)

    @property
    def errors(self) -> list[str]:
        return [s.error for s in self.streams if s.error]

    def ok(self, attribute: str) -> list[float]:
        return sorted(getattr(s, attribute) for s in self.streams if not s.error)


def percentile(values: list[float], q: float) -> float:
    return values[min(len(values) - 1, int(q * len(values)))] if values else float("nan")


async def one_stream(
    client: httpx.AsyncClient, url: str, body: dict, deltas: str, start: asyncio.Event
) -> Stream:
    """Post and read server-sent events until the answer ends; `deltas` names the event of a piece."""
    await start.wait()
    began = time.perf_counter()
    result = Stream()
    try:
        async with client.stream("POST", url, json=body) as response:
            if response.status_code != 200:
                await response.aread()
                return Stream(error=f"HTTP {response.status_code}: {response.text[:120]}")
            ended = False
            async for line in response.aiter_lines():
                if not line.startswith("data:"):
                    continue
                data = line[5:].strip()
                if data == "[DONE]":
                    ended = True
                    break
                event = json.loads(data)
                if deltas == "frontend":
                    if event["type"] == "delta" and not result.first:
                        result.first = time.perf_counter() - began
                    elif event["type"] == "error":
                        return Stream(error=f"error event: {event.get('code')}")
                    elif event["type"] == "done":
                        ended = True
                        break
                elif not result.first and event["choices"][0]["delta"].get("content"):
                    result.first = time.perf_counter() - began
            if not ended:
                return Stream(error="stream ended before its end")
    except httpx.HTTPError as error:
        return Stream(error=f"{type(error).__name__}: {error}"[:160])
    result.total = time.perf_counter() - began
    return result


async def many(url: str, body: dict, deltas: str, count: int) -> list[Stream]:
    limits = httpx.Limits(max_connections=count + 10, max_keepalive_connections=0)
    async with httpx.AsyncClient(limits=limits, timeout=httpx.Timeout(300, connect=60)) as client:
        start = asyncio.Event()
        tasks = [asyncio.create_task(one_stream(client, url, body, deltas, start)) for _ in range(count)]
        await asyncio.sleep(0.5)  # every task waiting: they all send at once
        start.set()
        return await asyncio.gather(*tasks)


class RssSampler:
    """The summed RSS and CPU time of a process and its children, sampled in a thread."""

    def __init__(self, pid: int) -> None:
        self.root = psutil.Process(pid)
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def processes(self) -> list[psutil.Process]:
        return [self.root, *self.root.children(recursive=True)]

    def rss(self) -> int:
        total = 0
        for process in self.processes():
            with contextlib.suppress(psutil.NoSuchProcess):
                total += process.memory_info().rss
        return total

    def cpu(self) -> float:
        total = 0.0
        for process in self.processes():
            with contextlib.suppress(psutil.NoSuchProcess):
                times = process.cpu_times()
                total += times.user + times.system
        return total

    def _run(self) -> None:
        while not self._stop.wait(0.25):
            self.peak = max(self.peak, self.rss())

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._stop.set()
        self._thread.join()


def run_through_frontend(upstream: str, count: int, threads: int | None, workdir: Path, store: dict) -> Run:
    settings = {
        **(store or {"STORE": f"sqlite:///{workdir}/history-{threads}.db"}),
        "MODELS": [{"name": "slow", "url": upstream}],
        "SECRET_KEY": "bench-secret",
        "RATE_LIMIT": 0,  # one client address sends everything here; limits are not what is measured
    }
    label = f"2 gthread workers x {threads or DEFAULT_THREADS} threads" + (
        " (default)" if threads is None else ""
    )
    label += ", " + settings["STORE"].split(":", 1)[0]
    with run_frontend(
        settings, workdir / f"frontend-{threads}.log", workers=None, threads=threads
    ) as frontend:
        warm = httpx.post(frontend.url + "/api/chat/stream", json={"message": "warm up"}, timeout=60)
        assert '"done"' in warm.text, warm.text[-300:]
        with RssSampler(frontend.process.pid) as sampler:
            idle = sampler.rss()
            cpu_before = sampler.cpu()
            load_before = os.getloadavg()[0]
            began = time.perf_counter()
            streams = asyncio.run(
                many(frontend.url + "/api/chat/stream", {"message": "tell me"}, "frontend", count)
            )
            wall = time.perf_counter() - began
            cpu = sampler.cpu() - cpu_before
        return Run(
            label, streams, peak_rss_mb=sampler.peak / 2**20, idle_rss_mb=idle / 2**20, cpu_s=cpu,
            wall_s=wall, load=(load_before, os.getloadavg()[0]),
        )  # fmt: skip


def run_direct(upstream: str, count: int) -> Run:
    body = {"model": "slow", "messages": [{"role": "user", "content": "tell me"}], "stream": True}
    began = time.perf_counter()
    load_before = os.getloadavg()[0]
    streams = asyncio.run(many(upstream + "/v1/chat/completions", body, "upstream", count))
    return Run("straight to the upstream", streams, wall_s=time.perf_counter() - began,
               load=(load_before, os.getloadavg()[0]))  # fmt: skip


def report(runs: list[Run], direct: Run, args: argparse.Namespace) -> str:
    first0 = statistics.median(direct.ok("first")) if direct.ok("first") else 0.0
    total0 = statistics.median(direct.ok("total")) if direct.ok("total") else 0.0
    lines = [
        f"{args.streams} streams at once; answers of {args.pieces} pieces {args.pause} s apart "
        f"({(args.pieces - 1) * args.pause:.1f} s each); machine: {platform.machine()}, "
        f"{os.cpu_count()} CPUs, Python {platform.python_version()}. Straight from the upstream: first piece "
        f"median {first0 * 1000:.0f} ms, whole answer median {total0:.2f} s, "
        f"{len(direct.errors)} errors.",
        "",
        "| frontend | streams ok | errors | added to first piece p50 / p99 | added to whole answer p50 / p99 "
        "| RSS idle → peak | CPU | load 1 min (start → end) |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for run in runs:
        first, total = run.ok("first"), run.ok("total")
        added_first = [v - first0 for v in first]
        added_total = [v - total0 for v in total]
        lines.append(
            f"| {run.label} | {len(first)} / {len(run.streams)} | {len(run.errors)} "
            f"| {percentile(added_first, 0.5) * 1000:.0f} / {percentile(added_first, 0.99) * 1000:.0f} ms "
            f"| {percentile(added_total, 0.5) * 1000:.0f} / {percentile(added_total, 0.99) * 1000:.0f} ms "
            f"| {run.idle_rss_mb:.0f} → {run.peak_rss_mb:.0f} MiB | {run.cpu_s:.1f} s "
            f"| {run.load[0]:.1f} → {run.load[1]:.1f} |"
        )
        kinds: dict[str, int] = {}
        for error in run.errors:
            kinds[error] = kinds.get(error, 0) + 1
        for error, n in sorted(kinds.items(), key=lambda kv: -kv[1])[:3]:
            lines.append(f"|  | | {n} × `{error}` | | | | | |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--streams", type=int, default=1000)
    parser.add_argument("--pieces", type=int, default=21)
    parser.add_argument("--pause", type=float, default=0.5, help="seconds between pieces")
    parser.add_argument("--threads", nargs="+", default=["default"], help="threads per worker ('default')")
    parser.add_argument("--store", choices=["sqlite", "postgresql"], default="sqlite", help="history store")
    args = parser.parse_args()
    pieces = [f"piece {i} " for i in range(args.pieces)]
    with (
        tempfile.TemporaryDirectory() as tmp,
        hostile_model(pieces, "slow-pod", "slow-node", args.pause) as upstream,
        contextlib.ExitStack() as stack,
    ):
        store = {}
        if args.store == "postgresql":  # a real server from the Debian package, on loopback, removed after
            server = stack.enter_context(postgres())
            store = {"STORE": create_database(server), "STORE_PASSWORD": server.password}
        direct = run_direct(upstream, args.streams)
        runs = []
        for threads in args.threads:
            runs.append(
                run_through_frontend(
                    upstream, args.streams, None if threads == "default" else int(threads), Path(tmp), store
                )
            )
    print(report(runs, direct, args), flush=True)


if __name__ == "__main__":
    main()
