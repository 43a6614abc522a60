"""CORS for the origins listed in [cors], around the whole stack so even a 500 carries it."""

from __future__ import annotations

from typing import Any

from starlette.applications import Starlette
from starlette.datastructures import Headers
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware as _StarletteCORS
from starlette.responses import Response
from starlette.types import ASGIApp

from service.config import CorsSettings
from service.http.web import API_HEADERS


class CORSMiddleware(_StarletteCORS):
    """Starlette's, plus API_HEADERS on the preflight answers it makes without the app."""

    def preflight_response(self, request_headers: Headers) -> Response:
        response = super().preflight_response(request_headers)
        response.headers.update(API_HEADERS)
        return response


class CorsOutermost(Starlette):
    """Starlette, with `outer` middleware around its whole stack. Starlette puts the 500
    handler (ServerErrorMiddleware) outside every user middleware, so a 500 carried no CORS
    headers and a browser app saw only an opaque network error instead of the answer."""

    def __init__(self, outer: list[Middleware], **options: Any) -> None:
        self._outer = outer
        super().__init__(**options)

    def build_middleware_stack(self) -> ASGIApp:
        app = super().build_middleware_stack()
        for cls, args, kwargs in reversed(self._outer):
            app = cls(app, *args, **kwargs)
        return app


def cors_middleware(cors: CorsSettings) -> list[Middleware]:
    """CORS only for the origins listed in [cors] allow_origins; none listed: no CORS at all."""
    if not cors.allow_origins:
        return []
    return [Middleware(CORSMiddleware, allow_origins=list(cors.allow_origins),
                       allow_credentials=cors.allow_credentials, max_age=cors.max_age,
                       allow_methods=["GET", "POST", "PATCH", "DELETE", "OPTIONS"],
                       allow_headers=["Authorization", "Content-Type"],
                       expose_headers=["Retry-After"])]

