"""The paths of this document, its page, the health check, the JS client and the pages."""

from __future__ import annotations

from service.config import UiSettings
from service.http.openapi.build import Json, content, operation, ref, response
from service.http.ui import CLIENT_PATH, PAGES, PAGES_PREFIX, asset_names


def service_paths(ui: UiSettings) -> Json:
    """This document, its page, the health check, the client and (when on) the pages."""
    html = {"200": {"description": "A page rendering this document.",
                    "content": content({"type": "string"}, "text/html")}}
    health = {"200": response("Database and Redis answer.", ref("schemas", "Health")),
              "503": response("A backing service cannot be reached.", ref("schemas", "Detail"))}
    module = {"200": {"description": "The ES module; `ETag` given, `If-None-Match` answered "
                                     "304.",
                      "content": content({"type": "string"}, "text/javascript")},
              "304": {"description": "Unchanged since the ETag sent."}}
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
        page = {"200": {"description": "The page (strict CSP: its own scripts and styles only).",
                        "content": content({"type": "string"}, "text/html")},
                "304": {"description": "Unchanged since the ETag sent."}}
        name = {"name": "page", "in": "path", "required": True,
                "schema": {"type": "string", "enum": list(PAGES)}}
        paths[PAGES_PREFIX + "{page}"] = {"get": {
            **operation("getPage", "A hosted page ([ui] enabled)",
                        "Sign in, sign up, forgot and reset password, verify email, \"this "
                        "wasn't me\", profile, sessions. Links carry their token in the URL "
                        "fragment (`/auth/reset#token=...`), which never reaches a server.",
                        page, errors=("NotFound",), tag="browser"),
            "parameters": [name]}}
        asset = {"200": {"description": "A script or stylesheet of the pages.",
                         "content": {"text/javascript": {"schema": {"type": "string"}},
                                     "text/css": {"schema": {"type": "string"}}}},
                 "304": {"description": "Unchanged since the ETag sent."}}
        file = {"name": "name", "in": "path", "required": True,
                "schema": {"type": "string", "enum": asset_names()}}
        paths[PAGES_PREFIX + "assets/{name}"] = {"get": {
            **operation("getPageAsset", "A file of the hosted pages ([ui] enabled)",
                        "The pages' own scripts and stylesheet.", asset, errors=("NotFound",),
                        tag="browser"),
            "parameters": [file]}}
    return paths

