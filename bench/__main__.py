"""Every benchmark in turn: `python -m bench` (what `make bench` runs).

Figures go to stdout as JSON lines (one object per measurement, "bench" names which) and a
short summary per measurement to stderr. BENCH_ONLY=sync,screen,audit_log picks benchmarks
(and BENCH_ONLY=cost the instruction counts, which need valgrind and are not run by default);
each module's docstring names its variables (sizes, concurrency, databases, latency).
"""

from __future__ import annotations

import os
import platform
import subprocess
import sys
import time

from bench.common import ROOT, emit, load_average, say

BENCHMARKS = ("sync", "screen", "webhooks", "poweroffice_requests", "audit_log")


def main() -> int:
    chosen = [b for b in os.environ.get("BENCH_ONLY", ",".join(BENCHMARKS)).split(",") if b]
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True
    ).stdout.strip()
    emit("machine", cpus=os.cpu_count(), python=platform.python_version(), commit=commit,
         load_average=round(load_average(), 2))  # fmt: skip
    failed = []
    for name in chosen:
        started = time.monotonic()
        say(f"== bench.{name}")
        if subprocess.run([sys.executable, "-m", f"bench.{name}"], cwd=ROOT).returncode != 0:
            failed.append(name)
        say(f"== bench.{name}: {time.monotonic() - started:.0f}s")
    if failed:
        say(f"failed: {failed}")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
