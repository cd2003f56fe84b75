"""Benchmarks and load harnesses for timingle-chat (run with `python -m bench ...`)."""
