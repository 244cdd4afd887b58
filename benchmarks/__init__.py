"""Benchmarks of dynadask: scripts that print tables (run as ``python -m benchmarks...``)."""
