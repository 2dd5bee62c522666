"""`axctl plugin pack DIR`: a plugin folder as a reproducible archive, ready to publish."""

from __future__ import annotations

import os

import click

from axctl import output
from axctl.commands.common import json_option
from axctl.errors import CliError


@click.command("pack")
@click.argument("folder", type=click.Path(file_okay=False, exists=True))
@click.option(
    "-o",
    "--output-dir",
    "out_dir",
    type=click.Path(file_okay=False),
    default=".",
    show_default=True,
    help="Where to write NAME-VERSION.tar.gz.",
)
@json_option
def plugin_pack(folder: str, out_dir: str, as_json: bool) -> None:
    """Check FOLDER's plugin.toml for publishing (semantic version, author, SPDX licence,
    homepage, keywords, the axd versions it works with, budgets) and pack the folder as
    NAME-VERSION.tar.gz. The same files give the same bytes (sorted entries, fixed times
    and owners), so the printed sha256 can be checked by anyone who packs it again.

    \b
    Examples:
      axctl plugin pack plugins/greeter
      axctl plugin pack plugins/greeter -o dist --json
    """
    from axd.marketplace import archive, publish

    manifest, problems = publish.check(folder)
    if manifest is None or problems:
        raise CliError(
            f"{os.path.join(folder, 'plugin.toml')} cannot be published: " + "; ".join(problems),
            code="manifest_invalid",
            details={"problems": problems},
            as_json=as_json,
        )
    os.makedirs(out_dir, exist_ok=True)
    base = f"{manifest.name}-{manifest.version}"
    try:
        packed = archive.pack(folder, os.path.join(out_dir, base + ".tar.gz"), base)
    except archive.ArchiveError as exc:
        raise CliError(f"{folder}: {exc}", code="archive_invalid", as_json=as_json) from None
    doc = {
        "name": manifest.name,
        "version": manifest.version,
        "archive": packed.path,
        "sha256": packed.sha256,
        "size": packed.size,
        "files": packed.files,
        "manifest": manifest.listing(),
        "budget": manifest.budget.describe(),
    }
    if as_json:
        output.emit_json(doc)
        return
    click.echo(
        f"{packed.path}: {manifest.name} {manifest.version}, {packed.files} files, "
        f"{packed.size} bytes"
    )
    click.echo(f"sha256 {packed.sha256}")
