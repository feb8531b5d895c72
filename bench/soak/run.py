"""The fault suite at soak size: the same tests as tests/faults, with 50 ChatModels, more SIGKILLs and
thousands of generated requests, and their measurements written to bench/results/soak.md.

    /root/.cache/kubechat/venv/bin/python bench/soak/run.py            # everything (about 30 min on 2 cores)
    /root/.cache/kubechat/venv/bin/python bench/soak/run.py operator   # one scenario

Each scenario is a pytest run of tests/faults with sizes raised through the environment variables the tests
read (tests/faults/churn.py, tests/faults/test_hostile_http.py); the lines the tests print (convergence
times, requests sent, slot release times) are the measurements.
"""

from __future__ import annotations

import os
import platform
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
RESULTS = ROOT / "bench" / "results" / "soak.md"
SCENARIOS = {
    "operator": (
        "50 ChatModels churned (create/update/delete) with 10 SIGKILLs of the operator; a 30 s control-plane "
        "outage under 25 ChatModels",
        ["tests/faults/test_operator_faults.py"],
        {"KUBECHAT_FAULT_MODELS": "50", "KUBECHAT_FAULT_KILLS": "10", "KUBECHAT_FAULT_OUTAGE_S": "30"},
    ),
    "hostile-http": (
        "OpenAPI-generated requests, 200 per operation and mode, against the model server",
        ["tests/faults/test_hostile_http.py", "-k", "generated"],
        {"KUBECHAT_FAULT_EXAMPLES": "200"},
    ),
    "hostile-frontend": (
        "Hypothesis-generated requests against the frontend's JSON API, 300 cases of 3 requests",
        ["tests/faults/test_hostile_frontend.py"],
        {"KUBECHAT_FAULT_EXAMPLES": "100"},
    ),
    "server": (
        "walk-aways and floods against a one-slot model server",
        ["tests/faults/test_server_faults.py"],
        {},
    ),
}
# Lines the tests print that are measurements.
MARKERS = ("converged", "kills", "generated requests", "generated cases", "slot free", "full ", "random seed")


def run(name: str) -> str:
    what, args, env = SCENARIOS[name]
    command = [sys.executable, "-m", "pytest", "-s", "-q", "-p", "no:cacheprovider", *args]
    started = time.monotonic()
    result = subprocess.run(
        command, cwd=ROOT, env={**os.environ, **env, "HF_HUB_OFFLINE": "1"}, capture_output=True, text=True
    )
    elapsed = time.monotonic() - started
    lines = result.stdout.splitlines()
    measured = [line.strip(". ") for line in lines if any(m in line for m in MARKERS)]
    summary = next(
        (line for line in reversed(lines) if " in " in line and ("passed" in line or "failed" in line)), ""
    )
    settings = " ".join(f"{k}={v}" for k, v in env.items())
    out = [
        f"## {name}: {what}",
        "",
        f"`{settings} pytest {' '.join(args)}` — {elapsed:.0f} s, **{summary}**",
        "",
    ]
    out += [f"- {line}" for line in measured] or ["- (no measurements printed)"]
    if result.returncode != 0:
        out += ["", "```", *lines[-40:], "```"]
    return "\n".join(out) + "\n"


def main(argv: list[str]) -> int:
    names = argv or list(SCENARIOS)
    header = [
        "# Soak results (bench/soak/run.py)",
        "",
        f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC on {platform.node()}: {os.cpu_count()} CPU cores, "
        f"Python {platform.python_version()}; other work shared the machine (date of the latest run).",
        "",
    ]
    # Scenarios not run this time keep their last results.
    sections = dict.fromkeys(SCENARIOS, "")
    if RESULTS.exists():
        for block in RESULTS.read_text().split("\n## ")[1:]:
            sections[block.split(":", 1)[0]] = "## " + block.rstrip("\n") + "\n"
    for name in names:
        sections[name] = run(name)
    RESULTS.write_text("\n".join(header) + "\n" + "\n".join(s for s in sections.values() if s))
    print(RESULTS.read_text())
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
