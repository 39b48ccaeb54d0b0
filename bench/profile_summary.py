"""Summarize a py-spy profile (`py-spy record -f raw`, collapsed stacks): where the CPU goes.

    .venv/bin/py-spy record -r 250 -f raw -o /tmp/sync.txt -- .venv/bin/python -m bench.sync
    .venv/bin/python -m bench.profile_summary /tmp/sync.txt

The event loop's thread (and SQLAlchemy's greenlets on it) is what limits an asyncio
process, so its samples are summarized apart from other threads (aiosqlite runs each
connection's SQLite calls in a thread of its own): self time by library (the leaf frame's
package), and our own functions by the time spent in them and below them.
"""

from __future__ import annotations

import argparse
import re
from collections import Counter
from pathlib import Path

FRAME = re.compile(r"^(?P<func>.*?) \((?P<file>[^:()]+)(?::(?P<line>\d+))?\)$")
OURS = ("services/", "routes/", "models/", "bench/", "app.py")
IDLE = ("selectors.py", "threading.py")


def package(path: str) -> str:
    if "site-packages/" in path:
        return path.split("site-packages/", 1)[1].split("/", 1)[0].removesuffix(".py")
    for ours in OURS:
        if ours in path:
            return path[path.index(ours) :].rsplit("/", 1)[0] if "/" in ours else ours
    return path.split("/", 1)[0] if "/" in path else path


def parse(frame: str) -> tuple[str, str, str]:
    match = FRAME.match(frame)
    return (match["func"], match["file"], match["line"] or "") if match else (frame, frame, "")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("profile")
    parser.add_argument("--top", type=int, default=20)
    args = parser.parse_args()
    loop_self: Counter[str] = Counter()
    ours: Counter[str] = Counter()
    threads: Counter[str] = Counter()
    loop_total = loop_idle = 0
    for line in Path(args.profile).read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack:
            continue
        n = int(count)
        frames = [parse(f) for f in stack.split(";")]
        if frames[0][0].startswith(("Thread._bootstrap", "_bootstrap")):
            func, file, number = frames[-1]
            busy = not (file.endswith("aiosqlite/core.py") and number == "59")  # queue.get
            threads["other threads, working" if busy else "other threads, waiting"] += n
            continue
        loop_total += n
        leaf = package(frames[-1][1])
        if leaf in IDLE:
            loop_idle += n
            continue
        loop_self[leaf] += n
        for func, file, _ in reversed(frames):
            if any(o in file for o in OURS[:4]):
                ours[f"{func} ({file[min(file.index(o) for o in OURS if o in file) :]})"] += n
                break
    busy = loop_total - loop_idle
    print(f"event-loop thread: {loop_total} samples, {busy} busy ({100 * busy / loop_total:.0f}%)")
    print(f"other threads: {dict(threads)}")
    print("\nbusy event-loop time by library (leaf frame):")
    for name, n in loop_self.most_common(args.top):
        print(f"  {100 * n / busy:5.1f}%  {name}")
    print("\nbusy event-loop time by the nearest function of ours (it and the libraries it calls):")
    for name, n in ours.most_common(args.top):
        print(f"  {100 * n / busy:5.1f}%  {name}")


if __name__ == "__main__":
    main()
