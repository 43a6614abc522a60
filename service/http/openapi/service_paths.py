"""The paths of this document, its page, the health check, the JS client and the pages."""

from __future__ import annotations

from service.config import UiSettings
from service.http.openapi.build import Json, content, operation, ref, response
from service.http.ui import CLIENT_PATH, PAGES, PAGES_PREFIX, asset_names


def static_file(description: str, *media_types: str) -> Json:
    """A file served with an ETag: 200 with its body, or 304 to an If-None-Match that holds."""
    return {"200": {"description": description,
                    "content": {media: {"schema": {"type": "string"}} for media in media_types}},
            "304": {"description": "Unchanged since the ETag sent."}}


def named_file(op: Json, parameter: str, names: list[str]) -> Json:
    """`op` on a path whose {parameter} is one of `names`."""
    return {"get": {**op, "parameters": [{"name": parameter, "in": "path", "required": True,
                                          "schema": {"type": "string", "enum": names}}]}}


def service_paths(ui: UiSettings) -> Json:
    """This document, its page, the health check, the client and (when on) the pages."""
    html = {"200": {"description": "A page rendering this document.",
                    "content": content({"type": "string"}, "text/html")}}
    health = {"200": response("Database and Redis answer.", ref("schemas", "Health")),
              "503": response("A backing service cannot be reached.", ref("schemas", "Detail"))}
    module = static_file("The ES module; `ETag` given, `If-None-Match` answered 304.",
                         "text/javascript")
    paths: Json = {
        CLIENT_PATH: {"get": operation(
            "getClient", "The JS client",
            "authsvc's browser client (clients/js in the repository), importable with no "
            "bundler; pages on the origins in [cors] allow_origins may import it.", module,
            errors=("NotFound",), tag="browser")},
        "/api/v1/openapi.json": {"get": operation(
            "getOpenApi", "This document", "OpenAPI 3.1, reflecting the running configuration.",
            {"200": response("The document.", {"type": "object"})}, tag="docs")},
        "/api/v1/docs": {"get": operation("getDocs", "API documentation page",
                                          "Renders this document.", html, tag="docs")},
        "/healthz": {"get": operation("getHealth", "Health check",
                                      "Checks the database and Redis.", health, tag="health")},
    }
    if ui.enabled:
        page = static_file("The page (strict CSP: its own scripts and styles only).",
                           "text/html")
        paths[PAGES_PREFIX + "{page}"] = named_file(operation(
            "getPage", "A hosted page ([ui] enabled)",
            "Sign in, sign up, forgot and reset password, verify email, \"this wasn't me\", "
            "profile, sessions. Links carry their token in the URL fragment "
            "(`/auth/reset#token=...`), which never reaches a server.",
            page, errors=("NotFound",), tag="browser"), "page", list(PAGES))
        asset = static_file("A script or stylesheet of the pages.", "text/javascript", "text/css")
        paths[PAGES_PREFIX + "assets/{name}"] = named_file(operation(
            "getPageAsset", "A file of the hosted pages ([ui] enabled)",
            "The pages' own scripts and stylesheet.", asset, errors=("NotFound",),
            tag="browser"), "name", asset_names())
    return paths

