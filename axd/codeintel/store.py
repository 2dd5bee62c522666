"""The index on disk: one SQLite database (WAL) in the state dir.

The database is the truth; the in-memory postings are rebuilt from it at start-up. Each
batch of files is one transaction, so a daemon killed mid-index leaves the previous batch
fully visible and the interrupted one not at all. Chunk ids come from AUTOINCREMENT and are
never reused, which lets the in-memory index treat them as stable document numbers.
"""

from __future__ import annotations

import sqlite3
import struct
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import sqlite_utils

from axd.codeintel.extract import FileData

SCHEMA_VERSION = "1"
# How the terms in `chunks.terms` are hashed (tokens.term_hash). Chunks hashed another way
# cannot be searched with this axd's queries: they are dropped at open and re-indexed.
TERMS_FORMAT = "words8-1"
SEARCHABLE = "('ok', 'parse_error', 'pending')"  # file statuses whose chunks are indexed
# A definition's chunk, word for word as the partial name indexes say it (SQLite uses a
# partial index only for a query that repeats its WHERE term).
DEFINITION = "kind NOT IN ('module', 'text')"
DEFINITION_COLUMNS = (
    "path",
    "start_line",
    "end_line",
    "symbol",
    "qualname",
    "kind",
    "lang",
    "signature",
    "doc",
)

# Where a definition's text is, as the index saw the file: (span_start, span_end, size,
# mtime_ns), under this key of each `definitions` row (the service drops it or turns it
# into the definition's first line).
SPAN = "_span"
SPAN_COLUMNS = "c.span_start, c.span_end, f.size, f.mtime_ns"


@dataclass
class Applied:
    """What one committed batch changed, for the in-memory index and the cache."""

    workspace_id: int
    removed_chunks: list[int] = field(default_factory=list)
    removed_terms: list[bytes] = field(default_factory=list)
    added: list[tuple[int, int, str, str, bytes, bytes]] = field(default_factory=list)
    # (chunk id, file id, lang, kind, lengths blob, terms blob)
    changed_paths: list[str] = field(default_factory=list)


# Bandit's B608 (SQL built from strings) is silenced on each query below: they interpolate
# only constant column lists, the fixed conditions of `search.definitions` and `?`
# placeholders; every value is a parameter.
class Store:
    def __init__(self, path: str) -> None:
        self.path = path
        self._local = threading.local()
        db = sqlite_utils.Database(self._connect())
        self._create(db)
        self.reset_reason = self._check_terms_format()

    def _check_terms_format(self) -> str | None:
        """Drop chunks whose terms another axd hashed differently (their files are indexed
        again by the next walk); say why, or None when there was nothing to drop."""
        conn = self.conn
        row = conn.execute("SELECT value FROM meta WHERE key = 'terms'").fetchone()
        found = row[0] if row else None
        if found == TERMS_FORMAT:
            return None
        with _transaction(conn):
            (chunks,) = conn.execute("SELECT count(*) FROM chunks").fetchone()
            if chunks:
                conn.execute("DELETE FROM chunks")
                conn.execute("DELETE FROM files")
                _bump_generation(conn)
            conn.execute(
                "INSERT INTO meta (key, value) VALUES ('terms', ?) ON CONFLICT(key) DO UPDATE"
                " SET value = excluded.value",
                (TERMS_FORMAT,),
            )
        if not chunks:
            return None
        return (
            f"the index was written with terms hashed as {found or 'blake2b'}, this axd hashes"
            f" them as {TERMS_FORMAT}: its {chunks} chunks are indexed again"
        )

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self.path, timeout=30, check_same_thread=False, isolation_level=None)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
        conn.execute("PRAGMA foreign_keys=OFF")
        return conn

    @property
    def conn(self) -> sqlite3.Connection:
        """One connection per thread (the writer thread and each search thread)."""
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._local.conn = self._connect()
        return conn

    def _create(self, db: sqlite_utils.Database) -> None:
        if "meta" not in db.table_names():
            db["meta"].create({"key": str, "value": str}, pk="key")
            db["meta"].insert({"key": "schema", "value": SCHEMA_VERSION})
        if "workspaces" not in db.table_names():
            db["workspaces"].create(
                {"id": int, "root": str, "added_at": float, "indexed_at": float, "state": str},
                pk="id",
            )
            db["workspaces"].create_index(["root"], unique=True)
        if "files" not in db.table_names():
            db["files"].create(
                {
                    "id": int,
                    "workspace_id": int,
                    "path": str,
                    "size": int,
                    "mtime_ns": int,
                    "digest": str,
                    "lang": str,
                    "status": str,
                    "error": str,
                    "chunks": int,
                    "indexed_at": float,
                },
                pk="id",
            )
            db["files"].create_index(["workspace_id", "path"], unique=True)
        if "chunks" not in db.table_names():
            db.execute("""
                CREATE TABLE chunks (
                    id INTEGER PRIMARY KEY AUTOINCREMENT,
                    file_id INTEGER NOT NULL, workspace_id INTEGER NOT NULL,
                    symbol TEXT NOT NULL, qualname TEXT NOT NULL, kind TEXT NOT NULL,
                    lang TEXT NOT NULL, start_line INTEGER, end_line INTEGER,
                    signature TEXT, doc TEXT, parent_id INTEGER,
                    lengths BLOB, terms BLOB)""")
            db.execute("CREATE INDEX chunks_file ON chunks(file_id)")
        # Names are looked up for definitions only, so their indexes leave text and module
        # chunks out (partial), and one NOCASE index per column serves exact lookups too
        # (`symbol = ? COLLATE NOCASE AND symbol = ?`), prefixes (LIKE) and fuzzy lists:
        # two indexes instead of four full ones halved the cost of inserting chunks.
        for column in ("symbol", "qualname"):
            db.execute(f"DROP INDEX IF EXISTS chunks_{column}")
            db.execute(f"DROP INDEX IF EXISTS chunks_{column}_exact")
            db.execute(
                f"CREATE INDEX IF NOT EXISTS defs_{column} ON chunks({column} COLLATE NOCASE)"
                f" WHERE {DEFINITION}"
            )
        # Added in schema 2: the byte range snippets are drawn from. Older rows keep NULL
        # and are rendered from the whole file, as before.
        columns = {row[1] for row in db.execute("PRAGMA table_info(chunks)")}
        for column in ("span_start", "span_end"):
            if column not in columns:
                db.execute(f"ALTER TABLE chunks ADD COLUMN {column} INTEGER")

    # ---- workspaces -------------------------------------------------------------------

    def generation(self) -> int:
        """How many changes of chunks the database has seen (0 for a new one)."""
        row = self.conn.execute("SELECT value FROM meta WHERE key = 'generation'").fetchone()
        return int(row[0]) if row else 0

    def stamp(self) -> dict[str, int]:
        """What a checkpoint must match to be served: the generation, and what any writer
        changes, even one that does not keep the generation (an older axd on the same
        state dir): the last chunk id handed out and how many chunks there are."""
        conn = self.conn
        last = conn.execute("SELECT seq FROM sqlite_sequence WHERE name = 'chunks'").fetchone()
        (count,) = conn.execute("SELECT count(*) FROM chunks").fetchone()
        return {
            "generation": self.generation(),
            "last_chunk": int(last[0]) if last else 0,
            "chunks": int(count),
        }

    def workspaces(self) -> list[dict[str, Any]]:
        cur = self.conn.execute(
            "SELECT id, root, added_at, indexed_at, state FROM workspaces ORDER BY root"
        )
        return [
            dict(zip(("id", "root", "added_at", "indexed_at", "state"), row, strict=True))
            for row in cur
        ]

    def add_workspace(self, root: str) -> int:
        conn = self.conn
        row = conn.execute("SELECT id FROM workspaces WHERE root = ?", (root,)).fetchone()
        if row:
            return int(row[0])
        cur = conn.execute(
            "INSERT INTO workspaces (root, added_at, indexed_at, state) VALUES (?, ?, NULL, ?)",
            (root, time.time(), "new"),
        )
        return int(cur.lastrowid or 0)

    def set_workspace_state(self, workspace_id: int, state: str, indexed: bool = False) -> None:
        if indexed:
            self.conn.execute(
                "UPDATE workspaces SET state = ?, indexed_at = ? WHERE id = ?",
                (state, time.time(), workspace_id),
            )
        else:
            self.conn.execute("UPDATE workspaces SET state = ? WHERE id = ?", (state, workspace_id))

    def remove_workspace(self, workspace_id: int) -> list[int]:
        conn = self.conn
        with _transaction(conn):
            ids = [
                r[0]
                for r in conn.execute(
                    "SELECT id FROM chunks WHERE workspace_id = ?", (workspace_id,)
                )
            ]
            conn.execute("DELETE FROM chunks WHERE workspace_id = ?", (workspace_id,))
            conn.execute("DELETE FROM files WHERE workspace_id = ?", (workspace_id,))
            _bump_generation(conn)
            conn.execute("DELETE FROM workspaces WHERE id = ?", (workspace_id,))
        return ids

    # ---- files ----------------------------------------------------------------------

    def file_states(self, workspace_id: int) -> dict[str, tuple[int, int, str, bool]]:
        """path -> (size, mtime_ns, digest, definitions pending) of every file indexed."""
        cur = self.conn.execute(
            "SELECT path, size, mtime_ns, digest, status = 'pending' FROM files"
            " WHERE workspace_id = ?",
            (workspace_id,),
        )
        return {p: (s, m, d, bool(pending)) for p, s, m, d, pending in cur}

    def touch_files(self, workspace_id: int, stats: list[tuple[str, int, int]]) -> None:
        """Record a new size/mtime for files whose content hash did not change."""
        with _transaction(self.conn):
            self.conn.executemany(
                "UPDATE files SET size = ?, mtime_ns = ? WHERE workspace_id = ? AND path = ?",
                [(s, m, workspace_id, p) for p, s, m in stats],
            )

    def apply(self, workspace_id: int, results: list[FileData], deleted: list[str]) -> Applied:
        """Replace the chunks of `results` and drop `deleted`, in one transaction."""
        applied = Applied(workspace_id)
        conn = self.conn
        # The writer's connection only: the name and file indexes of a large workspace do
        # not fit SQLite's default 2 MB page cache, and a batch of inserts then rereads the
        # index pages it just wrote. (Readers keep the default: each has its own cache.)
        conn.execute("PRAGMA cache_size=-32768")
        now = time.time()
        with _transaction(conn):
            _bump_generation(conn)
            next_id = _next_chunk_id(conn)
            for path in deleted:
                self._drop_file(conn, workspace_id, path, applied, delete_row=True)
            for data in results:
                if data.status == "missing":
                    self._drop_file(conn, workspace_id, data.path, applied, delete_row=True)
                    continue
                file_id = self._drop_file(conn, workspace_id, data.path, applied, delete_row=False)
                row = (
                    workspace_id,
                    data.path,
                    data.size,
                    data.mtime_ns,
                    data.digest,
                    data.lang,
                    data.status,
                    data.error,
                    len(data.chunks),
                    now,
                )
                if file_id is None:
                    cur = conn.execute(
                        "INSERT INTO files (workspace_id, path, size, mtime_ns, digest, lang,"
                        " status, error, chunks, indexed_at) VALUES (?,?,?,?,?,?,?,?,?,?)",
                        row,
                    )
                    file_id = int(cur.lastrowid or 0)
                else:
                    conn.execute(
                        "UPDATE files SET workspace_id=?, path=?, size=?, mtime_ns=?, digest=?,"
                        " lang=?, status=?, error=?, chunks=?, indexed_at=? WHERE id=?",
                        (*row, file_id),
                    )
                applied.changed_paths.append(data.path)
                first = next_id
                rows = []
                # Text chunks of code waiting for its definitions live until the next
                # stage: their postings are kept in memory and in checkpoints, not here (a
                # rebuild from the database finds them unsearchable until they are parsed,
                # which the next walk does).
                provisional = data.status == "pending"
                for c in data.chunks:
                    lengths = _pack_lengths(c.lengths)
                    parent = first + c.parent if c.parent is not None else None
                    rows.append(
                        (
                            next_id,
                            file_id,
                            workspace_id,
                            c.symbol,
                            c.qualname,
                            c.kind,
                            data.lang,
                            c.start_line,
                            c.end_line,
                            c.signature,
                            c.doc,
                            parent,
                            lengths,
                            None if provisional else c.terms,
                            *c.span,
                        )
                    )
                    applied.added.append((next_id, file_id, data.lang, c.kind, lengths, c.terms))
                    next_id += 1
                conn.executemany(
                    "INSERT INTO chunks (id, file_id, workspace_id, symbol, qualname, kind,"
                    " lang, start_line, end_line, signature, doc, parent_id, lengths, terms,"
                    " span_start, span_end) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                    rows,
                )
        return applied

    def _drop_file(
        self,
        conn: sqlite3.Connection,
        workspace_id: int,
        path: str,
        applied: Applied,
        delete_row: bool,
    ) -> int | None:
        row = conn.execute(
            "SELECT id FROM files WHERE workspace_id = ? AND path = ?", (workspace_id, path)
        ).fetchone()
        if row is None:
            return None
        file_id = int(row[0])
        for chunk_id, terms in conn.execute(
            "SELECT id, COALESCE(terms, x'') FROM chunks WHERE file_id = ?", (file_id,)
        ):
            applied.removed_chunks.append(chunk_id)
            applied.removed_terms.append(terms)
        conn.execute("DELETE FROM chunks WHERE file_id = ?", (file_id,))
        if delete_row:
            conn.execute("DELETE FROM files WHERE id = ?", (file_id,))
            applied.changed_paths.append(path)
        return file_id

    # ---- reading --------------------------------------------------------------------

    def iter_chunks(self) -> Iterator[tuple[int, int, int, str, str, bytes, bytes]]:
        """(id, workspace, file, lang, kind, lengths, terms) of every chunk, by id."""
        yield from self.conn.execute(
            "SELECT id, workspace_id, file_id, lang, kind, lengths, COALESCE(terms, x'')"
            " FROM chunks ORDER BY id"
        )

    def chunk_rows(self, ids: list[int]) -> dict[int, dict[str, Any]]:
        if not ids:
            return {}
        marks = ",".join("?" * len(ids))
        cur = self.conn.execute(
            "SELECT c.id, f.path, c.start_line, c.end_line, c.symbol, c.qualname, c.kind,"  # nosec B608
            " c.lang, c.signature, c.doc, c.workspace_id, c.span_start, c.span_end, f.size,"
            " f.mtime_ns FROM chunks c"
            f" JOIN files f ON f.id = c.file_id WHERE c.id IN ({marks})",
            ids,
        )
        names = (
            "id",
            *DEFINITION_COLUMNS,
            "workspace_id",
            "span_start",
            "span_end",
            "file_size",
            "file_mtime_ns",
        )
        return {row[0]: dict(zip(names, row, strict=True)) for row in cur}

    def file_paths(self, workspace_id: int) -> dict[int, str]:
        return dict(
            self.conn.execute("SELECT id, path FROM files WHERE workspace_id = ?", (workspace_id,))
        )

    def stats(self, workspace_id: int) -> dict[str, Any]:
        conn = self.conn
        by_status = dict(
            conn.execute(
                "SELECT status, COUNT(*) FROM files WHERE workspace_id = ? GROUP BY status",
                (workspace_id,),
            )
        )
        langs = dict(
            conn.execute(
                "SELECT lang, COUNT(*) FROM files WHERE workspace_id = ? AND status IN"  # nosec B608
                f" {SEARCHABLE} GROUP BY lang ORDER BY 2 DESC",
                (workspace_id,),
            )
        )
        size, last = conn.execute(
            "SELECT COALESCE(SUM(size), 0), MAX(indexed_at) FROM files WHERE workspace_id = ?"  # nosec B608
            f" AND status IN {SEARCHABLE}",
            (workspace_id,),
        ).fetchone()
        chunks = conn.execute(
            "SELECT COUNT(*) FROM chunks WHERE workspace_id = ?", (workspace_id,)
        ).fetchone()[0]
        symbols = conn.execute(
            "SELECT COUNT(*) FROM chunks WHERE workspace_id = ? AND kind NOT IN ('module', 'text')",
            (workspace_id,),
        ).fetchone()[0]
        return {
            "files": sum(by_status.get(s, 0) for s in ("ok", "parse_error", "pending")),
            "files_by_status": by_status,
            "languages": langs,
            "bytes": size,
            "chunks": chunks,
            "symbols": symbols,
            "last_update": last,
        }

    def definitions(
        self, workspace_id: int, matches: list[tuple[str, tuple[Any, ...]]], limit: int
    ) -> list[dict[str, Any]]:
        """Definitions of a workspace meeting any of `matches` (SQL conditions on the chunk's
        columns, with their parameters), by path and line. Each condition is its own indexed
        lookup: an OR of two columns would scan the index."""
        sql, params = self.definitions_query(workspace_id, matches, limit)
        n = len(DEFINITION_COLUMNS)
        return [
            {**dict(zip(DEFINITION_COLUMNS, row[:n], strict=True)), SPAN: row[n:]}
            for row in self.conn.execute(sql, params)
        ]

    @staticmethod
    def definitions_query(
        workspace_id: int, matches: list[tuple[str, tuple[Any, ...]]], limit: int
    ) -> tuple[str, tuple[Any, ...]]:
        selects = [f"SELECT id FROM chunks WHERE {DEFINITION} AND {w}" for w, _ in matches]  # nosec B608
        union = " UNION ".join(selects)
        columns = ", ".join(
            ("f." if name == "path" else "c.") + name for name in DEFINITION_COLUMNS
        )
        sql = (
            f"SELECT {columns}, {SPAN_COLUMNS} FROM chunks c JOIN files f ON f.id = c.file_id"  # nosec B608
            f" WHERE c.workspace_id = ? AND c.id IN ({union})"
            " ORDER BY f.path, c.start_line LIMIT ?"
        )
        return sql, (workspace_id, *(p for _, ps in matches for p in ps), limit)

    def file_definitions(self, workspace_id: int, path: str, limit: int) -> list[dict[str, Any]]:
        """The definitions of one file (a path relative to its workspace), by line."""
        columns = ", ".join(("f." if n == "path" else "c.") + n for n in DEFINITION_COLUMNS)
        rows = self.conn.execute(
            f"SELECT {columns} FROM chunks c JOIN files f ON f.id = c.file_id"  # nosec B608
            f" WHERE f.workspace_id = ? AND f.path = ? AND c.{DEFINITION}"
            " ORDER BY c.start_line, c.end_line DESC LIMIT ?",
            (workspace_id, path, limit),
        )
        return [dict(zip(DEFINITION_COLUMNS, row, strict=True)) for row in rows]

    def symbol_names(self, workspace_id: int) -> list[str]:
        return [
            r[0]
            for r in self.conn.execute(
                f"SELECT DISTINCT symbol FROM chunks WHERE workspace_id = ? AND {DEFINITION}",  # nosec B608
                (workspace_id,),
            )
        ]

    def close(self) -> None:
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None


class _transaction:
    """BEGIN IMMEDIATE ... COMMIT, or ROLLBACK on any error."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn

    def __enter__(self) -> sqlite3.Connection:
        self.conn.execute("BEGIN IMMEDIATE")
        return self.conn

    def __exit__(self, exc_type: Any, *_: Any) -> None:
        self.conn.execute("ROLLBACK" if exc_type else "COMMIT")


def _bump_generation(conn: sqlite3.Connection) -> None:
    """Every change of chunks counts: a checkpoint of the postings says which it reflects."""
    conn.execute(
        "INSERT INTO meta (key, value) VALUES ('generation', '1') ON CONFLICT(key) DO UPDATE"
        " SET value = CAST(value AS INTEGER) + 1"
    )


def _next_chunk_id(conn: sqlite3.Connection) -> int:
    row = conn.execute("SELECT seq FROM sqlite_sequence WHERE name = 'chunks'").fetchone()
    return (int(row[0]) if row else 0) + 1


def _pack_lengths(lengths: tuple[int, ...]) -> bytes:
    return struct.pack(f"<{len(lengths)}I", *lengths)
