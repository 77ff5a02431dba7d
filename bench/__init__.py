"""Benchmarks; run each from the repository root as ``.venv/bin/python -m bench.<name>``."""
