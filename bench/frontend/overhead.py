"""The frontend's own overhead: a chat turn's round trip through the frontend minus the model server's own.

Starts the real model server (tiny Llama, greedy decoding so that the same prompt costs the same) and the
frontend as it runs in a pod (gunicorn, gthread workers, SQLite history, API keys, rate limit on). Each of
C concurrent sessions then plays T turns; every turn is sent twice, in alternating order:

- through the frontend: `POST /api/chat` with the session id (key check, rate-limit count, history read,
  streamed upstream call, history write, JSON reply). Its `Server-Timing: upstream;dur=` header says how
  long the model server took for this very request (from sending it to its last byte), so
  **own = round trip - upstream** is the frontend's overhead per request, free of the model's variance;
- straight to the model server: `POST /v1/chat/completions` with exactly the messages the frontend sends
  upstream for that turn, answered as one JSON body like `/api/chat`. median(through) - median(direct) is a
  cross-check; with many sessions the model's batching makes it noisy (two calls never share a batch).

    python bench/frontend/overhead.py --sessions 1 50 --turns 60 --out bench/results/frontend.md
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(ROOT), str(ROOT / "frontend"), str(ROOT / "model-server")]

from tests.support.frontend import make_keys, run_frontend, served_model  # noqa: E402

# The frontend sends the last 20 turns (KUBECHAT_FRONTEND_MAX_HISTORY_TURNS); the direct call does the same.
HISTORY_MESSAGES = 40
QUESTIONS = [
    "Hello, how are you today?",
    "I am going to Paris, what should I see?",
    "what is the recipe of mayonnaise?",
]


def via_frontend(client: httpx.Client, url: str, headers: dict, body: dict) -> tuple[float, float, dict]:
    """Round trip through the frontend, and the model server's share of it (its `Server-Timing` header)."""
    start = time.perf_counter()
    response = client.post(url + "/api/chat", json=body, headers=headers)
    elapsed = time.perf_counter() - start
    response.raise_for_status()
    upstream = float(response.headers["Server-Timing"].split("dur=")[1]) / 1000
    return elapsed, upstream, response.json()


def direct(client: httpx.Client, url: str, body: dict) -> float:
    start = time.perf_counter()
    response = client.post(url + "/v1/chat/completions", json=body)
    elapsed = time.perf_counter() - start
    response.raise_for_status()
    return elapsed


def session(
    frontend_url: str, model_url: str, model: str, key: str, turns: int, index: int, results: list
) -> None:
    """One user's conversation: each turn via the frontend and straight to the model, in alternating order."""
    headers = {"Authorization": f"Bearer {key}"}
    history: list[dict[str, str]] = []
    session_id = ""
    with httpx.Client(timeout=300) as client:
        for turn in range(turns):
            question = QUESTIONS[(index + turn) % len(QUESTIONS)]
            chat = {"message": question, **({"session_id": session_id} if session_id else {})}
            prompt = [*history[-HISTORY_MESSAGES:], {"role": "user", "content": question}]
            upstream = {"model": model, "messages": prompt}
            if (index + turn) % 2:
                through, upstream_share, answer = via_frontend(client, frontend_url, headers, chat)
                straight = direct(client, model_url, upstream)
            else:
                straight = direct(client, model_url, upstream)
                through, upstream_share, answer = via_frontend(client, frontend_url, headers, chat)
            session_id = answer["session_id"]
            history += [
                {"role": "user", "content": question},
                {"role": "assistant", "content": answer["response"]},
            ]
            results.append((through, straight, through - upstream_share))


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process and its direct children (gunicorn's arbiter and workers)."""
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0.0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(stat.parent.name) == pid or int(fields[1]) == pid:
            total += (int(fields[11]) + int(fields[12])) / ticks
    return total


def measure(
    frontend_url: str, model_url: str, model: str, key: str, sessions: int, turns: int, frontend_pid: int = 0
) -> dict:
    results: list[tuple[float, float, float]] = []
    cpu_before = cpu_seconds(frontend_pid) if frontend_pid else 0.0
    threads = [
        threading.Thread(target=session, args=(frontend_url, model_url, model, key, turns, i, results))
        for i in range(sessions)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    cpu_per_turn_ms = (cpu_seconds(frontend_pid) - cpu_before) * 1000 / len(results) if frontend_pid else 0.0
    through = [r[0] * 1000 for r in results]
    straight = [r[1] * 1000 for r in results]
    return {
        "sessions": sessions,
        "turns": len(results),
        "frontend_median_ms": statistics.median(through),
        "direct_median_ms": statistics.median(straight),
        "overhead_median_ms": statistics.median(through) - statistics.median(straight),
        "paired_overhead_median_ms": statistics.median((r[0] - r[1]) * 1000 for r in results),
        "own_median_ms": statistics.median(r[2] * 1000 for r in results),
        "own_p95_ms": statistics.quantiles([r[2] * 1000 for r in results], n=20)[-1],
        "frontend_p95_ms": statistics.quantiles(through, n=20)[-1],
        "direct_p95_ms": statistics.quantiles(straight, n=20)[-1],
        "frontend_cpu_per_turn_ms": cpu_per_turn_ms,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sessions", type=int, nargs="+", default=[1, 50])
    parser.add_argument(
        "--turns",
        type=int,
        default=30,
        help="turns per session at 1 session (a third as many with more sessions)",
    )
    parser.add_argument("--workers", type=int, default=2, help="gunicorn worker processes of the frontend")
    parser.add_argument("--out", type=Path, help="write the results as markdown here")
    args = parser.parse_args()

    workdir = Path(tempfile.mkdtemp(prefix="kubechat-bench-"))
    keys = make_keys(workdir)
    model_env = {
        "KUBECHAT_MAX_NEW_TOKENS": "16",
        "KUBECHAT_DO_SAMPLE": "false",
        "KUBECHAT_MAX_BATCH_SIZE": "64",
    }
    with served_model("llama", "llama", **model_env) as model:
        settings = {
            "STORE": f"sqlite:///{workdir}/history.db",
            "MODELS": [{"name": model.name, "url": model.url}],
            "API_KEYS_FILE": keys.file,
            "SECRET_KEY": "bench",
            "RATE_LIMIT": 1_000_000,
        }
        with run_frontend(settings, workdir / "frontend.log", workers=args.workers, threads=64) as frontend:
            measure(frontend.url, model.url, model.name, keys.user_key, 2, 3)  # warm both paths up
            rows = []
            for sessions in args.sessions:
                turns = args.turns if sessions == 1 else max(3, args.turns // 3)
                row = measure(
                    frontend.url, model.url, model.name, keys.user_key, sessions, turns, frontend.process.pid
                )
                print(json.dumps(row), flush=True)
                rows.append(row)

    if args.out:
        args.out.write_text(markdown(rows, args.workers))


def markdown(rows: list[dict], workers: int) -> str:
    machine = f"{platform.machine()}, Python {platform.python_version()}, {len(os.sched_getaffinity(0))} CPUs"
    lines = [
        "# Frontend overhead",
        "",
        "By `bench/frontend/overhead.py` (see its docstring). Real model server (tiny Llama, greedy,",
        f"16 new tokens); the frontend in gunicorn ({workers} gthread workers x 64 threads), SQLite history,",
        "API key check and rate limit on. Client, frontend and model server share one machine",
        f"({machine}). *Own* = round trip through the frontend minus the model server's time for the",
        "same request (`Server-Timing`); *difference* = median via the frontend minus median of the same",
        "turns sent straight to the model server.",
        "",
        "| sessions | turns | own median | own p95 | via frontend median | direct median | difference |"
        " frontend CPU per turn |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in rows:
        cells = [
            str(r["sessions"]),
            str(r["turns"]),
            f"**{r['own_median_ms']:.1f} ms**",
            f"{r['own_p95_ms']:.1f} ms",
            f"{r['frontend_median_ms']:.1f} ms",
            f"{r['direct_median_ms']:.1f} ms",
            f"{r['overhead_median_ms']:.1f} ms",
            f"{r['frontend_cpu_per_turn_ms']:.2f} ms",
        ]
        lines.append("| " + " | ".join(cells) + " |")
    lines += ["", "Targets: under 5 ms median overhead at 1 session, under 20 ms at 50.", ""]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
