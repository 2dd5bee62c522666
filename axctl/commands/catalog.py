"""`axctl plugin catalog keygen|build|verify`: publish plugins as a signed static file."""

from __future__ import annotations

import os

import click

from axctl import output
from axctl.commands.common import json_option
from axctl.errors import CliError


@click.group("catalog")
def plugin_catalog() -> None:
    """Publish plugins: a signing key, a signed catalog of archives, and its check.

    \b
    A catalog is catalog.json and catalog.json.sig, beside the archives or on any web
    host; users trust it by its public key. Nothing runs on a server.
      axctl plugin catalog keygen ~/.config/axd/catalog.key
      axctl plugin pack plugins/greeter -o dist
      axctl plugin catalog build dist -o dist/catalog.json --key ~/.config/axd/catalog.key
      axctl plugin catalog verify dist/catalog.json --public-key KEY
    """


@plugin_catalog.command("keygen")
@click.argument("key_file", type=click.Path(dir_okay=False))
@json_option
def catalog_keygen(key_file: str, as_json: bool) -> None:
    """Create an Ed25519 signing key in KEY_FILE (owner-only, never overwritten) and print
    its public key, which users add to `marketplace.sources` to trust your catalog."""
    from axd.marketplace import catalog

    keys = catalog.generate_keys()
    try:
        fd = os.open(key_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        raise CliError(
            f"{key_file} exists: a signing key is not replaced",
            code="exists",
            hint="choose another file, or remove this one if you mean to retire its key",
            as_json=as_json,
        ) from None
    with os.fdopen(fd, "wb") as fh:
        fh.write(keys.private_pem)
    if as_json:
        output.emit_json({"key_file": key_file, "public_key": keys.public})
        return
    click.echo(f"private key: {key_file} (keep it secret)")
    click.echo(f"public key:  {keys.public}")


@plugin_catalog.command("build")
@click.argument("folders", nargs=-1, required=True, type=click.Path(file_okay=False))
@click.option(
    "-o", "--output", "out", default="catalog.json", show_default=True, help="Catalog file."
)
@click.option("--key", "key_file", required=True, help="The signing key (from keygen).")
@click.option("--name", default="local", show_default=True, help="The source's name.")
@click.option(
    "--base-url",
    help="Where the archives will be served (an http(s) URL); else paths relative to it.",
)
@json_option
def catalog_build(
    folders: tuple[str, ...],
    out: str,
    key_file: str,
    name: str,
    base_url: str | None,
    as_json: bool,
) -> None:
    """List every version of every plugin archive (*.tar.gz, from `axctl plugin pack`) in
    FOLDERS in a catalog with its size, sha256, manifest and budget, and sign it
    (OUTPUT and OUTPUT.sig). An archive whose manifest cannot be published is an error."""
    from axd.marketplace import catalog

    if base_url and not base_url.startswith(("https://", "http://")):
        raise CliError("--base-url must be an http(s) URL", exit_code=2, as_json=as_json)
    try:
        with open(key_file, "rb") as fh:
            pem = fh.read()
    except OSError as exc:
        raise CliError(f"cannot read {key_file}: {exc.strerror}", as_json=as_json) from None
    try:
        doc = catalog.build(list(folders), out, name=name, base_url=base_url)
        public = catalog.write(doc, out, pem)
    except catalog.CatalogError as exc:
        raise CliError(str(exc), code="catalog_invalid", as_json=as_json) from None
    versions = sum(len(p["versions"]) for p in doc["plugins"].values())
    if as_json:
        output.emit_json(
            {
                "catalog": out,
                "plugins": len(doc["plugins"]),
                "versions": versions,
                "public_key": public,
            }
        )
        return
    click.echo(f"{out}: {len(doc['plugins'])} plugins, {versions} versions, signed")
    click.echo(f"public key: {public}")


@plugin_catalog.command("verify")
@click.argument("catalog_file", type=click.Path(dir_okay=False))
@click.option(
    "--public-key", "keys", multiple=True, required=True, help="A trusted key (repeatable)."
)
@json_option
def catalog_verify(catalog_file: str, keys: tuple[str, ...], as_json: bool) -> None:
    """Check that CATALOG_FILE is signed (CATALOG_FILE.sig) by one of the keys, and that
    every archive it lists beside it has its size and sha256."""
    from axd.marketplace import archive, catalog

    try:
        with open(catalog_file, "rb") as fh:
            body = fh.read()
        with open(catalog_file + catalog.SIGNATURE_SUFFIX, "rb") as fh:
            signature = fh.read()
    except OSError as exc:
        raise CliError(f"cannot read {exc.filename}: {exc.strerror}", as_json=as_json) from None
    try:
        doc = catalog.load(body, signature, list(keys))
    except catalog.CatalogError as exc:
        raise CliError(str(exc), code="catalog_untrusted", as_json=as_json) from None
    problems = []
    checked = 0
    base = os.path.dirname(os.path.abspath(catalog_file))
    for plugin_name, entry in doc["plugins"].items():
        for version, release in entry["versions"].items():
            if release["archive"].startswith(("http://", "https://")):
                continue  # not fetched here; `axctl plugin install` checks it on download
            path = os.path.join(base, release["archive"])
            checked += 1
            if not os.path.isfile(path):
                problems.append(f"{plugin_name} {version}: {release['archive']} is missing")
            elif os.path.getsize(path) != release["size"]:
                problems.append(f"{plugin_name} {version}: size differs")
            elif archive.sha256_file(path) != release["sha256"]:
                problems.append(f"{plugin_name} {version}: sha256 differs")
    if problems:
        raise CliError(
            f"{catalog_file}: " + "; ".join(problems),
            code="catalog_invalid",
            details={"problems": problems},
            as_json=as_json,
        )
    if as_json:
        output.emit_json({"catalog": catalog_file, "valid": True, "archives_checked": checked})
        return
    click.echo(f"{catalog_file}: signed by a trusted key; {checked} archives match")
