"""`/v1/config`: the config in force, live reload, and validation of a candidate file."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from axd.api.inputs import json_body
from axd.api.registry import RouteTable
from axd.api.render import json_response
from axd.config import schema as config_mod
from axd.config.schema import ConfigError
from axd.daemon.services import SERVICES

routes = RouteTable()

VALIDATE_BODY: dict[str, Any] = {
    "type": "object",
    "properties": {
        "text": {"type": "string", "description": "TOML to check; omit to dry-run a reload"},
        "name": {"type": "string", "description": "file name used in messages"},
    },
    "additionalProperties": False,
}


@routes.add(
    "GET",
    "/v1/config",
    "Every setting in force, where it came from, and the files.",
    responses={200: "config document"},
)
async def get_config(request: web.Request) -> web.Response:
    live = request.app[SERVICES].config
    cfg = live.current
    return json_response(
        {
            "values": {key: cfg.display(key) for key in cfg.values},
            "sources": dict(cfg.sources),
            "files": list(cfg.files),
            "user_file": live.user_file,
            "options": [
                {
                    "key": o.key,
                    "kind": o.kind,
                    "default": o.default,
                    "doc": o.doc,
                    "env": o.env_name,
                    **({"choices": list(o.choices)} if o.choices else {}),
                }
                for o in config_mod.OPTIONS
            ],
        }
    )


@routes.add(
    "POST",
    "/v1/config/reload",
    "Re-read the config file and environment; apply it.",
    responses={
        200: "applied; lists the changed keys",
        422: "the new config is invalid; the old one stays in force",
    },
)
async def reload_config(request: web.Request) -> web.Response:
    services = request.app[SERVICES]
    await json_body(request, {"type": "object", "additionalProperties": False})
    changed = services.config.reload("api")
    return json_response({"changed": changed, "files": list(services.config.current.files)})


SET_BODY: dict[str, Any] = {
    "type": "object",
    "properties": {
        "key": {"type": "string", "description": "dotted key, e.g. codeintel.bm25.k1"},
        "value": {"type": "string", "description": "the value as written in TOML or plain"},
    },
    "required": ["key", "value"],
    "additionalProperties": False,
}


@routes.add(
    "POST",
    "/v1/config/set",
    "Write one key to the user config file (comments kept) and reload.",
    body=SET_BODY,
    responses={200: "written and applied", 422: "unknown key or invalid value"},
)
async def set_config(request: web.Request) -> web.Response:
    services = request.app[SERVICES]
    body = await json_body(request, SET_BODY)
    return json_response(services.config.set_key(body["key"], body["value"]))


@routes.add(
    "POST",
    "/v1/config/validate",
    "Check a TOML document (or, with no text, the files a reload would read).",
    body=VALIDATE_BODY,
    responses={200: "`valid` and the list of problems"},
)
async def validate_config(request: web.Request) -> web.Response:
    services = request.app[SERVICES]
    body = await json_body(request, VALIDATE_BODY)
    if "text" in body:
        name = body.get("name") or "<text>"
        problems = config_mod.validate_text(body["text"], name)
    else:
        name = services.config.user_file or "<defaults>"
        try:
            services.config.load_fresh()
            problems = []
        except ConfigError as exc:
            problems = exc.problems
    return json_response(
        {
            "valid": not problems,
            "name": name,
            "problems": [p.as_dict() for p in problems],
        }
    )
