"""Benchmarks: workloads (story, serve sweeps, probes), the load generator, metric math,
reports and plots. Definitions of every metric: docs/bench.md."""
