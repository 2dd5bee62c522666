"""Stdlib-only code that both sides use: where the socket and state live (`paths`), how to
start a detached daemon (`spawn`) and how to talk to one over its socket (`transport`).

`axctl` imports these on every start, so nothing here may import the daemon's heavy
modules; `axd` itself never imports `axctl`.
"""
