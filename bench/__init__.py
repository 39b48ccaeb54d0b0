"""Benchmarks: measurements, not tests. `make bench` runs them all; see bench/README.md."""
