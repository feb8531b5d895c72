"""Time from a chat sent to a ChatModel at zero replicas to its first token, split into its parts, on the
real node with the quick start's SmolLM2 ChatModel; writes bench/results/coldstart.md.

    ~/.cache/kubechat/venv/bin/python bench/coldstart/run.py   # 3 cold starts (KUBECHAT_COLDSTART_RUNS)

The measuring is bench/coldstart/measure.py (a pytest module on the real-node fixtures of tests/cluster);
this script runs it and turns its JSON into the table: the median of each part over the runs, and each run.
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
RESULTS = ROOT / "bench" / "results" / "coldstart.md"


def main() -> int:
    out = Path(tempfile.mkdtemp(prefix="kubechat-coldstart-")) / "runs.json"
    load_before = os.getloadavg()
    started = time.monotonic()
    command = [
        sys.executable,
        "-m",
        "pytest",
        "-s",
        "-q",
        "-p",
        "no:cacheprovider",
        "bench/coldstart/measure.py",
    ]
    result = subprocess.run(
        command, cwd=ROOT, env={**os.environ, "KUBECHAT_COLDSTART_OUT": str(out), "HF_HUB_OFFLINE": "1"}
    )
    if result.returncode != 0 or not out.exists():
        print("bench/coldstart: the measurement failed; nothing written", file=sys.stderr)
        return 1
    runs = json.loads(out.read_text())
    parts = list(runs[0]["split"])
    lines = [
        "# Cold start: a chat at zero replicas to its first token (bench/coldstart/run.py)",
        "",
        f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC, {platform.machine()}, {os.cpu_count()} cores, "
        f"{len(runs)} cold starts in {time.monotonic() - started:.0f} s (with the node's set-up). "
        f"Machine load average (1 min) at the start: {load_before[0]:.2f}; the machine is shared with other "
        "work, so parts that need CPU (imports, load, warm-up) are slower than on an idle node.",
        "",
        "The quick start (examples/quickstart.yaml): SmolLM2-135M-Instruct GGUF on the ChatModel's cache "
        "volume, transformers engine, CPU, images already on the node. A streamed chat is sent through the "
        "frontend's Service (port-forward) while the ChatModel is at 0; the frontend holds it; when its "
        "`kubechat_frontend_waiting_requests` gauge is above 0 the bench scales the ChatModel to 1 (standing "
        "in for the operator's autoscaler loop). Each part is from first sight of its start to first sight "
        "of its end, polled every 0.2 s (pod status, the model server's progress reports). A step not seen "
        "takes the next one's time: with the weights already on the cache volume there is no download "
        "stage, and reading the GGUF file is part of load (the transformers engine dequantises it).",
        "",
        "| part | median s | " + " | ".join(f"run {i + 1}" for i in range(len(runs))) + " |",
        "| --- | --- | " + " | ".join("---" for _ in runs) + " |",
    ]
    for part in parts:
        values = [run["split"][part] for run in runs]
        cells = " | ".join(f"{v:.1f}" for v in values)
        name = f"**{part}**" if part.startswith("total") else part
        lines.append(f"| {name} | {statistics.median(values):.1f} | {cells} |")
    lines += [
        "",
        "Per run: the kubelet's image event, the load average before/after, the progress stages seen.",
        "",
    ]
    for i, run in enumerate(runs, 1):
        stages = ", ".join(run["stages seen"]) or "none"
        lines.append(
            f"- run {i}: image: {run['image']}; load {run['load average before/after'][0]} -> "
            f"{run['load average before/after'][1]}; stages: {stages}"
        )
    RESULTS.write_text("\n".join(lines) + "\n")
    print(RESULTS.read_text())
    return 0


if __name__ == "__main__":
    sys.exit(main())
