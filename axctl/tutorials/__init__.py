"""Runnable tutorials: Markdown pages (also on the docs site) that `axctl tutorial` runs
step by step in a scratch workspace. Stdlib-only, like the rest of the client."""
