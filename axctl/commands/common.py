"""Pieces every command shares: the --json flag and the session it configures."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import click

from axctl.session import Session

F = TypeVar("F", bound=Callable[..., Any])


def json_option(func: F) -> F:
    """`--json`: machine-readable output on stdout (errors too, as {"error": ...})."""

    def remember(ctx: click.Context, _param: click.Parameter, value: bool) -> bool:
        session = ctx.find_object(Session)
        if session is not None:
            session.as_json = value
        return value

    return click.option(
        "--json",
        "as_json",
        is_flag=True,
        is_eager=True,
        callback=remember,
        expose_value=True,
        help="Print JSON instead of text.",
    )(func)


pass_session = click.make_pass_decorator(Session)
