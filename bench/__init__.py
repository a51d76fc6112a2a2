"""Benchmarks: each a command (``python -m bench.<name>``) that prints and records its figures."""
