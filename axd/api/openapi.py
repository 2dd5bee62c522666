"""`GET /v1/openapi.json`, generated from the route declarations themselves."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from axd import API_VERSION, __version__
from axd.api.registry import Route, RouteTable
from axd.api.render import json_response

routes = RouteTable()

ROUTES = web.AppKey("routes", list[Route])

ERROR_SCHEMA = {
    "type": "object",
    "properties": {
        "error": {
            "type": "object",
            "properties": {
                "code": {"type": "string"},
                "message": {"type": "string"},
                "details": {"type": "object"},
            },
            "required": ["code", "message", "details"],
        }
    },
    "required": ["error"],
}


@routes.add("GET", "/v1/openapi.json", "This document.", responses={200: "OpenAPI 3.1"})
async def openapi(request: web.Request) -> web.Response:
    return json_response(build_document(request.app[ROUTES]))


def build_document(installed: list[Route]) -> dict[str, Any]:
    paths: dict[str, dict[str, Any]] = {}
    for route in installed:
        paths.setdefault(route.path, {})[route.method.lower()] = _operation(route)
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "axd local API",
            "version": __version__,
            "description": f"API version {API_VERSION}, served on the owner-only Unix socket.",
        },
        "paths": paths,
        "components": {"schemas": {"Error": ERROR_SCHEMA}},
    }


def _operation(route: Route) -> dict[str, Any]:
    media = "application/x-ndjson" if route.streams else "application/json"
    responses: dict[str, Any] = {}
    for status, text in sorted(route.responses.items()):
        if status < 400:
            responses[str(status)] = {"description": text, "content": {media: {}}}
        else:
            responses[str(status)] = _error_response(text)
    for status, text in ((400, "malformed request"), (403, "peer of another uid")):
        responses.setdefault(str(status), _error_response(text))
    op: dict[str, Any] = {
        "summary": route.summary,
        "operationId": route.handler.__name__,
        "responses": responses,
    }
    if route.params:
        op["parameters"] = [
            {
                "name": p.name,
                "in": p.location,
                "required": p.required,
                "description": p.doc,
                "schema": {"type": p.kind},
            }
            for p in route.params
        ]
    if route.body is not None:
        op["requestBody"] = {"content": {"application/json": {"schema": route.body}}}
    return op


def _error_response(text: str) -> dict[str, Any]:
    return {
        "description": text,
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
    }
