"""axd: a resident developer daemon.

Kept import-free on purpose: the thin client reads the version from here on every start.
"""

__version__ = "0.1.0"

# Bumped when a route or a response shape changes incompatibly; the client compares it.
API_VERSION = 1
