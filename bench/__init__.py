"""Benchmarks of the data service at a chosen scale (`make bench`, `python -m bench`).

Not tests: each benchmark generates or reuses synthetic data in the benchmark's own database,
measures with warm-up and repeats, and reports figures (median, p95, ratios against the targets
of the performance issue). `bench.__main__` prints the table and writes
`bench/results/<timestamp>.json`; docs/performance.md explains how to run it and what each
figure means. One module per benchmark: rls, vectors, storage, ingest, retention.
"""
