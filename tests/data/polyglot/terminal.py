"""Module doc."""
import os

MAX_SIZE = 10

def dec(f):
    return f

@dec
class Terminal:
    """A terminal."""

    @property
    def get_terminal_size(self):
        """Return the size."""
        return os.get_terminal_size()

    class Inner:
        def deep(self): pass

def top(a, b=2) -> int:
    # comment
    def nested():
        return 1
    return nested()
