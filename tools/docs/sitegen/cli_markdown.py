"""The CLI reference: `<!-- axctl: plugin reload -->` markers expanded from the click tree.

The pages of `docs/reference/cli/` are prose with one marker per command, each on a line of
its own (`<!-- axctl -->` is the top-level command and its global options), every command
on one of the pages. A marker becomes the
command's heading, usage line, help text and a table of its arguments and options, read
from the same click objects `axctl --help` prints. Imports only click and the standard
library, so the test that every command has a marker runs without mkdocs.
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Callable, Iterator

import click

from .markdown_text import code, fenced, inline

Path = tuple[str, ...]
MARKER = re.compile(r"^\s*<!--\s*axctl(?::\s*(?P<path>[^>]*?))?\s*-->\s*$")


def markers(markdown: str) -> list[Path]:
    """The command paths named by markers, in order (`()` is the top-level command)."""
    found: list[Path] = []
    for line, in_fence in fenced(markdown):
        match = None if in_fence else MARKER.match(line)
        if match:
            found.append(tuple((match["path"] or "").split()))
    return found


def commands(root: click.Command) -> Iterator[tuple[Path, click.Command]]:
    """Every visible command under `root`, groups included, depth first, root first."""

    def walk(
        path: Path, command: click.Command, ctx: click.Context
    ) -> Iterator[tuple[Path, click.Command]]:
        yield path, command
        if isinstance(command, click.Group):
            for name in command.list_commands(ctx):
                sub = command.get_command(ctx, name)
                if sub is None or sub.hidden:
                    continue
                yield from walk((*path, name), sub, _context(sub, name, ctx))

    yield from walk((), root, _context(root, "axctl", None))


def missing(markdown: str, root: click.Command) -> list[str]:
    """`axctl ...` command lines that have no marker in `markdown`."""
    named = set(markers(markdown))
    return [display(path) for path, _ in commands(root) if path not in named]


Link = Callable[[Path], str]


def same_page(path: Path) -> str:
    return f"#{anchor(path)}"


def expand(markdown: str, root: click.Command, link: Link = same_page) -> tuple[str, list[str]]:
    """`markdown` with every marker expanded, and the command lines of unknown markers.
    `link` gives the URL of a command's entry (for a group's table of subcommands)."""
    known = dict(commands(root))
    unknown: list[str] = []
    out: list[str] = []
    for line, in_fence in fenced(markdown):
        match = None if in_fence else MARKER.match(line)
        if not match:
            out.append(line)
            continue
        path = tuple((match["path"] or "").split())
        if path not in known:
            unknown.append(display(path))
            out.append(line)
            continue
        out.append(render(root, path, link) + "\n")
    return "".join(out), unknown


def display(path: Path) -> str:
    return " ".join(("axctl", *path))


def anchor(path: Path) -> str:
    return "-".join(("axctl", *path)).replace("_", "-")


def render(root: click.Command, path: Path, link: Link = same_page) -> str:
    """Heading, usage, help, arguments and options of the command at `path`."""
    ctx = _context(root, "axctl", None)
    command = root
    for name in path:
        assert isinstance(command, click.Group)
        sub = command.get_command(ctx, name)
        if sub is None:
            raise KeyError(display(path))
        command = sub
        ctx = _context(command, name, ctx)
    lines = [
        f"### {code(display(path))} {{ #{anchor(path)} }}",
        "",
        "```text",
        command.get_usage(ctx),
        "```",
        "",
        *_help(command.help or command.short_help or ""),
        *_params(command, ctx),
        *_subcommands(command, ctx, path, link),
    ]
    return "\n".join(lines).rstrip() + "\n"


def _context(command: click.Command, name: str, parent: click.Context | None) -> click.Context:
    """The context click would make (its `context_settings` too: `-h` beside `--help`)."""
    return click.Context(command, info_name=name, parent=parent, **command.context_settings)


def _help(text: str) -> Iterator[str]:
    """click's help text as paragraphs; a `\\b` paragraph with indented lines (examples,
    columns) stays as written, in a text block."""
    text = inspect.cleandoc(text).split("\f", 1)[0]
    for paragraph in re.split(r"\n\s*\n", text):
        if not paragraph.strip():
            continue
        block = paragraph.removeprefix("\b").strip("\n")
        if paragraph.startswith("\b") and any(line[:1].isspace() for line in block.splitlines()):
            yield from ("```text", block, "```", "")  # examples, aligned columns
        else:
            yield from (inline(" ".join(block.split())), "")


def _params(command: click.Command, ctx: click.Context) -> Iterator[str]:
    arguments = [p for p in command.get_params(ctx) if isinstance(p, click.Argument)]
    if arguments:
        yield from ("| argument | required | repeats |", "| --- | --- | --- |")
        for arg in arguments:
            repeats = "yes" if arg.nargs == -1 else "no"
            required = "yes" if arg.required else "no"
            yield f"| {code(arg.human_readable_name, cell=True)} | {required} | {repeats} |"
        yield ""
    records = [
        record
        for p in command.get_params(ctx)
        if isinstance(p, click.Option) and not p.hidden
        for record in [p.get_help_record(ctx)]
        if record is not None
    ]
    if records:
        yield from ("| option | description |", "| --- | --- |")
        for names, text in records:
            yield f"| {code(names, cell=True)} | {inline(text, cell=True)} |"
        yield ""


def _subcommands(
    command: click.Command, ctx: click.Context, path: Path, link: Link
) -> Iterator[str]:
    if not isinstance(command, click.Group):
        return
    rows = []
    for name in command.list_commands(ctx):
        sub = command.get_command(ctx, name)
        if sub is None or sub.hidden:
            continue
        entry = f"[{code(name, cell=True)}]({link((*path, name))})"
        rows.append(f"| {entry} | {inline(sub.get_short_help_str(limit=120), cell=True)} |")
    if rows:
        yield from ("| command | what it does |", "| --- | --- |", *rows, "")
