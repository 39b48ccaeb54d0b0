"""The Tripletex simulator in a process of its own, serving the benchmark world.

    python -m bench.sim_server --port 8765 --sizes 100,1000,5000 [--latency 0.05]

Its CPU and memory are not the app's: benchmarks measure the process that syncs. Faults
(latency) are changed at run time through the control API, POST /_sim/faults.
"""

from __future__ import annotations

import argparse
import logging
import time

import uvicorn

from bench.world import build_world
from simulators.tripletex import create_simulator_app


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--sizes", default="100")
    parser.add_argument("--latency", type=float, default=0.05)
    args = parser.parse_args()
    started = time.monotonic()
    state = build_world([int(n) for n in args.sizes.split(",")])
    state.set_faults(latency_seconds=args.latency)
    logging.basicConfig(level=logging.WARNING)
    print(f"world built in {time.monotonic() - started:.1f}s", flush=True)
    uvicorn.run(
        create_simulator_app(state),
        host="127.0.0.1",
        port=args.port,
        log_level="warning",
        access_log=False,
        lifespan="on",
    )


if __name__ == "__main__":
    main()
