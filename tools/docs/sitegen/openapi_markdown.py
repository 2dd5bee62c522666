"""The API reference page, rendered from the OpenAPI document `/v1/openapi.json` serves.

Routes are grouped into areas by the longest prefix of their path after `/v1/` that an
area names (`/v1/plugins/{name}/debug` in `plugins/{name}/debug`, `/v1/plugins/{name}/call`
in `plugins`); `areas` names and orders the groups, and a first segment no area names gets
a group of its own, so a new route is never left out.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from .markdown_text import code, inline

Areas = Sequence[tuple[str, Sequence[str]]]
ERRORS_LINK = "../../api.md#errors"  # from reference/api/<area>.md
_METHODS = ("get", "post", "put", "patch", "delete")


Operation = tuple[str, str, dict[str, Any]]  # method, path, the OpenAPI operation


def group(document: Mapping[str, Any], areas: Areas) -> dict[str, list[Operation]]:
    """The operations of `document` by area, areas in the order `areas` gives (then the
    areas it does not name, by title)."""
    groups: dict[str, list[Operation]] = {}
    for path, item in document.get("paths", {}).items():
        for method in _METHODS:
            if method in item:
                groups.setdefault(area_of(path, areas), []).append((method, path, item[method]))
    titles = [title for title, _ in areas]
    order = titles + sorted(t for t in groups if t not in titles)
    return {title: groups[title] for title in order if title in groups}


def render(operations: Sequence[Operation]) -> str:
    """Markdown for `operations`, one `##` section each."""
    return "\n".join(operation(m, p, op) for m, p, op in operations)


def slug(title: str) -> str:
    """The file name of an area's page: `Code search` -> `code-search`."""
    return re.sub(r"[^a-z0-9]+", "-", title.lower()).strip("-") or "other"


def area_of(path: str, areas: Areas) -> str:
    """The area whose longest prefix matches `path` (`plugins/{name}/debug` beats
    `plugins`); a path no prefix matches is grouped by its first segment."""
    rest = path.removeprefix("/v1/")
    best, length = None, -1
    for title, prefixes in areas:
        for prefix in prefixes:
            matches = rest == prefix or rest.startswith(prefix + "/")
            if matches and len(prefix) > length:
                best, length = title, len(prefix)
    return best or f"`/v1/{rest.split('/', 1)[0]}`"


def anchor(method: str, path: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", f"{method} {path}".lower()).strip("-")


def count(document: Mapping[str, Any]) -> int:
    return sum(m in item for item in document.get("paths", {}).values() for m in _METHODS)


def operation(method: str, path: str, op: Mapping[str, Any]) -> str:
    lines = [
        f"## {code(f'{method.upper()} {path}')} {{ #{anchor(method, path)} }}",
        "",
        inline(op.get("summary", "")),
        "",
    ]
    if op.get("parameters"):
        lines += ["**Parameters**", "", *_parameters(op["parameters"]), ""]
    body = op.get("requestBody")
    if body:
        for media, content in body.get("content", {}).items():
            lines += [f"**Request body** ({code(media)})", ""]
            lines += [*_schema_table(content.get("schema", {})), ""]
    lines += ["**Responses**", "", *_responses(op.get("responses", {})), ""]
    return "\n".join(lines)


def _parameters(params: Sequence[Mapping[str, Any]]) -> Iterator[str]:
    yield "| name | in | type | required | description |"
    yield "| --- | --- | --- | --- | --- |"
    for p in params:
        yield (
            f"| {code(p['name'], cell=True)} | {p.get('in', '')} "
            f"| {describe_type(p.get('schema', {}))} | {_yes(p.get('required', False))} "
            f"| {inline(p.get('description', ''), cell=True)} |"
        )


def _schema_table(schema: Mapping[str, Any]) -> list[str]:
    if schema.get("type") != "object" or "properties" not in schema:
        return [f"{describe_type(schema)}."]
    rows = list(_fields(schema, ""))
    lines = ["| field | type | required | description |", "| --- | --- | --- | --- |"]
    lines += [
        f"| {code(name, cell=True)} | {kind} | {_yes(required)} | {inline(doc, cell=True)} |"
        for name, kind, required, doc in rows
    ]
    if schema.get("additionalProperties") is False:
        lines += ["", "Unknown fields are refused (422), so a typo does not pass silently."]
    return lines


def _fields(schema: Mapping[str, Any], prefix: str) -> Iterator[tuple[str, str, bool, str]]:
    required = set(schema.get("required", ()))
    for name, sub in schema.get("properties", {}).items():
        full = f"{prefix}{name}"
        yield full, describe_type(sub), name in required, sub.get("description", "")
        if sub.get("type") == "object" and "properties" in sub:
            yield from _fields(sub, f"{full}.")


def describe_type(schema: Mapping[str, Any]) -> str:
    """A schema as a short phrase: `integer, 1 to 1000`, `array of string`, `Error`."""
    if "$ref" in schema:
        return schema["$ref"].rsplit("/", 1)[-1]
    for key in ("oneOf", "anyOf"):
        if key in schema:
            return " or ".join(describe_type(s) for s in schema[key])
    kind = schema.get("type", "any")
    if isinstance(kind, list):
        kind = " or ".join(kind)
    if kind == "array":
        kind = f"array of {describe_type(schema.get('items', {}))}"
    facts: list[str] = []
    if "enum" in schema:
        facts.append("one of " + ", ".join(code(str(v), cell=True) for v in schema["enum"]))
    low, high = schema.get("minimum"), schema.get("maximum")
    if low is not None and high is not None:
        facts.append(f"{low} to {high}")
    elif low is not None:
        facts.append(f"at least {low}")
    elif high is not None:
        facts.append(f"at most {high}")
    if "default" in schema:
        facts.append(f"default {code(str(schema['default']), cell=True)}")
    return ", ".join([kind, *facts])


def _responses(responses: Mapping[str, Any]) -> Iterator[str]:
    """One list item per status (a list, not a table: a page of operations stays light)."""
    for status, response in sorted(responses.items()):
        contents = []
        for media, content in response.get("content", {}).items():
            ref = content.get("schema", {}).get("$ref", "")
            if ref.endswith("/Error"):
                contents.append(f"[error]({ERRORS_LINK}) as {code(media)}")
            else:
                contents.append(code(media))
        text = inline(response.get("description", ""))
        what = f" ({', '.join(contents)})" if contents else ""
        yield f"- **{status}**: {text}{what}"


def _yes(flag: bool) -> str:
    return "yes" if flag else "no"
