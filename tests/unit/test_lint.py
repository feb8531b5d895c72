"""The house style is enforced, not hoped for: ruff's lint rules and formatting over the whole tree."""

from __future__ import annotations

import subprocess
import sys

from tests.support.procs import REPO_ROOT


def _ruff(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "ruff", *args], cwd=REPO_ROOT, capture_output=True, text=True, timeout=120
    )


def test_ruff_finds_no_lint_errors():
    result = _ruff("check", "--no-cache", ".")
    assert result.returncode == 0, result.stdout + result.stderr


def test_code_is_formatted_by_ruff():
    result = _ruff("format", "--no-cache", "--check", ".")
    assert result.returncode == 0, result.stdout + result.stderr
