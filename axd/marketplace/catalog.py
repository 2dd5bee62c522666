"""The plugin catalog: a signed static file, so a marketplace needs no server of its own.

`catalog.json` lists every version of every plugin found in the folders of archives it is
built from: where the archive is (a path relative to the catalog, or a URL under
`--base-url`), its size and sha256, its manifest and budget. `catalog.json.sig` beside it
holds an Ed25519 signature of the catalog's exact bytes; a user trusts a source by its
public key (`marketplace.sources`), and a catalog no trusted key signed is refused whole.
The format is described by `catalog.schema.json` in this folder (tested).
"""

from __future__ import annotations

import base64
import json
import os
import tarfile
import time
import tomllib
from dataclasses import dataclass
from typing import Any

from axd.marketplace import archive, changelog, publish
from axd.marketplace.semver import Version, VersionError
from axd.plugins.manifest import ManifestError, parse

FORMAT = 1
SCHEMA = os.path.join(os.path.dirname(__file__), "catalog.schema.json")
SIGNATURE_SUFFIX = ".sig"


class CatalogError(ValueError):
    """A catalog that cannot be built, read or trusted; the message says why."""


@dataclass(frozen=True)
class Keys:
    """An Ed25519 key pair; the public half as the base64 text users put in their config."""

    private_pem: bytes
    public: str


def generate_keys() -> Keys:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    key = Ed25519PrivateKey.generate()
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    return Keys(pem, _public_text(key))


def _public_text(key: Any) -> str:
    from cryptography.hazmat.primitives import serialization

    raw = key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return base64.b64encode(raw).decode()


def _private_key(pem: bytes) -> Any:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    try:
        key = serialization.load_pem_private_key(pem, password=None)
    except (ValueError, TypeError) as exc:
        raise CatalogError(f"not an unencrypted PEM private key: {exc}") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise CatalogError("the key is not an Ed25519 key")
    return key


def read_manifest(path: str) -> dict[str, Any]:
    """The manifest inside an archive (its one top folder's plugin.toml), checked, and
    that version's section of the archive's CHANGELOG.md (`changes`, None without one)."""
    toml_bytes, changelog_bytes = _read_archive(path)
    try:
        doc = tomllib.loads(toml_bytes.decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise CatalogError(f"{path}: plugin.toml is not UTF-8: {exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise CatalogError(f"{path}: plugin.toml is not valid TOML: {exc}") from None
    try:
        manifest = parse(doc, "", f"{path}:plugin.toml")
    except ManifestError as exc:
        raise CatalogError(str(exc)) from None
    problems = publish.problems_of(manifest)
    if problems:
        raise CatalogError(f"{path}: cannot be published: " + "; ".join(problems))
    changes = None
    if changelog_bytes is not None:
        try:
            changes = changelog.section(changelog_bytes.decode("utf-8"), manifest.version)
        except UnicodeDecodeError as exc:
            raise CatalogError(f"{path}: {changelog.FILE_NAME} is not UTF-8: {exc}") from None
    return {"listing": manifest.listing(), "budget": manifest.budget.describe(), "changes": changes}


def _read_archive(path: str) -> tuple[bytes, bytes | None]:
    """plugin.toml and CHANGELOG.md (None when absent) from the archive's one top folder."""
    try:
        with tarfile.open(path, "r:gz") as tar:
            tops = {m.name.split("/", 1)[0] for m in tar.getmembers()}
            if len(tops) != 1:
                raise CatalogError(f"{path}: expected one top folder, found {len(tops)}")
            top = tops.pop()
            toml_bytes = _member(tar, f"{top}/plugin.toml", path, limit=None)
            if toml_bytes is None:
                raise CatalogError(f"{path}: no plugin.toml in the archive")
            limit = changelog.MAX_FILE
            return toml_bytes, _member(tar, f"{top}/{changelog.FILE_NAME}", path, limit=limit)
    except (tarfile.TarError, OSError, EOFError) as exc:
        raise CatalogError(f"{path}: not a readable plugin archive: {exc}") from None


def _member(tar: tarfile.TarFile, name: str, path: str, *, limit: int | None) -> bytes | None:
    """A regular file's bytes from `tar`; None when there is none of that name."""
    try:
        member = tar.getmember(name)
    except KeyError:
        return None
    handle = tar.extractfile(member) if member.isfile() else None
    if handle is None:
        raise CatalogError(f"{path}: {name} is not a file")
    if limit is not None and member.size > limit:
        raise CatalogError(f"{path}: {name} is larger than {limit} bytes")
    return handle.read()


def build(
    folders: list[str], catalog_path: str, *, name: str, base_url: str | None = None
) -> dict[str, Any]:
    """The catalog of every `*.tar.gz` in `folders` (not written: see `write`)."""
    plugins: dict[str, dict[str, Any]] = {}
    where = os.path.dirname(os.path.abspath(catalog_path))
    for folder in folders:
        try:
            names = sorted(n for n in os.listdir(folder) if n.endswith(".tar.gz"))
        except OSError as exc:
            raise CatalogError(f"{folder}: {exc.strerror}") from None
        for file_name in names:
            path = os.path.join(folder, file_name)
            found = read_manifest(path)
            listing = found["listing"]
            rel = os.path.relpath(os.path.abspath(path), where).replace(os.sep, "/")
            location = f"{base_url.rstrip('/')}/{rel}" if base_url else rel
            entry = plugins.setdefault(
                listing["name"], {"description": listing["description"], "versions": {}}
            )
            if listing["version"] in entry["versions"]:
                raise CatalogError(f"{listing['name']} {listing['version']} is there twice")
            release: dict[str, Any] = {
                "archive": location,
                "size": os.path.getsize(path),
                "sha256": archive.sha256_file(path),
                "manifest": listing,
                "budget": found["budget"],
            }
            if found["changes"] is not None:
                release["changes"] = found["changes"]
            entry["versions"][listing["version"]] = release
    for entry in plugins.values():  # the newest version's description speaks for the plugin
        newest = max(entry["versions"], key=Version.parse)
        entry["description"] = entry["versions"][newest]["manifest"]["description"]
        entry["versions"] = dict(
            sorted(entry["versions"].items(), key=lambda v: Version.parse(v[0]))
        )
    return {
        "format": FORMAT,
        "name": name,
        "generated": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "plugins": dict(sorted(plugins.items())),
    }


def write(doc: dict[str, Any], catalog_path: str, private_pem: bytes) -> str:
    """Write the catalog and its signature (each atomically); returns the public key."""
    key = _private_key(private_pem)
    body = (json.dumps(doc, indent=2, ensure_ascii=False) + "\n").encode()
    signature = base64.b64encode(key.sign(body)) + b"\n"
    _atomic(catalog_path, body)
    _atomic(catalog_path + SIGNATURE_SUFFIX, signature)
    return _public_text(key)


def _atomic(path: str, data: bytes) -> None:
    tmp = f"{path}.{os.getpid()}.tmp"
    with open(tmp, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def verify(body: bytes, signature: bytes, trusted: list[str]) -> str:
    """The trusted public key that signed `body`; CatalogError when none did."""
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    try:
        sig = base64.b64decode(signature.strip(), validate=True)
    except ValueError:
        raise CatalogError("the signature is not base64") from None
    for text in trusted:
        try:
            key = Ed25519PublicKey.from_public_bytes(base64.b64decode(text, validate=True))
        except ValueError:
            raise CatalogError(f"{text!r} is not an Ed25519 public key (base64)") from None
        try:
            key.verify(sig, body)
            return text
        except InvalidSignature:
            continue
    raise CatalogError("the catalog is not signed by a key you trust")


def load(body: bytes, signature: bytes, trusted: list[str]) -> dict[str, Any]:
    """A catalog's document, once its signature is verified and its shape checked."""
    verify(body, signature, trusted)
    try:
        doc = json.loads(body)
    except ValueError as exc:
        raise CatalogError(f"the catalog is not JSON: {exc}") from None
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise CatalogError(f"unknown catalog format {doc.get('format')!r}, expected {FORMAT}")
    for name, entry in doc.get("plugins", {}).items():
        for version, release in entry.get("versions", {}).items():
            try:
                Version.parse(version)
            except VersionError as exc:
                raise CatalogError(f"{name}: {exc}") from None
            if not isinstance(release.get("sha256"), str) or len(release["sha256"]) != 64:
                raise CatalogError(f"{name} {version}: no sha256")
            if not isinstance(release.get("changes", ""), str):
                raise CatalogError(f"{name} {version}: changes is not text")
    return doc
