"""Reading and checking request input: bodies against a small JSON-schema subset, and
query parameters. Bad JSON is a 400, well-formed JSON with wrong values is a 422, and both
say which field and what was expected.
"""

from __future__ import annotations

import asyncio
import json
import re
from typing import Any

from aiohttp import web

from axd import errors
from axd.api.errors import ApiError
from axd.daemon.services import SERVICES
from axd.errors import AxdError

_JSON_TYPES: dict[str, tuple[type, ...]] = {
    "string": (str,),
    "integer": (int,),
    "number": (int, float),
    "boolean": (bool,),
    "object": (dict,),
    "array": (list,),
}


async def read_body(request: web.Request, limit: int, timeout: float | None = None) -> bytes:
    """The body, refusing (413) past `limit` bytes without buffering more than that, and
    (408) when it has not all arrived within `timeout` seconds: a body trickled a byte at
    a time would otherwise hold its handler, and its connection, for ever."""
    declared = request.content_length
    if declared is not None and declared > limit:
        raise _too_large(limit, declared)
    chunks: list[bytes] = []
    size = 0
    try:
        async with asyncio.timeout(timeout):
            while True:
                chunk = await request.content.readany()
                if not chunk:
                    break
                size += len(chunk)
                if size > limit:
                    raise _too_large(limit, None)
                chunks.append(chunk)
    except TimeoutError:
        raise ApiError(
            408,
            "request_timeout",
            f"the request body did not arrive within api.idle_timeout ({timeout:g} s)",
            {"received": size},
        ) from None
    return b"".join(chunks)


async def json_body(request: web.Request, schema: dict[str, Any]) -> dict[str, Any]:
    """The request's JSON object body checked against `schema`, within the live
    `api.max_body_size` and `api.idle_timeout`."""
    config = request.app[SERVICES].config
    limit = config.integer("api.max_body_size")
    return await read_json(request, schema, limit, config.number("api.idle_timeout"))


async def read_json(
    request: web.Request, schema: dict[str, Any], limit: int, timeout: float | None = None
) -> dict[str, Any]:
    """A JSON object body checked against `schema`; an empty body counts as `{}`."""
    raw = await read_body(request, limit, timeout)
    if not raw.strip():
        doc: Any = {}
    else:
        try:
            doc = json.loads(raw, parse_constant=_not_json)
        except UnicodeDecodeError:
            raise ApiError(400, "invalid_json", "request body is not UTF-8 text") from None
        except json.JSONDecodeError as exc:
            raise ApiError(
                400,
                "invalid_json",
                f"request body is not valid JSON: {exc.msg}",
                {"line": exc.lineno, "column": exc.colno},
            ) from None
        except RecursionError:  # `[[[[...`: json recurses once per level
            raise ApiError(
                400, "invalid_json", "request body is not valid JSON: nested too deeply"
            ) from None
    check(doc, schema, "body")
    return doc


def _not_json(name: str) -> Any:
    raise ApiError(
        400,
        "invalid_json",
        f"request body is not valid JSON: {name} is not a JSON value",
        {"token": name},
    )


def check(value: Any, schema: dict[str, Any], where: str) -> None:
    """Raise a 422 naming the first field that does not fit `schema`."""
    kind = schema.get("type")
    if kind and not _is_type(value, kind):
        raise _invalid(where, f"must be {_article(kind)}", value, expected=kind)
    if "enum" in schema and value not in schema["enum"]:
        raise _invalid(where, "must be one of " + ", ".join(map(str, schema["enum"])), value)
    if "minimum" in schema and value < schema["minimum"]:
        raise _invalid(where, f"must be at least {schema['minimum']}", value)
    if "maximum" in schema and value > schema["maximum"]:
        raise _invalid(where, f"must be at most {schema['maximum']}", value)
    if "maxLength" in schema and len(value) > schema["maxLength"]:
        raise _invalid(where, f"must be at most {schema['maxLength']} characters", value)
    if "pattern" in schema and not re.fullmatch(schema["pattern"], value):
        raise _invalid(where, f"must match {schema['pattern']}", value)
    if kind == "object":
        props = schema.get("properties", {})
        for name in schema.get("required", ()):
            if name not in value:
                raise _invalid(f"{where}.{name}", "is required", None)
        if schema.get("additionalProperties") is False:
            extra = sorted(set(value) - set(props))
            if extra:
                raise _invalid(
                    f"{where}.{extra[0]}",
                    "is not a known field; known: " + (", ".join(sorted(props)) or "none"),
                    value[extra[0]],
                )
        for name, sub in props.items():
            if name in value:
                check(value[name], sub, f"{where}.{name}")
    if kind == "array" and "items" in schema:
        for i, item in enumerate(value):
            check(item, schema["items"], f"{where}[{i}]")


def query_bool(request: web.Request, name: str, default: bool) -> bool:
    raw = request.query.get(name)
    if raw is None or raw == "":
        return default
    lowered = raw.lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off"):
        return False
    raise _invalid(f"query.{name}", "must be true or false", raw)


def query_int(
    request: web.Request, name: str, default: int, minimum: int = 0, maximum: int = 1 << 31
) -> int:
    raw = request.query.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise _invalid(f"query.{name}", "must be a whole number", raw) from None
    if not minimum <= value <= maximum:
        raise _invalid(f"query.{name}", f"must be between {minimum} and {maximum}", raw)
    return value


def query_list(request: web.Request, name: str) -> list[str]:
    """`?types=a,b&types=c` -> ["a", "b", "c"]."""
    items: list[str] = []
    for raw in request.query.getall(name, []):
        items += [part.strip() for part in raw.split(",") if part.strip()]
    return items


def _is_type(value: Any, kind: str) -> bool:
    if kind in ("integer", "number") and isinstance(value, bool):
        return False
    return isinstance(value, _JSON_TYPES[kind])


def _article(kind: str) -> str:
    return ("an " if kind[0] in "aeiou" else "a ") + kind


def _invalid(field: str, problem: str, value: Any, **extra: Any) -> AxdError:
    details = {"field": field, "problem": problem, **extra}
    if value is not None:
        details["value"] = value if isinstance(value, str | int | float | bool) else repr(value)
    return errors.invalid("invalid_value", f"{field} {problem}", **details)


def _too_large(limit: int, declared: int | None) -> ApiError:
    details = {"limit": limit}
    if declared is not None:
        details["size"] = declared
    return ApiError(
        413,
        "body_too_large",
        f"request body is larger than api.max_body_size ({limit} bytes)",
        details,
    )
