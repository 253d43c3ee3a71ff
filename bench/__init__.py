"""Benchmarks: each prints ratios measured in one run; results go to bench/RESULTS.md."""
