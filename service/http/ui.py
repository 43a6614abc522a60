"""The browser side: the JS client module (always served) and, behind [ui] enabled, the hosted
pages under /auth/. Static files read once, each answered with an ETag so a browser
revalidates for a 304 instead of downloading them again."""

from __future__ import annotations

import hashlib
import re
from functools import cache
from pathlib import Path

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from service.config import UiSettings
from service.http.web import API_HEADERS

HERE = Path(__file__).parent
# clients/js/src/authsvc.js, linked into the package so a wheel carries it.
CLIENT_MODULE = HERE / "client" / "authsvc.js"
PAGES_DIR = HERE / "ui"
CLIENT_PATH = "/api/v1/client/authsvc.js"
PAGES_PREFIX = "/auth/"
# URL -> file; the pages' links and the email templates use these names.
PAGES = ("signin", "signup", "forgot", "reset", "verify", "not-me", "profile", "sessions")
ASSET_NAME = re.compile(r"[a-z0-9][a-z0-9-]*\.(js|css)")
MEDIA_TYPES = {"js": "text/javascript; charset=utf-8", "css": "text/css; charset=utf-8",
               "html": "text/html; charset=utf-8"}

# The pages run only their own files and the client, and talk only to this origin: no inline
# script or style, no framing, nothing sent on to other sites. Tokens travel in the URL
# fragment, which never reaches a server; no-referrer keeps even the path to ourselves.
PAGE_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; script-src 'self'; style-src 'self'; "
                               "connect-src 'self'; img-src 'self' data:; form-action 'self'; "
                               "base-uri 'none'; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Cache-Control": "no-cache",
}
# The client is imported by pages on other origins ([cors] allow_origins adds the CORS
# headers): a script, never rendered, so the API's own headers plus revalidation.
CLIENT_HEADERS = {**API_HEADERS, "Cache-Control": "no-cache"}


class StaticFile:
    """A file's bytes and strong ETag, read once."""

    def __init__(self, path: Path) -> None:
        self.body = path.read_bytes()
        self.etag = '"' + hashlib.sha256(self.body).hexdigest()[:32] + '"'
        self.media_type = MEDIA_TYPES[path.suffix.lstrip(".")]

    def answer(self, request: Request, headers: dict[str, str]) -> Response:
        tagged = {**headers, "ETag": self.etag}
        tags = _tags(request.headers.get("if-none-match", ""))
        if self.etag in tags or "*" in tags:  # RFC 9110 13.1.2: "*" matches any current file
            return Response(status_code=304, headers=tagged)
        return Response(self.body, media_type=self.media_type, headers=tagged)


def _tags(header: str) -> set[str]:
    return {tag.strip().removeprefix("W/") for tag in header.split(",")}


@cache
def _files() -> dict[str, StaticFile]:
    """Every file served, by its URL name, read on first use. A request's name is only looked
    up here, never handed to the file system: a miss costs nothing and is not remembered (a
    cache of misses would grow by one entry per name tried), and a name too long for the file
    system is a plain 404, not an OSError."""
    sources = {CLIENT_PATH: CLIENT_MODULE, **{name: PAGES_DIR / f"{name}.html" for name in PAGES},
               **{f"assets/{path.name}": path for path in PAGES_DIR.iterdir()
                  if ASSET_NAME.fullmatch(path.name)}}
    return {name: StaticFile(path) for name, path in sources.items() if path.is_file()}


def asset_names() -> list[str]:
    """The pages' scripts and stylesheet, as /auth/assets/{name} serves them."""
    return sorted(name.removeprefix("assets/") for name in _files()
                  if name.startswith("assets/"))


def _existing(name: str) -> StaticFile:
    found = _files().get(name)
    if found is None:
        raise HTTPException(404)
    return found


async def client_module(request: Request) -> Response:
    return _existing(CLIENT_PATH).answer(request, CLIENT_HEADERS)


async def page(request: Request) -> Response:
    return _existing(request.path_params["page"]).answer(request, PAGE_HEADERS)


async def asset(request: Request) -> Response:
    return _existing("assets/" + request.path_params["name"]).answer(request, PAGE_HEADERS)


async def to_signin(request: Request) -> Response:
    return Response(status_code=307, headers={**PAGE_HEADERS,
                                              "Location": PAGES_PREFIX + "signin"})


def routes(ui: UiSettings) -> list[BaseRoute]:
    """The client module, and the pages when [ui] enabled is on."""
    served: list[BaseRoute] = [Route(CLIENT_PATH, client_module, methods=["GET"])]
    if ui.enabled:
        served += [
            Route(PAGES_PREFIX, to_signin, methods=["GET"], include_in_schema=False),
            Route(PAGES_PREFIX.rstrip("/"), to_signin, methods=["GET"], include_in_schema=False),
            Route(PAGES_PREFIX + "assets/{name}", asset, methods=["GET"]),
            Route(PAGES_PREFIX + "{page}", page, methods=["GET"]),
        ]
    return served
