"""Reading a large SAF-T Financial file: speed and peak memory of `services.saft.read_saft`.

Issue 17's target is for the whole import (peak RSS < 300 MB for a generated valid file of at
least 1,000,000 lines, about 500 MB); this measures its reading part, which is where memory
could grow with the file: a file is generated (tests/saft_files.py, 1.30, every month's
movements split over many lines), then read in a fresh process whose peak RSS (VmHWM) is
reported with MB/s and lines/s. The database part comes with the import.

Variables: BENCH_SAFT_LINES (1,000,000 transaction lines), BENCH_SAFT_ACCOUNTS (200),
BENCH_SAFT_DIR (where the file is written; a temporary folder by default, removed after).
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.common import PYTHON, ROOT, emit, rss_mb, say


def read(path: Path) -> None:
    """The measured part, in a process of its own: one JSON line on stdout."""
    from services.saft import read_saft

    started = time.monotonic()
    saft = read_saft(path)
    seconds = time.monotonic() - started
    _, peak = rss_mb()
    print(
        json.dumps(
            {
                "seconds": round(seconds, 2),
                "lines": saft.line_count,
                "transactions": saft.transaction_count,
                "accounts": len(saft.accounts),
                "findings": len(saft.findings),
                "rss_peak_mb": round(peak, 1),
            }
        )
    )


def generate(folder: Path, default_lines: int) -> tuple[Path, int, float]:
    """A valid 1.30 file of BENCH_SAFT_LINES transaction lines over BENCH_SAFT_ACCOUNTS
    accounts in `folder`: (path, lines, MB)."""
    from tests.saft_files import random_books, write_saft

    lines = int(os.environ.get("BENCH_SAFT_LINES", str(default_lines)))
    accounts = int(os.environ.get("BENCH_SAFT_ACCOUNTS", "200"))
    # Each movement is written as about `per_movement` transactions of two lines
    # (tests/saft_files.py); one more makes sure of the target.
    per_movement = math.ceil(lines / (accounts * 12 * 2)) + 1
    path = folder / "stor-saft.xml"
    started = time.monotonic()
    written = write_saft(path, random_books(accounts=accounts), lines_per_movement=per_movement)
    size_mb = path.stat().st_size / 1e6
    say(
        f"saft: wrote {written.line_count:,} lines, {size_mb:.0f} MB "
        f"in {time.monotonic() - started:.0f} s"
    )
    return path, written.line_count, size_mb


def main() -> None:
    with tempfile.TemporaryDirectory(dir=os.environ.get("BENCH_SAFT_DIR")) as folder:
        path, line_count, size_mb = generate(Path(folder), 1_000_000)
        done = subprocess.run(
            [PYTHON, "-m", "bench.saft_read", "--inner", str(path)],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=True,
        )
        figures = json.loads(done.stdout.strip().splitlines()[-1])
    assert figures["lines"] == line_count, (figures, line_count)
    seconds = figures["seconds"]
    emit(
        "saft.read",
        size_mb=round(size_mb, 1),
        mb_per_s=round(size_mb / seconds, 1),
        lines_per_s=round(figures["lines"] / seconds),
        **figures,
    )
    say(
        f"saft read: {size_mb:.0f} MB, {figures['lines']:,} lines in {seconds:.1f} s "
        f"({size_mb / seconds:.1f} MB/s, {figures['lines'] / seconds:,.0f} lines/s), "
        f"peak RSS {figures['rss_peak_mb']} MB (target for the whole import: < 300 MB)"
    )


if __name__ == "__main__":
    if sys.argv[1:2] == ["--inner"]:
        read(Path(sys.argv[2]))
    else:
        main()
