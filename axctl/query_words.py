"""Negated filters (`-path:tests`, `-lang:go`) are query words, not options.

A word that starts with `-` looks like an option to any command-line parser: click would
answer `No such option '-p'` to `axctl find http -path:tests`, the very example the docs
give. Both the fast path and the click command treat these words as part of the query.
"""

from __future__ import annotations

NEGATED_FILTERS = ("-lang:", "-language:", "-kind:", "-path:", "-file:")


def is_filter_word(arg: str) -> bool:
    return arg.startswith(NEGATED_FILTERS)


def words_last(args: list[str]) -> list[str]:
    """`args` with the negated filters moved after `--`, where they are positional."""
    if "--" in args:
        cut = args.index("--")
        head, tail = args[:cut], args[cut + 1 :]
    else:
        head, tail = args, []
    filters = [a for a in head if is_filter_word(a)]
    if not filters:
        return args
    return [a for a in head if not is_filter_word(a)] + ["--", *filters, *tail]
