import sys

from axd.sdk import Plugin


class Loop(Plugin):
    def start(self):
        print("going down", file=sys.stderr)
        raise SystemExit(3)
