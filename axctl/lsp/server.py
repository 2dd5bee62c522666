"""What `axctl lsp` answers: LSP requests translated into the daemon's HTTP API.

The index lives in the daemon, warm; this process only holds the editor's open buffers
(full text, so the identifier under the cursor and the references in a file being edited
follow what the user typed, not what is on disk) and translates positions.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import sys
from typing import Any

from axctl.lsp import text
from axctl.lsp.daemon import Daemon
from axctl.lsp.rpc import INVALID_PARAMS, SERVER_NOT_INITIALIZED, Endpoint, RpcError
from axd import __version__

log = logging.getLogger("axctl.lsp")

# The LSP's SymbolKind numbers for the index's kinds.
SYMBOL_KINDS = {
    "module": 2,
    "class": 5,
    "method": 6,
    "enum": 10,
    "interface": 11,
    "function": 12,
    "constant": 14,
    "struct": 23,
    "type": 26,
    "impl": 5,
    "macro": 12,
}
HINT, WARNING = 4, 2
COMMANDS = ("axd.reindex", "axd.reloadPlugin")
SYMBOL_LIMIT = 100
DIAGNOSTIC_TIMEOUT = 5.0


class Document:
    def __init__(self, uri: str, path: str, source: str, version: int) -> None:
        self.uri, self.path, self.text, self.version = uri, path, source, version
        self.dirty = False  # changed since it was opened or saved
        self.lines = source.split("\n")

    def update(self, source: str, version: int) -> None:
        self.text, self.version, self.dirty = source, version, True
        self.lines = source.split("\n")


class Server:
    def __init__(self, endpoint: Endpoint, daemon: Daemon) -> None:
        self.rpc = endpoint
        self.daemon = daemon
        self.documents: dict[str, Document] = {}
        self.files = text.FileLines()
        self.encoding = "utf-16"
        self.progress_supported = False
        self.initialized = False
        self.shutdown_requested = False
        self._background: set[asyncio.Task[Any]] = set()
        self._adding: asyncio.Task[None] | None = None  # the folders being registered
        requests = {
            "initialize": self.initialize,
            "shutdown": self.shutdown,
            "workspace/symbol": self.workspace_symbol,
            "textDocument/definition": self.definition,
            "textDocument/references": self.references,
            "textDocument/documentSymbol": self.document_symbol,
            "textDocument/hover": self.hover,
            "workspace/executeCommand": self.execute_command,
        }
        endpoint.requests.update({k: self._guard(k, v) for k, v in requests.items()})
        endpoint.notifications.update(
            {
                "initialized": self.on_initialized,
                "exit": self.on_exit,
                "textDocument/didOpen": self.did_open,
                "textDocument/didChange": self.did_change,
                "textDocument/didSave": self.did_save,
                "textDocument/didClose": self.did_close,
                "workspace/didChangeWorkspaceFolders": self.folders_changed,
            }
        )

    def _guard(self, method: str, handler: Any) -> Any:
        async def guarded(params: Any) -> Any:
            if not self.initialized and method != "initialize":
                raise RpcError(SERVER_NOT_INITIALIZED, "initialize first")
            if self._adding is not None and method != "shutdown":
                await asyncio.shield(self._adding)
            return await handler(params or {})

        return guarded

    def spawn(self, coro: Any) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    # ---- lifecycle -------------------------------------------------------------------

    async def initialize(self, params: dict[str, Any]) -> dict[str, Any]:
        """Answered at once, without the daemon: the workspaces are registered after
        `initialized`, in the background."""
        caps = params.get("capabilities") or {}
        self.encoding = text.choose_encoding((caps.get("general") or {}).get("positionEncodings"))
        self.progress_supported = bool((caps.get("window") or {}).get("workDoneProgress"))
        folders = params.get("workspaceFolders") or []
        roots = [text.uri_to_path(f["uri"]) for f in folders if isinstance(f, dict)]
        if not roots and params.get("rootUri"):
            roots = [text.uri_to_path(params["rootUri"])]
        if not roots and params.get("rootPath"):
            roots = [params["rootPath"]]
        self.daemon.roots = [r for r in roots if r]
        self.initialized = True
        return {
            "capabilities": {
                "positionEncoding": self.encoding,
                "textDocumentSync": {
                    "openClose": True,
                    "change": 1,
                    "save": {"includeText": False},
                },
                "workspaceSymbolProvider": True,
                "definitionProvider": True,
                "referencesProvider": True,
                "documentSymbolProvider": True,
                "hoverProvider": True,
                "executeCommandProvider": {"commands": list(COMMANDS)},
                "workspace": {"workspaceFolders": {"supported": True, "changeNotifications": True}},
            },
            "serverInfo": {"name": "axd", "version": __version__},
        }

    async def on_initialized(self, _params: Any) -> None:
        self._adding = asyncio.get_running_loop().create_task(self._add(list(self.daemon.roots)))
        for root in self.daemon.roots:
            self.spawn(self._track(root))

    async def shutdown(self, _params: Any) -> None:
        self.shutdown_requested = True
        for task in list(self._background):
            task.cancel()

    async def on_exit(self, _params: Any) -> None:
        sys.exit(0 if self.shutdown_requested else 1)

    async def folders_changed(self, params: dict[str, Any]) -> None:
        event = params.get("event") or {}
        for folder in event.get("removed") or []:
            path = text.uri_to_path(folder.get("uri", ""))
            if path in self.daemon.roots:
                self.daemon.roots.remove(path)
        for folder in event.get("added") or []:
            path = text.uri_to_path(folder.get("uri", ""))
            if path and path not in self.daemon.roots:
                self.daemon.roots.append(path)
                await self._add([path])
                self.spawn(self._track(path))

    async def _add(self, roots: list[str]) -> None:
        """Register the folders as axd workspaces (indexing goes on in the background):
        requests wait for this, so none asks about a folder the daemon does not know."""
        for root in roots:
            try:
                await self.daemon.call("POST", "/v1/workspaces", {"path": root, "wait": False})
            except RpcError as exc:
                self.rpc.notify("window/logMessage", {"type": 2, "message": exc.message})

    async def _track(self, root: str) -> None:
        """The folder's indexing as work-done progress the editor shows."""
        if self._adding is not None:
            await asyncio.shield(self._adding)
        token = f"axd-index-{root}"
        shown = False
        if self.progress_supported:
            with contextlib.suppress(RpcError):
                await self.rpc.request("window/workDoneProgress/create", {"token": token})
                shown = True
        if shown:
            self._progress(token, "begin", title="axd: indexing", message=root, percentage=0)
        try:
            while True:
                status = await self.daemon.call("GET", f"/v1/index/status?path={_q(root)}")
                if status.get("state") not in ("new", "indexing"):
                    break
                running = [
                    (stage, info)
                    for stage, info in (status.get("stages") or {}).items()
                    if info.get("state") == "running" and info.get("total")
                ]
                if shown and running:
                    stage, info = running[-1]
                    done = int(100 * info["files"] / max(info["total"], 1))
                    self._progress(token, "report", message=f"{stage}: {root}", percentage=done)
                await asyncio.sleep(0.2)
        except RpcError as exc:
            self.rpc.notify("window/logMessage", {"type": 2, "message": exc.message})
        finally:
            if shown:
                self._progress(token, "end", message="indexed")

    def _progress(self, token: str, kind: str, **fields: Any) -> None:
        self.rpc.notify("$/progress", {"token": token, "value": {"kind": kind, **fields}})

    # ---- documents -------------------------------------------------------------------

    async def did_open(self, params: dict[str, Any]) -> None:
        item = params["textDocument"]
        path = text.uri_to_path(item["uri"])
        if path is None:
            return
        doc = Document(item["uri"], path, item.get("text", ""), item.get("version", 0))
        self.documents[item["uri"]] = doc
        self.spawn(self._diagnose(doc))

    async def did_change(self, params: dict[str, Any]) -> None:
        doc = self.documents.get(params["textDocument"]["uri"])
        changes = params.get("contentChanges") or []
        if doc is not None and changes:
            doc.update(changes[-1]["text"], params["textDocument"].get("version", doc.version))

    async def did_save(self, params: dict[str, Any]) -> None:
        doc = self.documents.get(params["textDocument"]["uri"])
        if doc is not None:
            doc.dirty = False
            if "text" in params:
                doc.update(params["text"], doc.version)
                doc.dirty = False
            self.spawn(self._diagnose(doc))

    async def did_close(self, params: dict[str, Any]) -> None:
        doc = self.documents.pop(params["textDocument"]["uri"], None)
        if doc is not None:
            self.rpc.notify("textDocument/publishDiagnostics", {"uri": doc.uri, "diagnostics": []})

    # ---- requests --------------------------------------------------------------------

    async def workspace_symbol(self, params: dict[str, Any]) -> list[dict[str, Any]]:
        """Definitions of the name first (exact, prefix, then fuzzy), then the ranked
        BM25F search; one entry per definition."""
        query = (params.get("query") or "").strip()
        if not query:
            return []
        found: list[tuple[str, dict[str, Any]]] = []
        for root in self.daemon.roots:
            body = {"name": query, "path": root, "limit": SYMBOL_LIMIT, "line": True}
            defs, search = await asyncio.gather(
                self.daemon.call("POST", "/v1/definitions", body),
                self.daemon.call(
                    "POST", "/v1/search", {"query": query, "path": root, "limit": SYMBOL_LIMIT}
                ),
            )
            found += [(root, d) for d in defs["results"]]
            found += [(root, r) for r in search["results"] if r["kind"] not in ("text", "module")]
        # The daemon read each row's first line from the file as it is now (a definition's
        # `line`, the start of a search hit's snippet): placing a name from it spares
        # reading the file here (about 0.13 ms a file on corpus B, a query names dozens).
        first_lines = {
            (os.path.join(root, row["path"]), row["start_line"]): line
            for root, row in found
            if (line := row.get("line") or (row.get("snippet") or "").split("\n", 1)[0])
        }
        seen: set[tuple[str, int]] = set()
        out = []
        for root, row in found:
            key = (os.path.join(root, row["path"]), row["start_line"])
            if key not in seen:
                seen.add(key)
                out.append(self._symbol_information(key[0], row, first_lines.get(key)))
                if len(out) == SYMBOL_LIMIT:  # place no more names than are answered
                    break
        return out

    def _symbol_information(
        self, path: str, row: dict[str, Any], line: str | None = None
    ) -> dict[str, Any]:
        container = row["qualname"].rpartition(".")[0]
        info = {
            "name": row["symbol"],
            "kind": SYMBOL_KINDS.get(row["kind"], 13),
            "location": self._location(path, row["start_line"], row["symbol"], line),
        }
        if container:
            info["containerName"] = container
        return info

    async def definition(self, params: dict[str, Any]) -> list[dict[str, Any]]:
        doc, name = self._word(params)
        if name is None:
            return []
        answer = await self.daemon.call(
            "POST",
            "/v1/definitions",
            {"name": name, "path": doc.path, "limit": 50, "exact": True, "line": True},
        )
        if answer["match"] not in ("exact", "exact_nocase"):
            return []
        root = answer["workspace"]
        rows = sorted(
            answer["results"], key=lambda r: os.path.join(root, r["path"]) != doc.path
        )  # this file's own definition first
        return [
            self._location(os.path.join(root, r["path"]), r["start_line"], name, r.get("line"))
            for r in rows
        ]

    async def references(self, params: dict[str, Any]) -> list[dict[str, Any]]:
        doc, name = self._word(params)
        if name is None:
            return []
        answer = await self.daemon.call(
            "POST", "/v1/references", {"name": name, "path": doc.path, "limit": 1000}
        )
        root = answer["workspace"]
        out = []
        for hit in answer["results"]:
            path = os.path.join(root, hit["path"])
            if self._open_dirty(path):
                continue  # an edited buffer is searched as it is now, below
            out.append(self._range_location(path, hit["line"] - 1, hit["column"] - 1, name))
        pattern = text.whole_word(name)
        for other in self.documents.values():
            if other.dirty and other.path.startswith(root.rstrip(os.sep) + os.sep):
                for number, line in enumerate(other.lines):
                    out += [
                        self._range_location(other.path, number, m.start(), name)
                        for m in pattern.finditer(line)
                    ]
        return out

    async def document_symbol(self, params: dict[str, Any]) -> list[dict[str, Any]]:
        """The file's definitions, nested by qualified name (`Class.method` in `Class`)."""
        path = text.uri_to_path(params["textDocument"]["uri"])
        if path is None:
            return []
        answer = await self.daemon.call("POST", "/v1/symbols", {"path": path})
        by_qualname: dict[str, dict[str, Any]] = {}
        top: list[dict[str, Any]] = []
        for row in answer["results"]:
            symbol = self._document_symbol(path, row)
            parent = by_qualname.get(row["qualname"].rpartition(".")[0])
            (parent["children"] if parent else top).append(symbol)
            by_qualname.setdefault(row["qualname"], symbol)
        return top

    def _document_symbol(self, path: str, row: dict[str, Any]) -> dict[str, Any]:
        lines = self._lines(path)
        start, end = row["start_line"] - 1, max(row["end_line"], row["start_line"]) - 1
        last = lines[end] if end < len(lines) else ""
        whole = {
            "start": {"line": start, "character": 0},
            "end": {"line": end, "character": text.to_units(last, len(last), self.encoding)},
        }
        name = self._location(path, row["start_line"], row["symbol"])["range"]
        symbol = {
            "name": row["symbol"],
            "kind": SYMBOL_KINDS.get(row["kind"], 13),
            "range": whole,
            "selectionRange": name,
            "children": [],
        }
        if row.get("signature"):
            symbol["detail"] = row["signature"]
        return symbol

    async def hover(self, params: dict[str, Any]) -> dict[str, Any] | None:
        doc, name = self._word(params)
        if name is None:
            return None
        answer = await self.daemon.call(
            "POST", "/v1/definitions", {"name": name, "path": doc.path, "limit": 5, "exact": True}
        )
        if answer["match"] not in ("exact", "exact_nocase") or not answer["results"]:
            return None
        row = answer["results"][0]
        parts = [f"```{row['lang']}\n{row.get('signature') or row['qualname']}\n```"]
        if row.get("doc"):
            parts.append(row["doc"])
        parts.append(f"`{row['path']}:{row['start_line']}`")
        return {"contents": {"kind": "markdown", "value": "\n\n".join(parts)}}

    async def execute_command(self, params: dict[str, Any]) -> Any:
        command, args = params.get("command"), params.get("arguments") or []
        if command == "axd.reindex":
            roots = [str(a) for a in args] or self.daemon.roots
            for root in roots:
                await self.daemon.call("POST", "/v1/workspaces", {"path": root, "wait": False})
            return {"reindexing": roots}
        if command == "axd.reloadPlugin":
            if not args or not isinstance(args[0], str):
                raise RpcError(INVALID_PARAMS, "axd.reloadPlugin needs the plugin's name")
            return await self.daemon.call(
                "POST", f"/v1/plugins/{_q(args[0])}/reload", {"force": True}, timeout=60
            )
        raise RpcError(INVALID_PARAMS, f"unknown command {command!r}; known: {', '.join(COMMANDS)}")

    # ---- diagnostics -----------------------------------------------------------------

    async def _diagnose(self, doc: Document) -> None:
        """TODO-style comments as hints, functions over the complexity threshold as
        warnings. A plugin that is off, slow or answers rubbish only loses its part."""
        diagnostics: list[dict[str, Any]] = []
        for part in (self._todos, self._complexity):
            try:
                diagnostics += await asyncio.wait_for(part(doc), DIAGNOSTIC_TIMEOUT)
            except (RpcError, TimeoutError, KeyError, TypeError, ValueError) as exc:
                log.info("no %s diagnostics for %s: %s", part.__name__, doc.path, exc)
        with contextlib.suppress(OSError, ValueError):
            self.rpc.notify(
                "textDocument/publishDiagnostics",
                {"uri": doc.uri, "version": doc.version, "diagnostics": diagnostics},
            )

    async def _plugin(self, name: str, method: str, params: dict[str, Any]) -> Any:
        body = {"method": method, "params": params, "timeout": DIAGNOSTIC_TIMEOUT}
        answer = await self.daemon.call(
            "POST", f"/v1/plugins/{name}/call", body, timeout=DIAGNOSTIC_TIMEOUT + 1
        )
        return answer["result"]

    async def _todos(self, doc: Document) -> list[dict[str, Any]]:
        hits = await self._plugin("todos", "list", {"path": doc.path})
        return [
            {
                "range": self._range(doc.path, h["line"] - 1, h["column"] - 1, len(h["tag"])),
                "severity": HINT,
                "source": "axd todos",
                "message": f"{h['tag']}: {h['text']}".strip(),
            }
            for h in hits
            if isinstance(h, dict) and h.get("path") == doc.path
        ]

    async def _complexity(self, doc: Document) -> list[dict[str, Any]]:
        if not doc.path.endswith((".py", ".pyi")):
            return []
        summary = await self._plugin("complexity", "summary", {"path": doc.path})
        threshold = int(summary["threshold"])
        functions = await self._plugin("complexity", "file", {"path": doc.path})
        out = []
        for f in functions:
            if int(f["complexity"]) > threshold:
                short = f["name"].rpartition(".")[2]
                out.append(
                    {
                        "range": self._location(doc.path, f["line"], short)["range"],
                        "severity": WARNING,
                        "source": "axd complexity",
                        "message": f"{f['name']} has cyclomatic complexity {f['complexity']} "
                        f"(threshold {threshold})",
                    }
                )
        return out

    # ---- positions -------------------------------------------------------------------

    def _word(self, params: dict[str, Any]) -> tuple[Document, str | None]:
        uri = params["textDocument"]["uri"]
        doc = self.documents.get(uri)
        if doc is None:
            path = text.uri_to_path(uri)
            if path is None:
                raise RpcError(INVALID_PARAMS, f"not a file: {uri}")
            doc = Document(uri, path, "\n".join(self._lines(path)), 0)
        position = params["position"]
        line = doc.lines[position["line"]] if position["line"] < len(doc.lines) else ""
        found = text.word_at(line, text.to_chars(line, position["character"], self.encoding))
        return doc, found[0] if found else None

    def _open_dirty(self, path: str) -> bool:
        return any(d.path == path and d.dirty for d in self.documents.values())

    def _lines(self, path: str) -> list[str]:
        """The file's lines: the editor's buffer when it is open, else the disk's, read
        once per version of the file (a location needs its line to place the name)."""
        for doc in self.documents.values():
            if doc.path == path:
                return doc.lines
        return self.files.lines(path)

    def _location(
        self, path: str, line_number: int, name: str, line_text: str | None = None
    ) -> dict[str, Any]:
        """Where `name` is on line `line_number` (1-based) of `path`: the name itself, or
        the line's start when it is not there (the file changed since it was indexed).
        `line_text`, the line as the daemon read it, serves unless the file is open here
        (the editor's buffer wins)."""
        if line_text is not None and not self._is_open(path):
            # The line as the file is now: the same answer as reading it here. A name not
            # on it (a decorated definition starts at its decorator) is placed at its start.
            column = max(text.find_word(line_text, name), 0)
            return {
                "uri": text.path_to_uri(path),
                "range": self._line_range(line_text, line_number - 1, column, len(name)),
            }
        lines = self._lines(path)
        index = line_number - 1
        line = lines[index] if 0 <= index < len(lines) else ""
        return self._range_location(path, max(index, 0), max(text.find_word(line, name), 0), name)

    def _range_location(self, path: str, line: int, column: int, name: str) -> dict[str, Any]:
        return {"uri": text.path_to_uri(path), "range": self._range(path, line, column, len(name))}

    def _range(self, path: str, line: int, column: int, length: int) -> dict[str, Any]:
        lines = self._lines(path)
        return self._line_range(lines[line] if 0 <= line < len(lines) else "", line, column, length)

    def _is_open(self, path: str) -> bool:
        return any(doc.path == path for doc in self.documents.values())

    def _line_range(self, source: str, line: int, column: int, length: int) -> dict[str, Any]:
        return {
            "start": {"line": line, "character": text.to_units(source, column, self.encoding)},
            "end": {
                "line": line,
                "character": text.to_units(source, column + length, self.encoding),
            },
        }


def _q(value: str) -> str:
    from urllib.parse import quote

    return quote(value, safe="")


async def serve(daemon: Daemon) -> int:
    """Serve the editor on stdin and stdout until it closes them or says `exit`."""
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader(limit=1 << 20)
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin.buffer)
    endpoint = Endpoint(reader, sys.stdout.buffer)
    server = Server(endpoint, daemon)
    await endpoint.serve()
    return 0 if server.shutdown_requested else 1
