"""The paths of this document, its page and the health check."""

from __future__ import annotations

from service.http.openapi.build import Json, content, operation, ref, response


def service_paths() -> Json:
    """This document, its page and the health check."""
    html = {"200": {"description": "A page rendering this document.",
                    "content": content({"type": "string"}, "text/html")}}
    health = {"200": response("Database and Redis answer.", ref("schemas", "Health")),
              "503": response("A backing service cannot be reached.", ref("schemas", "Detail"))}
    return {
        "/api/v1/openapi.json": {"get": operation(
            "getOpenApi", "This document", "OpenAPI 3.1, reflecting the running configuration.",
            {"200": response("The document.", {"type": "object"})}, tag="docs")},
        "/api/v1/docs": {"get": operation("getDocs", "API documentation page",
                                          "Renders this document.", html, tag="docs")},
        "/healthz": {"get": operation("getHealth", "Health check",
                                      "Checks the database and Redis.", health, tag="health")},
    }

