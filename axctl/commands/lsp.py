"""`axctl lsp`: the Language Server editors start (docs/editors.md)."""

from __future__ import annotations

import click

from axctl.commands.common import pass_session
from axctl.session import Session


@click.command("lsp")
@click.option(
    "--timeout",
    type=click.FloatRange(0.1, 600),
    default=10.0,
    show_default=True,
    help="Seconds a request may wait for axd before the editor gets an error.",
)
@click.option("--log-file", type=click.Path(dir_okay=False), help="Log here (default: stderr).")
@click.option("--stdio", is_flag=True, hidden=True, help="Accepted for editors that pass it.")
@pass_session
def lsp(session: Session, timeout: float, log_file: str | None, stdio: bool) -> None:
    """Serve the Language Server Protocol on stdin and stdout, for an editor: workspace
    symbols, go to definition, references, document outline and hover from axd's warm
    index, and TODO and complexity diagnostics from its plugins. The editor's workspace
    folders become axd workspaces (indexed in the background, with progress). The daemon
    is started if it is not running, and again if it stops mid-session.

    \b
    Neovim:  vim.lsp.start({ name = "axd", cmd = { "axctl", "lsp" }, root_dir = ... })
    Helix:   [language-server.axd] command = "axctl", args = ["lsp"]
    See docs/editors.md for VS Code, Emacs and the raw API.
    """
    import asyncio
    import logging

    from axctl.lsp.daemon import Daemon
    from axctl.lsp.server import serve

    handler = logging.FileHandler(log_file) if log_file else logging.StreamHandler()
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logger = logging.getLogger("axctl.lsp")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    raise SystemExit(asyncio.run(serve(Daemon(session, timeout))))
