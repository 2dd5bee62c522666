"""`axctl lsp`: a Language Server on the daemon's warm index, over stdio.

Written on asyncio and the standard library rather than pygls: importing pygls 2 with
lsprotocol took 0.35 to 0.55 s on the reference machine (lsprotocol's type classes alone
0.34 s), more than the whole 300 ms budget from spawn to the `initialize` answer; the
protocol this server speaks (a dozen methods over JSON-RPC) is small enough to own.
"""
