"""The OpenAPI document and the self-contained page that renders it."""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from service.http.openapi import document
from service.http.web import API_HEADERS

STATIC = Path(__file__).with_name("static")
ASSETS = {"docs.js": "text/javascript", "docs.css": "text/css"}
# The page runs only its own script and style: no inline code, nothing from elsewhere.
PAGE_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; script-src 'self'; style-src 'self'; "
                               "connect-src 'self'; img-src 'self'; base-uri 'none'; "
                               "form-action 'none'; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}


@cache
def _static(name: str) -> bytes:
    return (STATIC / name).read_bytes()


async def openapi_json(request: Request) -> Response:
    """The OpenAPI document for the app's settings, built on first use."""
    state = request.app.state
    body: bytes | None = getattr(state, "openapi_json", None)
    if body is None:  # once per app: the settings never change while it runs
        body = json.dumps(document(state.settings), ensure_ascii=False).encode()
        state.openapi_json = body
    return Response(body, media_type="application/json", headers=API_HEADERS)


async def docs_page(request: Request) -> Response:
    """The page that renders the document; all its code comes from the assets below."""
    return Response(_static("docs.html"), media_type="text/html", headers=PAGE_HEADERS)


async def asset(request: Request) -> Response:
    """One of the page's own files; any other name is a 404."""
    name = request.path_params["name"]
    if name not in ASSETS:
        raise HTTPException(404)
    return Response(_static(name), media_type=ASSETS[name], headers=PAGE_HEADERS)


DOCS = "/api/v1/docs"


async def to_docs(request: Request) -> Response:
    """`/api/v1/docs/` for good (308), and `/` until it serves pages of its own (307)."""
    status = 307 if request.url.path == "/" else 308
    return Response(b"", status, headers={**API_HEADERS, "Location": DOCS})


def routes() -> list[BaseRoute]:
    """The routes serving /api/v1/openapi.json, /api/v1/docs and the page's assets."""
    return [
        Route("/api/v1/openapi.json", openapi_json, methods=["GET"]),
        Route(DOCS, docs_page, methods=["GET"]),
        Route(DOCS + "/assets/{name}", asset, methods=["GET"], include_in_schema=False),
        Route(DOCS + "/", to_docs, methods=["GET"], include_in_schema=False),
        Route("/", to_docs, methods=["GET"], include_in_schema=False),
    ]
