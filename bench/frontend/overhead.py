"""The frontend's own overhead: a chat turn's round trip through the frontend minus the model server's own.

Starts the real model server (tiny Llama, greedy decoding so that the same prompt costs the same) and the
frontend as it runs in a pod (gunicorn, gthread workers, SQLite history, API keys, rate limit on). Each of
C concurrent sessions then plays T turns; every turn is sent twice, in alternating order:

- through the frontend: `POST /api/chat` with the session id (key check, rate-limit count, history read,
  streamed upstream call, history write, JSON reply);
- straight to the model server: `POST /v1/chat/completions` (streamed, read to `[DONE]`) with exactly the
  messages the frontend sends upstream for that turn.

Overhead = median(through the frontend) - median(direct); the median of the per-turn differences is shown too.

    python bench/frontend/overhead.py --sessions 1 50 --turns 30 --out bench/results/frontend.md
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

QUESTIONS = [
    "Hello, how are you today?",
    "I am going to Paris, what should I see?",
    "what is the recipe of mayonnaise?",
]


def via_frontend(client: httpx.Client, url: str, headers: dict, body: dict) -> tuple[float, dict]:
    start = time.perf_counter()
    response = client.post(url + "/api/chat", json=body, headers=headers)
    elapsed = time.perf_counter() - start
    response.raise_for_status()
    return elapsed, response.json()


def direct(client: httpx.Client, url: str, body: dict) -> float:
    start = time.perf_counter()
    with client.stream("POST", url + "/v1/chat/completions", json=body) as response:
        response.raise_for_status()
        for _ in response.iter_raw():
            pass
    return time.perf_counter() - start


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
            upstream = {
                "model": model,
                "messages": [*history, {"role": "user", "content": question}],
                "stream": True,
            }
            if (index + turn) % 2:
                through, answer = via_frontend(client, frontend_url, headers, chat)
                straight = direct(client, model_url, upstream)
            else:
                straight = direct(client, model_url, upstream)
                through, answer = via_frontend(client, frontend_url, headers, chat)
            session_id = answer["session_id"]
            history += [
                {"role": "user", "content": question},
                {"role": "assistant", "content": answer["response"]},
            ]
            results.append((through, straight))


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
    results: list[tuple[float, float]] = []
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
        "paired_overhead_median_ms": statistics.median((t - s) * 1000 for t, s in results),
        "frontend_p95_ms": statistics.quantiles(through, n=20)[-1],
        "direct_p95_ms": statistics.quantiles(straight, n=20)[-1],
        "frontend_cpu_per_turn_ms": cpu_per_turn_ms,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sessions", type=int, nargs="+", default=[1, 50])
    parser.add_argument(
        "--turns", type=int, default=30, help="turns per session at 1 session (fewer at more)"
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
                turns = max(3, args.turns // max(1, sessions // 5)) if sessions > 1 else args.turns
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
        "One chat turn through the frontend (`POST /api/chat`) minus the same turn sent straight to the",
        "model server (`POST /v1/chat/completions`, streamed), by `bench/frontend/overhead.py`. Real model",
        f"server (tiny Llama, greedy, 16 new tokens); the frontend in gunicorn ({workers} gthread workers",
        "x 64 threads), SQLite history, API key check and rate limit on. Client, frontend and model",
        f"server share one machine ({machine}).",
        "",
        "| sessions | turns | via frontend median | direct median | overhead (median difference) |"
        " paired overhead median | via frontend p95 | direct p95 | frontend CPU per turn |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in rows:
        cells = [
            str(r["sessions"]),
            str(r["turns"]),
            f"{r['frontend_median_ms']:.1f} ms",
            f"{r['direct_median_ms']:.1f} ms",
            f"**{r['overhead_median_ms']:.1f} ms**",
            f"{r['paired_overhead_median_ms']:.1f} ms",
            f"{r['frontend_p95_ms']:.1f} ms",
            f"{r['direct_p95_ms']:.1f} ms",
            f"{r['frontend_cpu_per_turn_ms']:.2f} ms",
        ]
        lines.append("| " + " | ".join(cells) + " |")
    lines += ["", "Targets: under 5 ms median overhead at 1 session, under 20 ms at 50.", ""]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
