"""The CPU benchmark: `python -m siglip2_ref.bench` (benchmark.py)."""
