"""bench/console.py runs end to end: a flood with and without the console attached."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

CONSOLE_BENCH = Path(__file__).resolve().parents[1] / "bench" / "console.py"


@pytest.mark.skipif(shutil.which("storescu") is None, reason="needs dcmtk's storescu")
def test_console_bench_quick_prints_ratio_and_latency():
    result = subprocess.run([sys.executable, str(CONSOLE_BENCH), "--quick"],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "ratio attached / none" in result.stdout
    assert "images/s, console attached" in result.stdout
    assert "key latency" in result.stdout  # the figures, or "no key presses"
