"""`json.loads` / `json.dumps` for the client's start-up path, without importing `json`.

The `json` package imports `re` (and compiles its patterns) at import time: about a third
of a bare `axctl status` start. Its C accelerator `_json` needs none of that, so this
module drives it directly: `loads` with the C scanner, `dumps` with the C encoder, and the
indented form (`axctl ... --json`) with a small writer around the C string escaper. The
output is byte for byte what `json.dumps` gives (a test compares them on generated
documents). Where `_json` is missing (another Python), it falls back to `json`.
"""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

try:
    import _json
except ImportError:  # pragma: no cover - CPython always has it
    _json = None  # type: ignore[assignment]


class _Context:
    """What the C scanner reads off `json.JSONDecoder`, with its defaults."""

    strict = True
    object_hook = None
    object_pairs_hook = None
    parse_float = float
    parse_int = int

    @staticmethod
    def parse_constant(name: str) -> float:
        return {"NaN": float("nan"), "Infinity": float("inf"), "-Infinity": float("-inf")}[name]


_scan = _json.make_scanner(_Context()) if _json is not None else None
_WHITESPACE = frozenset(" \t\n\r")


def loads(data: bytes | str) -> Any:
    """Like `json.loads`; raises ValueError on anything that is not one JSON document."""
    if _scan is None:  # pragma: no cover
        import json

        return json.loads(data)
    text = data.decode("utf-8") if isinstance(data, bytes | bytearray) else data
    start = 0
    while start < len(text) and text[start] in _WHITESPACE:
        start += 1
    try:
        value, end = _scan(text, start)
    except StopIteration:
        raise ValueError(f"no JSON value at offset {start}") from None
    while end < len(text) and text[end] in _WHITESPACE:
        end += 1
    if end != len(text):
        raise ValueError(f"extra data at offset {end}")
    return value


def _float(value: float) -> str:
    if value != value:  # noqa: PLR0124 - NaN is the one float not equal to itself
        return "NaN"
    if value in (float("inf"), float("-inf")):
        return "Infinity" if value > 0 else "-Infinity"
    return float.__repr__(value)


def _unsupported(value: object) -> Any:
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")


def dumps(value: Any, indent: int | None = None, separators: tuple[str, str] = (", ", ": ")) -> str:
    """Like `json.dumps(value)` (ASCII; `separators` as json's), or with `indent=n`
    `json.dumps(value, indent=n)` (`,` and `: `)."""
    if _json is None:  # pragma: no cover
        import json

        return json.dumps(value, indent=indent, separators=None if indent else separators)
    if indent is None:
        encode = _json.make_encoder(
            None,
            _unsupported,
            _json.encode_basestring_ascii,
            None,
            separators[1],
            separators[0],
            False,
            False,
            True,
        )
        return "".join(encode(value, 0))
    out: list[str] = []
    _write(value, indent, 0, out)
    return "".join(out)


def _write(value: Any, indent: int, level: int, out: list[str]) -> None:
    if isinstance(value, str):
        out.append(_json.encode_basestring_ascii(value))
    elif value is None:
        out.append("null")
    elif value is True:
        out.append("true")
    elif value is False:
        out.append("false")
    elif isinstance(value, int):
        out.append(int.__repr__(value))
    elif isinstance(value, float):
        out.append(_float(value))
    elif isinstance(value, dict):
        if not value:
            out.append("{}")
            return
        inner = "\n" + " " * (indent * (level + 1))
        out.append("{")
        for i, (key, item) in enumerate(value.items()):
            out.append(inner if i == 0 else "," + inner)
            out.append(_json.encode_basestring_ascii(_key(key)))
            out.append(": ")
            _write(item, indent, level + 1, out)
        out.append("\n" + " " * (indent * level) + "}")
    elif isinstance(value, list | tuple):
        if not value:
            out.append("[]")
            return
        inner = "\n" + " " * (indent * (level + 1))
        out.append("[")
        for i, item in enumerate(value):
            out.append(inner if i == 0 else "," + inner)
            _write(item, indent, level + 1, out)
        out.append("\n" + " " * (indent * level) + "]")
    else:
        _unsupported(value)


def _key(key: object) -> str:
    """Dict keys as `json.dumps` writes them: strings as they are, scalars spelled out."""
    if isinstance(key, str):
        return key
    if key is True:
        return "true"
    if key is False:
        return "false"
    if key is None:
        return "null"
    if isinstance(key, int):
        return int.__repr__(key)
    if isinstance(key, float):
        return _float(key)
    raise TypeError(f"keys must be str, int, float, bool or None, not {type(key).__name__}")
