"""The style gates of STYLE.md run with the suite: ruff on everything, mypy --strict on
the packages, their tests, the test helpers and the benchmarks (pyproject's [tool.mypy]).
A lint failure is a test failure, so CI enforces them."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", *args], cwd=ROOT, capture_output=True,
                          text=True, check=False)


def test_ruff_clean() -> None:
    r = _run("ruff", "check", "mpcnode", "coordinator", "oms_core", "zero_trust", "ethereum",
             "test_only", "testing", "tests", "bench")
    assert r.returncode == 0, r.stdout + r.stderr


def test_mypy_strict_clean() -> None:
    r = _run("mypy")
    assert r.returncode == 0, r.stdout + r.stderr
