"""Benchmarks: speed and quality against Blender, side by side in one run (never in tests)."""
