"""Split one file into definition-level chunks: the unit search returns.

Each definition (function, method, class, ...) becomes a chunk whose own text excludes
the definitions nested in it, so a hit lands on the tightest enclosing definition. What is
left over at the top of a file is its `module` chunk. Files without a grammar, and files
whose parse has errors, become plain text chunks.

A chunk's own text is kept as byte ranges of the file (`pieces`), never copied: the
extractor finds the terms of the whole file in one pass and gives each to the chunk whose
ranges hold it.
"""

from __future__ import annotations

import bisect
import os
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from axd.codeintel import languages

MAX_SIGNATURE = 300
MAX_DOC = 2000
TEXT_CHUNK_LINES = 40

_COMMENT_PREFIX = {
    "python": ("#",),
    "ruby": ("#",),
}
_C_LIKE_COMMENT = ("//", "/*", "*", "*/")
_COMMENT_PREFIX_BYTES = {k: tuple(p.encode() for p in v) for k, v in _COMMENT_PREFIX.items()}
_C_LIKE_COMMENT_BYTES = tuple(p.encode() for p in _C_LIKE_COMMENT)
# Two letters or digits in a row, or any non-ASCII byte: text that may hold a term (a
# module chunk without one is left out; one that holds none after all costs nothing).
_MAY_HOLD_A_TERM = re.compile(rb"[A-Za-z]{2}|[0-9]{2}|[\x80-\xff]")
_DOC_MARK = re.compile(r"^(///?!?|/\*+|\*+/?|#+!?)\s?")  # a doc comment's own markers
_DOCSTRING_QUOTES = re.compile(r'^[rRbBuUfF]{0,2}("""|\'\'\'|"|\')|("""|\'\'\'|"|\')$')
_SIGNATURE_WRAPPERS = frozenset(
    {"type_declaration", "lexical_declaration", "variable_declaration", "const_declaration"}
)
# A markdown heading line, over the text with a newline put in front (the regex engine
# then jumps from newline to newline).
_HEADING = re.compile(rb"\n[ \t]{0,3}#{1,6}[ \t]+([^\n]+?)[ \t\r]*#*[ \t\r]*(?=\n|\Z)")
_NOT_SPACE = re.compile(rb"[^ \t\n\r\x0b\x0c]")


@dataclass
class Chunk:
    symbol: str
    qualname: str
    kind: str
    start_line: int  # 1-based, inclusive
    end_line: int
    signature: str = ""
    doc: str = ""
    # The chunk's own text: byte ranges of `source`, nested definitions cut out.
    pieces: list[tuple[int, int]] = field(default_factory=list)
    parent: int | None = None  # index of the enclosing chunk in the file's list
    source: bytes = field(default=b"", repr=False)

    @property
    def text(self) -> str:
        return b"".join(self.source[a:b] for a, b in self.pieces).decode("utf-8", "replace")


@dataclass
class _Def:
    kind: str
    node: Any
    name: str
    start: int
    end: int
    body: Any = None
    receiver: str = ""
    doc_start: int = 0
    sig_start: int = 0
    children: list[int] = field(default_factory=list)


def chunk_file(
    relpath: str, lang: str, has_grammar: bool, source: bytes
) -> tuple[list[Chunk], bool]:
    """Chunks of one file, and whether it parsed cleanly (False: indexed as text)."""
    if has_grammar:
        tree = _parse(lang, source)
        if tree is not None and not tree.root_node.has_error:
            return _definitions(relpath, lang, source, tree), True
        return text_chunks(relpath, source), False
    return text_chunks(relpath, source), True


def _parse(lang: str, source: bytes) -> Any:
    import tree_sitter

    try:
        parser = tree_sitter.Parser(languages.grammar(lang).language)
        return parser.parse(source)
    except (ValueError, RuntimeError):
        return None


def _definitions(relpath: str, lang: str, source: bytes, tree: Any) -> list[Chunk]:
    import tree_sitter

    grammar = languages.grammar(lang)
    by_range: dict[tuple[int, int], tuple[int, _Def]] = {}
    for pattern, caps in tree_sitter.QueryCursor(grammar.query).matches(tree.root_node):
        found = _one_def(lang, source, caps)
        if found is None:
            continue
        # For one node the earliest pattern wins (Go: struct before the generic type).
        key = (found.start, found.end)
        if key not in by_range or pattern < by_range[key][0]:
            by_range[key] = (pattern, found)
    defs = sorted((d for _, d in by_range.values()), key=lambda d: (d.start, -d.end))
    line_starts = _line_starts(source)
    parents = _nest(defs)
    chunks: list[Chunk] = []
    for i, d in enumerate(defs):
        parent = parents[i]
        kind = d.kind
        parent_kind = defs[parent].kind if parent is not None else None
        if kind == "function" and (
            parent_kind in languages.CONTAINERS
            or (lang == "ruby" and parent_kind in ("class", "module"))
        ):
            kind = "method"
        symbol, qual_prefix = _split_qualified(d.name)
        if qual_prefix and kind == "function":
            kind = "method"
        chain = []
        p = parent
        while p is not None:
            chain.append(_split_qualified(defs[p].name)[0])
            p = parents[p]
        prefix = list(reversed(chain))
        if d.receiver:
            prefix.append(d.receiver)
        if qual_prefix:
            prefix.append(qual_prefix)
        start_line = _line_of(line_starts, d.start)
        end_line = _line_of(line_starts, max(d.end - 1, d.start))
        chunks.append(
            Chunk(
                symbol=symbol,
                qualname=".".join([*prefix, symbol]),
                kind=kind,
                start_line=start_line,
                end_line=end_line,
                signature=_signature(lang, source, d),
                doc=_doc(lang, source, line_starts, d),
                parent=parent,
                source=source,
            )
        )
    _own_text(defs, chunks)
    module = _module_chunk(relpath, source, defs, parents, line_starts)
    if module is not None and not any(
        _MAY_HOLD_A_TERM.search(source, a, b) for a, b in module.pieces
    ):
        module = None  # nothing left at the top but punctuation
    if module is not None:
        chunks.insert(0, module)
        for c in chunks[1:]:
            c.parent = 0 if c.parent is None else c.parent + 1
    return chunks


def _one_def(lang: str, source: bytes, caps: dict[str, list[Any]]) -> _Def | None:
    key = next((k for k in caps if k.startswith("def.")), None)
    if key is None or "name" not in caps:
        return None
    node = caps[key][0]
    name = _name_text(source, caps["name"][0])
    if not name:
        return None
    kind = key[4:]
    if (
        kind == "constant"
        and lang in ("python", "java")
        and not re.fullmatch(r"[A-Z][A-Z0-9_]*", name)
    ):
        return None
    outer = node
    while (
        outer.parent is not None
        and outer.parent.type in languages.WRAPPERS
        and sum(1 for c in outer.parent.named_children if c.type == outer.type) == 1
    ):
        outer = outer.parent
    receiver = ""
    if "receiver" in caps:
        words = re.findall(r"[A-Za-z_][A-Za-z0-9_]*", _text(source, caps["receiver"][0]))
        receiver = words[-1] if words else ""
    body = caps.get("body", [None])[0]
    # `type X struct`, `const x = () =>`: the wrapper's keyword is part of the signature;
    # decorators and `export` are not.
    sig_node = outer if outer.type in _SIGNATURE_WRAPPERS else node
    return _Def(
        kind,
        node,
        name,
        outer.start_byte,
        outer.end_byte,
        body,
        receiver,
        outer.start_byte,
        sig_node.start_byte,
    )


def _name_text(source: bytes, node: Any) -> str:
    """The identifier inside a name node (C declarators nest: `*(*f)(int)`)."""
    while node.type in (
        "function_declarator",
        "pointer_declarator",
        "reference_declarator",
        "parenthesized_declarator",
        "array_declarator",
    ):
        inner = node.child_by_field_name("declarator")
        if inner is None:
            break
        node = inner
    name = _text(source, node).strip()
    if node.type in ("generic_type", "template_type", "scoped_type_identifier"):
        name = name.split("<", 1)[0]
    return name.strip()


def _split_qualified(name: str) -> tuple[str, str]:
    """`Foo::bar` -> ("bar", "Foo"); `bar` -> ("bar", "")."""
    if "::" in name:
        head, _, tail = name.rpartition("::")
        return tail, head.replace("::", ".")
    return name, ""


def _nest(defs: list[_Def]) -> list[int | None]:
    parents: list[int | None] = []
    stack: list[int] = []
    for i, d in enumerate(defs):
        while stack and defs[stack[-1]].end <= d.start:
            stack.pop()
        parent = stack[-1] if stack and defs[stack[-1]].end >= d.end else None
        parents.append(parent)
        if parent is not None:
            defs[parent].children.append(i)
        stack.append(i)
    return parents


def _own_text(defs: list[_Def], chunks: list[Chunk]) -> None:
    for d, chunk in zip(defs, chunks, strict=True):
        cursor = d.start
        for child in d.children:
            c = defs[child]
            if c.doc_start > cursor:
                chunk.pieces.append((cursor, c.doc_start))
            cursor = max(cursor, c.end)
        if d.end > cursor:
            chunk.pieces.append((cursor, d.end))


def _module_chunk(
    relpath: str, source: bytes, defs: list[_Def], parents: list[int | None], line_starts: list[int]
) -> Chunk | None:
    pieces = []
    cursor = 0
    first = last = None
    for i, d in enumerate(defs):
        if parents[i] is not None:
            continue
        if d.doc_start > cursor:
            pieces.append((cursor, d.doc_start))
        cursor = max(cursor, d.end)
    if cursor < len(source):
        pieces.append((cursor, len(source)))
    kept = []
    for a, b in pieces:
        piece = source[a:b]
        if piece.strip():
            lead = len(piece) - len(piece.lstrip())
            trail = len(piece.rstrip())
            lo, hi = _line_of(line_starts, a + lead), _line_of(line_starts, a + trail - 1)
            first = lo if first is None else first
            last = hi
            kept.append((a, b))
    if not kept or first is None or last is None:
        return None
    stem = os.path.splitext(relpath)[0]
    return Chunk(
        symbol=os.path.basename(stem),
        qualname=stem.replace(os.sep, "."),
        kind="module",
        start_line=first,
        end_line=last,
        pieces=kept,
        source=source,
    )


def whole_file(relpath: str, source: bytes, newlines: np.ndarray) -> list[Chunk]:
    """Code searchable as text until it is parsed: the whole file as one text chunk (the
    cheapest unit to write and to replace, a file is what a result then points to)."""
    if not _NOT_SPACE.search(source):
        return []
    lines = len(newlines) + (0 if source.endswith(b"\n") else 1)
    name = os.path.basename(relpath)
    return [
        Chunk(
            symbol=name,
            qualname=f"{name}:{name}",
            kind="text",
            start_line=1,
            end_line=max(lines, 1),
            pieces=[(0, len(source))],
            source=source,
        )
    ]


def text_chunks(relpath: str, source: bytes, newlines: np.ndarray | None = None) -> list[Chunk]:
    """Blocks of at most TEXT_CHUNK_LINES lines, cut at blank lines; markdown headings name
    the chunks that follow them. Lines come from the newline offsets (`newlines`, when the
    caller has them) and headings from one regex pass; a block looks at its own lines only
    to find where to cut, so there is no Python step per line."""
    if newlines is None:
        newlines = np.flatnonzero(np.frombuffer(source, dtype=np.uint8) == 10)
    line_starts = [0, *(newlines + 1).tolist()]
    line_ends = [*newlines.tolist(), len(source)]
    count = len(line_starts)
    if count > 1 and line_starts[-1] == len(source):  # a final newline ends the last line
        count -= 1
    heading_at: dict[int, str] = {}
    for match in _HEADING.finditer(b"\n" + source):
        line = bisect.bisect_right(line_starts, match.start()) - 1
        heading_at.setdefault(line, match.group(1).decode("utf-8", errors="replace"))
    titled = sorted(heading_at)
    blank = _blank_line(source, line_starts, line_ends)
    name = os.path.basename(relpath)
    chunks: list[Chunk] = []
    heading = name
    start = 0
    while start < count:
        end = min(start + TEXT_CHUNK_LINES, count)
        if end < count:  # cut after the last blank line of the block's second half
            cut = next(
                (j for j in range(end - 1, start + TEXT_CHUNK_LINES // 2, -1) if blank(j)), None
            )
            if cut is not None:
                end = cut + 1
        i = bisect.bisect_left(titled, start)
        inside = titled[i] if i < len(titled) and titled[i] < end else None
        symbol = heading_at[inside] if inside is not None else heading
        a, b = line_starts[start], line_ends[end - 1]
        if _NOT_SPACE.search(source, a, b):
            chunks.append(
                Chunk(
                    symbol=symbol,
                    qualname=f"{name}:{symbol}",
                    kind="text",
                    start_line=start + 1,
                    end_line=end,
                    pieces=[(a, b)],
                    source=source,
                )
            )
        if inside is not None:
            heading = heading_at[inside]
        start = end
    return chunks


def _blank_line(source: bytes, starts: list[int], ends: list[int]) -> Callable[[int], bool]:
    search = _NOT_SPACE.search
    return lambda line: search(source, starts[line], ends[line]) is None


def _signature(lang: str, source: bytes, d: _Def) -> str:
    """The definition's head: from its start to its body, comments dropped."""
    start, body = d.sig_start, d.body
    if body is not None and body.type in ("arrow_function", "function_expression"):
        body = body.child_by_field_name("body")
    if body is not None and body.start_byte > start:
        raw = source[start : body.start_byte]
    else:
        raw = source[start : d.end].split(b"\n", 1)[0]
    prefixes = _COMMENT_PREFIX.get(lang, _C_LIKE_COMMENT)
    lines = [
        x
        for x in raw.decode("utf-8", errors="replace").splitlines()
        if not x.strip().startswith(prefixes)
    ]
    sig = " ".join(" ".join(lines).split())
    return sig.rstrip("{:=> ").strip()[:MAX_SIGNATURE]


def _doc(lang: str, source: bytes, line_starts: list[int], d: _Def) -> str:
    if lang == "python" and d.body is not None and d.body.named_child_count:
        first = d.body.named_children[0]
        if (
            first.type == "expression_statement"
            and first.named_child_count
            and first.named_children[0].type == "string"
        ):
            raw = _text(source, first.named_children[0]).strip()
            return _DOCSTRING_QUOTES.sub("", raw).strip()[:MAX_DOC]
    prefixes = _COMMENT_PREFIX_BYTES.get(lang, _C_LIKE_COMMENT_BYTES)
    line = _line_of(line_starts, d.start) - 2  # 0-based index of the line above
    collected: list[bytes] = []
    while line >= 0:
        end = line_starts[line + 1] - 1 if line + 1 < len(line_starts) else len(source)
        raw = source[line_starts[line] : end].strip()
        if not raw or not raw.startswith(prefixes):
            break
        collected.append(raw)
        line -= 1
    if not collected:
        return ""
    d.doc_start = line_starts[line + 1]
    cleaned = [
        _DOC_MARK.sub("", x.decode("utf-8", errors="replace")).rstrip("*/ ").rstrip()
        for x in reversed(collected)
    ]
    return "\n".join(c for c in cleaned if c).strip()[:MAX_DOC]


def _text(source: bytes, node: Any) -> str:
    return source[node.start_byte : node.end_byte].decode("utf-8", errors="replace")


def _line_starts(source: bytes) -> list[int]:
    return [0, *(np.flatnonzero(np.frombuffer(source, dtype=np.uint8) == 10) + 1).tolist()]


def _line_of(line_starts: list[int], offset: int) -> int:
    """1-based line number of a byte offset."""
    return bisect.bisect_right(line_starts, offset)
