"""Knock on a loopback port as another uid (65534), the way another local user would."""

from __future__ import annotations

import subprocess
import sys
import textwrap

KNOCK = textwrap.dedent("""
    import encodings.idna, os, socket, sys  # imported before the interpreter's files go dark
    os.setgroups([]); os.setegid(65534); os.seteuid(65534)
    with socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=20) as conn:
        try:
            conn.sendall(b"Content-Length: 2\\r\\n\\r\\n{}")
            print("answered" if conn.recv(100) else "closed")
        except ConnectionResetError:  # closed with our bytes unread
            print("closed")
""")


def knock_as_nobody(port: int) -> str:
    """What uid 65534 got: "closed" (hung up on, not a byte sent back) or "answered"."""
    out = subprocess.run(
        [sys.executable, "-c", KNOCK, str(port)],
        check=False,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert out.returncode == 0, out.stderr
    return out.stdout.strip()
