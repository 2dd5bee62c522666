"""What a plugin must say about itself before it is packed for others.

The daemon runs a plugin with a name, a version, a description and an entry point; a
plugin others install also needs a semantic version, an author, an SPDX licence id, a
homepage, keywords to be found by and the axd versions it works with. Its budget is
checked by the same parser the daemon uses.
"""

from __future__ import annotations

import re
from urllib.parse import urlsplit

from axd.marketplace.semver import Range, Version, VersionError
from axd.plugins.manifest import Manifest, ManifestError, load

KEYWORD = re.compile(r"^[a-z0-9][a-z0-9-]{0,31}$")
# A tag (`<b>`, `</script>`, `<img src=...`), a comment or processing instruction opener, or
# a control character: what a page or a terminal showing the manifest would interpret
# instead of printing. `Name <name@example.org>` is not a tag.
MARKUP = re.compile(r"</?[A-Za-z][A-Za-z0-9-]*(?:[\s/>]|$)|<[!?]|[\x00-\x08\x0b-\x1f\x7f]")
MAX_KEYWORDS = 12
# The SPDX ids of the licences plugins use (spdx.org/licenses); `LicenseRef-...` for others.
SPDX = frozenset(
    [
        "0BSD",
        "AFL-3.0",
        "AGPL-3.0-only",
        "AGPL-3.0-or-later",
        "Apache-2.0",
        "Artistic-2.0",
        "BSD-1-Clause",
        "BSD-2-Clause",
        "BSD-2-Clause-Patent",
        "BSD-3-Clause",
        "BSD-3-Clause-Clear",
        "BSD-4-Clause",
        "BSL-1.0",
        "CC-BY-4.0",
        "CC-BY-SA-4.0",
        "CC0-1.0",
        "CDDL-1.0",
        "CECILL-2.1",
        "ECL-2.0",
        "EPL-1.0",
        "EPL-2.0",
        "EUPL-1.1",
        "EUPL-1.2",
        "GPL-2.0-only",
        "GPL-2.0-or-later",
        "GPL-3.0-only",
        "GPL-3.0-or-later",
        "ISC",
        "LGPL-2.0-only",
        "LGPL-2.0-or-later",
        "LGPL-2.1-only",
        "LGPL-2.1-or-later",
        "LGPL-3.0-only",
        "LGPL-3.0-or-later",
        "LPPL-1.3c",
        "MIT",
        "MIT-0",
        "MPL-1.1",
        "MPL-2.0",
        "MS-PL",
        "MS-RL",
        "MulanPSL-2.0",
        "NCSA",
        "OFL-1.1",
        "OSL-3.0",
        "PostgreSQL",
        "PSF-2.0",
        "Python-2.0",
        "Ruby",
        "UPL-1.0",
        "Unicode-3.0",
        "Unlicense",
        "Vim",
        "W3C",
        "WTFPL",
        "X11",
        "Zlib",
        "ZPL-2.1",
    ]
)


def check(folder: str) -> tuple[Manifest | None, list[str]]:
    """The manifest and every problem that keeps it from being published (none: ok)."""
    try:
        manifest = load(folder)
    except ManifestError as exc:
        return None, exc.problems
    return manifest, problems_of(manifest)


def problems_of(manifest: Manifest) -> list[str]:
    """What keeps a manifest the daemon accepts from being published."""
    problems: list[str] = []
    try:
        Version.parse(manifest.version)
    except VersionError as exc:
        problems.append(f"plugin.version: {exc}")
    for key in ("name", "description", "author", "homepage", "license"):
        if MARKUP.search(getattr(manifest, key)):
            problems.append(
                f"plugin.{key} holds markup or control characters (such as </script>): "
                "plain text only, it is shown on web pages and in terminals"
            )
    if not manifest.author.strip():
        problems.append("plugin.author is required to publish (a name, and an e-mail if you like)")
    if not manifest.license:
        problems.append("plugin.license is required to publish: an SPDX id such as MIT")
    elif manifest.license not in SPDX and not manifest.license.startswith("LicenseRef-"):
        problems.append(
            f"plugin.license = {manifest.license!r} is not an SPDX licence id "
            "(spdx.org/licenses; e.g. MIT, Apache-2.0, GPL-3.0-or-later, or LicenseRef-...)"
        )
    url = urlsplit(manifest.homepage)
    if url.scheme not in ("https", "http") or not url.netloc:
        problems.append("plugin.homepage is required to publish: an http(s) URL")
    if not manifest.keywords:
        problems.append("plugin.keywords: give at least one, users search by them")
    if len(manifest.keywords) > MAX_KEYWORDS:
        problems.append(f"plugin.keywords: at most {MAX_KEYWORDS}")
    problems += [
        f"plugin.keywords: {k!r} is not lowercase letters, digits and dashes"
        for k in manifest.keywords
        if not KEYWORD.match(k)
    ]
    if not manifest.axd:
        problems.append('plugin.axd is required to publish: the axd versions, e.g. ">=0.1, <1"')
    else:
        try:
            Range.parse(manifest.axd)
        except VersionError as exc:
            problems.append(f"plugin.axd: {exc}")
    return problems
