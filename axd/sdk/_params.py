"""Method parameters checked against their type hints before the method runs.

A caller sends whatever JSON it likes; a plugin method should never see `{"tag": 5}` where
it declared `tag: str | None` and fail deep inside with an AttributeError. `MethodSpec`
reads a method's signature once, at start, and `bind()` turns a call's params into
arguments or raises `InvalidParams` naming the parameter, what it expects and what came.

Understood hints: `str`, `int`, `float`, `bool`, `None`, `Any`, unions (`X | None`),
`Literal[...]`, `list[X]`, `tuple[X, ...]`, `dict[str, X]`, and `Annotated[X, Range(...),
Length(...)]` for bounds. Any other class is passed through unchecked.
"""

from __future__ import annotations

import inspect
import json
import math
import types
import typing
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any


class InvalidParams(Exception):
    """Raise it from a method for a check the type hints cannot express; the caller gets
    an `invalid_params` error, like a type mismatch."""

    def __init__(
        self, param: str, expected: str, value: Any = None, message: str | None = None
    ) -> None:
        self.param, self.expected, self.value = param, expected, value
        super().__init__(message or f"parameter {param!r} must be {expected}, got {_show(value)}")


@dataclass(frozen=True)
class Range:
    """Bounds of a number: `Annotated[int, Range(1, 1000)]` (both ends included)."""

    min: float | None = None
    max: float | None = None

    def problem(self, value: Any) -> str | None:
        if self.min is not None and value < self.min:
            return f"at least {_num(self.min)}"
        if self.max is not None and value > self.max:
            return f"at most {_num(self.max)}"
        return None

    def describe(self) -> str:
        if self.min is not None and self.max is not None:
            return f"{_num(self.min)}..{_num(self.max)}"
        return f">= {_num(self.min)}" if self.min is not None else f"<= {_num(self.max)}"


@dataclass(frozen=True)
class Length:
    """Bounds of a string's or list's length: `Annotated[str, Length(1, 200)]`."""

    min: int = 0
    max: int | None = None

    def problem(self, value: Any) -> str | None:
        if len(value) < self.min:
            return f"at least {self.min} long"
        if self.max is not None and len(value) > self.max:
            return f"at most {self.max} long"
        return None

    def describe(self) -> str:
        return f"length {self.min}..{self.max if self.max is not None else ''}"


Constraint = Range | Length


@dataclass(frozen=True)
class ParamSpec:
    name: str
    hint: Any
    required: bool
    default: Any
    constraints: tuple[Constraint, ...]

    def check(self, value: Any) -> None:
        if not _fits(value, self.hint):
            raise InvalidParams(self.name, type_name(self.hint), value)
        if value is None:
            return
        for constraint in self.constraints:
            problem = constraint.problem(value)
            if problem is not None:
                raise InvalidParams(self.name, problem, value)

    def describe(self) -> dict[str, Any]:
        doc: dict[str, Any] = {
            "name": self.name,
            "type": type_name(self.hint),
            "required": self.required,
        }
        if not self.required:
            doc["default"] = jsonable(self.default)
        if self.constraints:
            doc["constraints"] = [c.describe() for c in self.constraints]
        return doc


@dataclass(frozen=True)
class MethodSpec:
    name: str
    doc: str
    params: tuple[ParamSpec, ...]
    extra_keywords: bool  # **kwargs: unknown names are the method's business

    @classmethod
    def of(cls, name: str, func: Callable[..., Any]) -> MethodSpec:
        signature = inspect.signature(func)
        try:
            hints = typing.get_type_hints(func, include_extras=True)
        except Exception:  # an annotation that does not resolve: check nothing, still run
            hints = {}
        params = []
        extra = False
        for p in signature.parameters.values():
            if p.kind is p.VAR_KEYWORD:
                extra = True
                continue
            if p.kind is p.VAR_POSITIONAL:
                continue
            hint, constraints = _unwrap(hints.get(p.name, Any))
            params.append(
                ParamSpec(
                    p.name,
                    hint,
                    p.default is p.empty,
                    None if p.default is p.empty else p.default,
                    constraints,
                )
            )
        doc = inspect.getdoc(func) or ""
        return cls(name, doc.split("\n\n")[0].replace("\n", " "), tuple(params), extra)

    def bind(self, params: Any) -> dict[str, Any]:
        """Keyword arguments for the method from a call's params: an object (by name), a
        list (in order), a single value (the first parameter) or nothing."""
        if params is None:
            given: dict[str, Any] = {}
        elif isinstance(params, dict):
            given = dict(params)
        elif isinstance(params, list):
            if len(params) > len(self.params):
                raise InvalidParams(
                    "params",
                    f"at most {len(self.params)} positional values ({self.signature()})",
                    params,
                    f"{self.name} takes at most {len(self.params)} "
                    f"parameters ({self.signature()}), got {len(params)}",
                )
            given = {p.name: v for p, v in zip(self.params, params, strict=False)}
        elif self.params:
            given = {self.params[0].name: params}
        else:
            raise InvalidParams(
                "params", "nothing", params, f"{self.name} takes no parameters, got {_show(params)}"
            )
        known = {p.name for p in self.params}
        unknown = sorted(set(given) - known)
        if unknown and not self.extra_keywords:
            raise InvalidParams(
                unknown[0],
                "not a parameter",
                given[unknown[0]],
                f"{self.name} has no parameter {unknown[0]!r}; it takes "
                f"{self.signature() or 'no parameters'}",
            )
        for p in self.params:
            if p.name in given:
                p.check(given[p.name])
        for p in self.params:
            if p.required and p.name not in given:
                raise InvalidParams(
                    p.name,
                    type_name(p.hint),
                    None,
                    f"parameter {p.name!r} ({type_name(p.hint)}) is required",
                )
        return given

    def signature(self) -> str:
        parts = []
        for p in self.params:
            text = f"{p.name}: {type_name(p.hint)}"
            if p.constraints:
                text += " (" + ", ".join(c.describe() for c in p.constraints) + ")"
            if not p.required:
                text += f" = {json.dumps(jsonable(p.default))}"
            parts.append(text)
        return ", ".join(parts)

    def describe(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "doc": self.doc,
            "signature": self.signature(),
            "params": [p.describe() for p in self.params],
        }


def _unwrap(hint: Any) -> tuple[Any, tuple[Constraint, ...]]:
    """`Annotated[X, Range(...)]` -> (X, (Range(...),)); also inside `Optional[...]`."""
    if typing.get_origin(hint) is typing.Annotated:
        base, *extras = typing.get_args(hint)
        inner, more = _unwrap(base)
        return inner, tuple(e for e in extras if isinstance(e, Range | Length)) + more
    if _is_union(hint):
        arms = [_unwrap(a) for a in typing.get_args(hint)]
        constraints = tuple(c for _, cs in arms for c in cs)
        if constraints:
            return typing.Union[tuple(a for a, _ in arms)], constraints  # noqa: UP007
    return hint, ()


def _is_union(hint: Any) -> bool:
    return typing.get_origin(hint) in (typing.Union, types.UnionType)


def _fits(value: Any, hint: Any) -> bool:
    if hint is Any or hint is inspect.Parameter.empty:
        return True
    if hint is None or hint is type(None):
        return value is None
    if _is_union(hint):
        return any(_fits(value, arm) for arm in typing.get_args(hint))
    origin = typing.get_origin(hint)
    if origin is typing.Literal:
        return any(value == a and type(value) is type(a) for a in typing.get_args(hint))
    if hint is bool:
        return isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if hint is float:
        return (
            isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
        )
    if hint is str:
        return isinstance(value, str)
    container = origin or hint
    args = typing.get_args(hint)
    if container in (list, tuple, Sequence) and container is not str:
        if not isinstance(value, list):
            return False
        item = args[0] if args else Any
        return all(_fits(v, item) for v in value)
    if container in (dict, Mapping):
        if not isinstance(value, dict):
            return False
        item = args[1] if len(args) == 2 else Any
        return all(isinstance(k, str) and _fits(v, item) for k, v in value.items())
    return True  # a class we do not model: the method takes what JSON gives


_NAMES = {
    str: "a string",
    int: "an integer",
    float: "a number",
    bool: "a boolean",
    type(None): "null",
    None: "null",
}


def type_name(hint: Any) -> str:
    """What a parameter expects, in words: `a string or null`, `one of 'a', 'b'`."""
    if hint is Any or hint is inspect.Parameter.empty:
        return "any value"
    if hint in _NAMES:
        return _NAMES[hint]
    if _is_union(hint):
        return " or ".join(type_name(a) for a in typing.get_args(hint))
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if origin is typing.Literal:
        return "one of " + ", ".join(json.dumps(a) for a in args)
    if (origin or hint) in (list, tuple, Sequence):
        return f"a list of {_plural(args[0])}" if args and args[0] is not Any else "a list"
    if (origin or hint) in (dict, Mapping):
        return "an object"
    return getattr(hint, "__name__", str(hint))


def _plural(hint: Any) -> str:
    name = type_name(hint)
    for article in ("an ", "a "):
        if name.startswith(article):
            return name[len(article) :] + "s"
    return name


def _show(value: Any) -> str:
    if value is None:
        return "null"
    kind = {
        bool: "a boolean",
        int: "an integer",
        float: "a number",
        str: "a string",
        list: "a list",
        dict: "an object",
    }.get(type(value), type(value).__name__)
    text = json.dumps(jsonable(value))
    if len(text) > 60:
        text = text[:57] + "..."
    return f"{text} ({kind})"


def jsonable(value: Any) -> Any:
    try:
        json.dumps(value, allow_nan=False)
        return value
    except (TypeError, ValueError):
        return repr(value)


def _num(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else str(value)
