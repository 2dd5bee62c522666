"""axctl: the thin command-line client of axd.

It must start fast: it imports click and the standard library, and from axd only the
version and the path helpers. Nothing here may import aiohttp or the daemon's modules.
"""

from axctl import trace as _trace  # noqa: F401 - starts the clock for `--trace`
