"""Code intelligence: a warm, incremental, tunable code-search index.

walker -> extract (tree-sitter chunks, tokens; in worker processes) -> store (SQLite) ->
postings (in-memory BM25F) -> search; watcher keeps it fresh; cache remembers answers.
"""
