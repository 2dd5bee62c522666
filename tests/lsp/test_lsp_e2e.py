"""`axctl lsp` end to end: a real LSP client over stdio pipes, a real daemon with the
built-in plugins, a workspace on disk. Positions are exact; UTF-16 columns are checked on
a line with characters outside the BMP."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import textwrap
from pathlib import Path

import pytest

from tests.conftest import wait_for
from tests.lsp.client import Client, LspError, lsp_env

pytestmark = pytest.mark.e2e

APP = (
    textwrap.dedent(
        '''\
    """A cart."""


    def compute_total(items):
        """Sum the prices of the items."""
        return sum(i.price for i in items)


    class Cart:
        def add(self, item):
            self.items.append(item)

        def total(self):
            return compute_total(self.items)  # TODO: cache the total


    def tangled(x):
    '''
    )
    + "".join(f"    if x == {i}:\n        return {i}\n" for i in range(12))
    + "    return -1\n"
)

MAIN = 'from app import compute_total\n\nprint(compute_total([]))\ns = "😀😀"; compute_total(s)\n'
# A definition after an astral character on its line: its column in UTF-16 units is not
# its column in characters.
WIDGETS = 'const face = "😀"; function renderWidget() { return face; }\n'


@pytest.fixture
def axd(home, daemon_factory):
    home.env["AXD_PLUGINS_ENABLED"] = "true"
    daemon = daemon_factory()
    daemon.start()
    return daemon


@pytest.fixture
def workspace(home, axd) -> Path:
    root = home.root / "ws"
    root.mkdir()
    (root / "app.py").write_text(APP)
    (root / "main.py").write_text(MAIN)
    (root / "widgets.js").write_text(WIDGETS)
    return root.resolve()


def uri(path: Path) -> str:
    return path.as_uri()


def at(path: Path, line: int, character: int) -> dict:
    return {"textDocument": {"uri": uri(path)}, "position": {"line": line, "character": character}}


def spots(locations: list[dict]) -> list[tuple[str, int, int]]:
    return sorted(
        (
            Path(loc["uri"][len("file://") :]).name,
            loc["range"]["start"]["line"],
            loc["range"]["start"]["character"],
        )
        for loc in locations
    )


async def started(home, root: Path, *args: str, encodings: list[str] | None = None) -> Client:
    client = await Client.start(lsp_env(home), *args)
    await client.initialize(root, encodings)
    await client.wait_for("$/progress", lambda p: p["value"]["kind"] == "end", timeout=60)
    return client


async def test_symbols_definitions_references_outline_and_hover(home, workspace):
    client = await Client.start(lsp_env(home))
    try:
        init = await client.initialize(workspace, ["utf-16"])
        assert init["capabilities"]["positionEncoding"] == "utf-16"
        assert init["serverInfo"]["name"] == "axd"
        begin = await client.wait_for("$/progress", lambda p: p["value"]["kind"] == "begin")
        assert begin["value"]["title"] == "axd: indexing" and client.server_requests
        await client.wait_for("$/progress", lambda p: p["value"]["kind"] == "end", timeout=60)
        workspaces = home.client().request("GET", "/v1/workspaces").json()["workspaces"]
        assert [w["root"] for w in workspaces] == [str(workspace)]

        symbols = await client.request("workspace/symbol", {"query": "compute_total"})
        first = symbols[0]
        assert first["name"] == "compute_total" and first["kind"] == 12  # Function
        assert spots([first["location"]]) == [("app.py", 3, 4)]
        method = await client.request("workspace/symbol", {"query": "total"})
        assert any(s["name"] == "total" and s.get("containerName") == "Cart" for s in method)
        widget = await client.request("workspace/symbol", {"query": "renderWidget"})
        units = len(WIDGETS[: WIDGETS.index("renderWidget")].encode("utf-16-le")) // 2
        assert spots([widget[0]["location"]]) == [("widgets.js", 0, units)]

        found = await client.request("textDocument/definition", at(workspace / "main.py", 2, 8))
        assert spots(found) == [("app.py", 3, 4)]
        refs = await client.request(
            "textDocument/references",
            {**at(workspace / "app.py", 3, 6), "context": {"includeDeclaration": True}},
        )
        # 😀 is two UTF-16 units: `s = "😀😀"; ` is 10 characters, 12 units.
        assert spots(refs) == [
            ("app.py", 3, 4),
            ("app.py", 13, 15),
            ("main.py", 0, 16),
            ("main.py", 2, 6),
            ("main.py", 3, 12),
        ]

        outline = await client.request(
            "textDocument/documentSymbol", {"textDocument": {"uri": uri(workspace / "app.py")}}
        )
        tree = {s["name"]: sorted(c["name"] for c in s["children"]) for s in outline}
        assert tree == {"compute_total": [], "Cart": ["add", "total"], "tangled": []}
        cart = next(s for s in outline if s["name"] == "Cart")
        assert cart["kind"] == 5 and cart["range"]["start"]["line"] == 8
        assert cart["selectionRange"]["start"] == {"line": 8, "character": 6}

        hover = await client.request("textDocument/hover", at(workspace / "main.py", 2, 10))
        assert "def compute_total(items)" in hover["contents"]["value"]
        assert "Sum the prices of the items." in hover["contents"]["value"]
        assert await client.request("textDocument/hover", at(workspace / "main.py", 1, 0)) is None
    finally:
        assert await client.close() == 0


async def test_what_the_user_typed_counts_before_it_is_saved(home, workspace):
    client = await started(home, workspace)
    try:
        main = workspace / "main.py"
        client.notify(
            "textDocument/didOpen",
            {
                "textDocument": {
                    "uri": uri(main),
                    "languageId": "python",
                    "version": 1,
                    "text": MAIN,
                }
            },
        )
        edited = "\n\nfrom app import compute_total as ct\n\n\nx = compute_total(1)  # new\n"
        client.notify(
            "textDocument/didChange",
            {
                "textDocument": {"uri": uri(main), "version": 2},
                "contentChanges": [{"text": edited}],
            },
        )
        # The cursor on the buffer's line 5, which does not exist on disk.
        found = await client.request("textDocument/definition", at(main, 5, 6))
        assert spots(found) == [("app.py", 3, 4)]
        refs = await client.request(
            "textDocument/references", {**at(main, 5, 6), "context": {"includeDeclaration": True}}
        )
        in_main = [s for s in spots(refs) if s[0] == "main.py"]
        assert in_main == [("main.py", 2, 16), ("main.py", 5, 4)]  # the buffer, not the disk
    finally:
        await client.close()


def todos_of(home, path: Path) -> list:
    out = home.axctl("plugin", "call", "todos", "list", json.dumps({"path": str(path)}), "--json")
    return json.loads(out.stdout)["result"] if out.returncode == 0 else []


async def test_diagnostics_from_plugins_on_open_and_on_save(home, workspace):
    app = workspace / "app.py"
    client = await started(home, workspace)  # registers the workspace
    wait_for(lambda: todos_of(home, app), timeout=60)  # the plugin has scanned it
    try:
        client.notify(
            "textDocument/didOpen",
            {"textDocument": {"uri": uri(app), "languageId": "python", "version": 1, "text": APP}},
        )
        published = await client.wait_for(
            "textDocument/publishDiagnostics", lambda p: p["uri"] == uri(app) and p["diagnostics"]
        )
        by_source = {d["source"]: d for d in published["diagnostics"]}
        todo = by_source["axd todos"]
        assert todo["severity"] == 4 and todo["range"]["start"]["line"] == 13
        assert "cache the total" in todo["message"]
        tangled = by_source["axd complexity"]
        assert tangled["severity"] == 2 and tangled["range"]["start"] == {
            "line": 16,
            "character": 4,
        }
        assert "complexity 13" in tangled["message"]

        app.write_text(APP.replace("  # TODO: cache the total", ""))
        wait_for(lambda: not todos_of(home, app), timeout=60)
        earlier = [n["params"] for n in client.notifications]
        client.notify("textDocument/didSave", {"textDocument": {"uri": uri(app)}})
        again = await client.wait_for(
            "textDocument/publishDiagnostics",
            lambda p: p["uri"] == uri(app) and p not in earlier,
        )
        assert [d["source"] for d in again["diagnostics"]] == ["axd complexity"]
    finally:
        await client.close()


async def test_a_slow_daemon_is_an_error_and_a_request_can_be_cancelled(home, workspace):
    client = await started(home, workspace, "--timeout", "1")
    daemon_pid = home.client().request("GET", "/v1/status").json()["pid"]
    os.kill(daemon_pid, signal.SIGSTOP)
    try:
        with pytest.raises(LspError) as slow:
            await client.request("workspace/symbol", {"query": "compute_total"}, timeout=10)
        assert slow.value.code == -32803 and "did not answer" in slow.value.message
        ident, pending = client.send_request("workspace/symbol", {"query": "Cart"})
        client.notify("$/cancelRequest", {"id": ident})
        with pytest.raises(LspError) as cancelled:
            await asyncio.wait_for(pending, 10)
        assert cancelled.value.code == -32800
    finally:
        os.kill(daemon_pid, signal.SIGCONT)
    symbols = await client.request("workspace/symbol", {"query": "compute_total"})
    assert symbols[0]["name"] == "compute_total"
    await client.close()


async def test_the_session_survives_the_daemon_being_killed(home, axd, workspace):
    client = await started(home, workspace)
    try:
        status = home.client().request("GET", "/v1/status").json()
        os.kill(status["pid"], signal.SIGKILL)
        axd.wait()  # reaped: every thread gone, the socket closed
        found = await client.request("textDocument/definition", at(workspace / "main.py", 2, 8))
        assert spots(found) == [("app.py", 3, 4)]
        restarted = home.client().request("GET", "/v1/status").json()
        assert restarted["pid"] != status["pid"]
        roots = [
            w["root"] for w in home.client().request("GET", "/v1/workspaces").json()["workspaces"]
        ]
        assert roots == [str(workspace)]
    finally:
        assert await client.close() == 0
    home.axctl("stop")


async def test_shutdown_and_exit_leave_no_process(home, workspace):
    client = await started(home, workspace)
    pid = client.proc.pid
    assert await client.close() == 0
    assert not _alive_or_zombie(pid)
    children = Path(f"/proc/{os.getpid()}/task/{os.getpid()}/children").read_text().split()
    assert str(pid) not in children
    # An exit without shutdown is an error status, as the protocol says.
    other = await started(home, workspace)
    other.notify("exit", None)
    assert await asyncio.wait_for(other.proc.wait(), 10) == 1
    # Unknown methods and requests before initialize are errors, not crashes.
    bare = await Client.start(lsp_env(home))
    with pytest.raises(LspError) as early:
        await bare.request("workspace/symbol", {"query": "x"})
    assert early.value.code == -32002
    await bare.initialize(workspace)
    with pytest.raises(LspError) as unknown:
        await bare.request("textDocument/codeLens", {})
    assert unknown.value.code == -32601
    assert await bare.close() == 0


def _alive_or_zombie(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


async def test_commands_reindex_and_reload_a_plugin(home, workspace):
    client = await started(home, workspace)
    try:
        done = await client.request(
            "workspace/executeCommand", {"command": "axd.reindex", "arguments": []}
        )
        assert done == {"reindexing": [str(workspace)]}
        # In a thread: the client's reader must go on answering the server meanwhile.
        await asyncio.to_thread(
            wait_for,
            lambda: home.client().request("GET", "/v1/plugins/todos").json()["state"] == "running",
            60,
        )
        # A blue/green reload starts a new process under the plugin's small CPU budget:
        # the server allows it 60 s, and so does this request.
        reloaded = await client.request(
            "workspace/executeCommand",
            {"command": "axd.reloadPlugin", "arguments": ["todos"]},
            timeout=90,
        )
        assert reloaded["plugin"] == "todos" and reloaded["reloaded"] is True
        with pytest.raises(LspError) as bad:
            await client.request("workspace/executeCommand", {"command": "rm -rf", "arguments": []})
        assert bad.value.code == -32602
    finally:
        await client.close()
