"""Client-side performance tools: the benchmark harness and the BM25 sweep.

Imported only by `axctl perf ...` (never on the CLI's start-up path). Stdlib only.
"""
