"""Robustness benchmarks: how provenance signals survive re-encoding and edits."""
