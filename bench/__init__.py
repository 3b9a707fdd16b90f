"""Benchmarks of the bridge against plain Radicale and Xandikos: ``python -m bench.run``."""
