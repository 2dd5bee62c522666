"""What the documentation site's hooks generate, as plain functions.

The mkdocs hooks (`tools/docs/hook_*.py`) stay thin: they find the page or the files to
work on and call these. Nothing here imports mkdocs, so the tests can use the functions
with only click and the standard library installed.
"""
