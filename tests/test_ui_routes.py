"""Issue 11 on the server side: the JS client module (always served, importable from the
[cors] origins), and the hosted pages under /auth/ behind [ui] enabled, each with a strict
CSP, no inline code, and an ETag. The pages' behaviour is tested in a real browser
(test_browser.py)."""

from __future__ import annotations

import asyncio
import re
import tracemalloc
from pathlib import Path

import httpx
import pytest

from service.app import create_app
from service.config import Settings
from service.http import ui

ROOT = Path(__file__).resolve().parent.parent
CLIENT = ROOT / "clients" / "js" / "src" / "authsvc.js"


def get(settings: Settings, url: str, method: str = "GET",
        headers: dict[str, str] | None = None) -> httpx.Response:
    """One request through the whole app (middleware included), no server, no lifespan."""
    async def send() -> httpx.Response:
        transport = httpx.ASGITransport(app=create_app(settings))
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            return await client.request(method, url, headers=headers)

    return asyncio.run(send())


ON = Settings().replace(ui={"enabled": True})


def test_the_client_module_is_the_repository_file_with_an_etag() -> None:
    answer = get(Settings(), ui.CLIENT_PATH)
    assert answer.status_code == 200
    assert answer.headers["content-type"] == "text/javascript; charset=utf-8"
    assert answer.content == CLIENT.read_bytes()
    assert answer.headers["x-content-type-options"] == "nosniff"
    again = get(Settings(), ui.CLIENT_PATH, headers={"If-None-Match": answer.headers["etag"]})
    assert again.status_code == 304 and again.content == b""
    other = get(Settings(), ui.CLIENT_PATH, headers={"If-None-Match": '"stale"'})
    assert other.status_code == 200
    listed = get(Settings(), ui.CLIENT_PATH,
                 headers={"If-None-Match": f'"stale", W/{answer.headers["etag"]}'})
    assert listed.status_code == 304
    assert get(Settings(), ui.CLIENT_PATH, headers={"If-None-Match": "*"}).status_code == 304
    head = get(Settings(), ui.CLIENT_PATH, "HEAD")
    assert head.status_code == 200 and head.content == b""


def test_the_client_module_may_be_imported_only_from_the_configured_origins() -> None:
    settings = Settings().replace(cors={"allow_origins": ("https://app.example",)})
    mine = get(settings, ui.CLIENT_PATH, headers={"Origin": "https://app.example"})
    assert mine.headers["access-control-allow-origin"] == "https://app.example"
    theirs = get(settings, ui.CLIENT_PATH, headers={"Origin": "https://evil.example"})
    assert "access-control-allow-origin" not in theirs.headers


@pytest.mark.parametrize("path", ["/auth/signin", "/auth/", "/auth/assets/ui.css"])
def test_the_pages_are_off_unless_ui_is_enabled(path: str) -> None:
    assert get(Settings(), path).status_code == 404


@pytest.mark.parametrize("page", ui.PAGES)
def test_every_page_is_served_with_a_strict_policy(page: str) -> None:
    answer = get(ON, f"/auth/{page}")
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"] == "text/html; charset=utf-8"
    policy = answer.headers["content-security-policy"]
    assert "script-src 'self';" in policy and "'unsafe-inline'" not in policy
    assert "frame-ancestors 'none'" in policy and "default-src 'none'" in policy
    assert answer.headers["referrer-policy"] == "no-referrer"
    assert answer.headers["x-content-type-options"] == "nosniff"
    assert get(ON, f"/auth/{page}", headers={"If-None-Match": answer.headers["etag"]}
               ).status_code == 304


def html_files() -> list[Path]:
    return sorted(ui.PAGES_DIR.glob("*.html"))


def test_the_pages_folder_holds_the_pages_and_nothing_unserved() -> None:
    assert {p.stem for p in html_files()} == set(ui.PAGES)
    for path in ui.PAGES_DIR.iterdir():
        assert path.suffix == ".html" or ui.ASSET_NAME.fullmatch(path.name), path.name


@pytest.mark.parametrize("page", ui.PAGES)
def test_a_page_has_no_inline_code_and_every_file_it_names_is_served(page: str) -> None:
    """The CSP would block inline code: a page that relied on it would be broken."""
    html = (ui.PAGES_DIR / f"{page}.html").read_text()
    assert not re.search(r"<script(?![^>]*\bsrc=)[^>]*>", html), "inline <script>"
    assert not re.search(r"\sstyle\s*=", html), "style attribute"
    assert not re.search(r"\son[a-z]+\s*=", html), "event-handler attribute"
    assert "<style" not in html
    referenced = re.findall(r'(?:src|href)="(/auth/assets/[^"]+|/api/v1/client/[^"]+)"', html)
    assert referenced, "a page with none of its own files"
    for url in referenced:
        assert get(ON, url).status_code == 200, url


@pytest.mark.parametrize("name", ["../app.py", "..%2Fapp.py", "ui.html", "x.py", "UI.CSS",
                                  ".hidden.js", "missing.js"])
def test_only_the_pages_own_scripts_and_styles_are_served(name: str) -> None:
    assert get(ON, f"/auth/assets/{name}").status_code == 404


def test_unknown_pages_are_404_and_the_folder_leads_to_sign_in() -> None:
    assert get(ON, "/auth/admin").status_code == 404
    assert get(ON, "/auth/signin.html").status_code == 404
    for path in ("/auth/", "/auth"):
        answer = get(ON, path)
        assert answer.status_code == 307 and answer.headers["location"] == "/auth/signin"


def test_an_asset_name_too_long_for_the_file_system_is_404_not_an_outage() -> None:
    """A name past the file system's 255 bytes made is_file() raise ENAMETOOLONG, which the
    error handler calls a backing-service outage (503, and a warning in the log per request)."""
    assert get(ON, f"/auth/assets/{'a' * 300}.js").status_code == 404


def test_missing_asset_names_leave_nothing_behind_in_memory() -> None:
    """Every name an attacker tries must not be remembered: a cache of misses grows without
    bound, one entry per request."""
    def held_by_ui() -> int:
        snapshot = tracemalloc.take_snapshot().filter_traces(
            [tracemalloc.Filter(True, ui.__file__, all_frames=True)])
        return sum(stat.size for stat in snapshot.statistics("filename"))

    async def ask(names: range) -> None:
        transport = httpx.ASGITransport(app=create_app(ON))
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            for n in names:
                assert (await client.get(f"/auth/assets/missing-{n}-{'x' * 100}.js")
                        ).status_code == 404

    tracemalloc.start(10)
    try:
        asyncio.run(ask(range(5)))  # whatever is made once, on the first requests
        before = held_by_ui()
        asyncio.run(ask(range(5, 105)))
        grown = held_by_ui() - before
    finally:
        tracemalloc.stop()
    assert grown < 10_000, f"{grown} bytes held after 100 missing names"


def test_the_document_names_exactly_the_assets_served() -> None:
    """The OpenAPI document's asset names are the folder's scripts and stylesheet, each 200."""
    doc = get(ON, "/api/v1/openapi.json").json()
    (name,) = doc["paths"]["/auth/assets/{name}"]["get"]["parameters"]
    listed = name["schema"]["enum"]
    on_disk = sorted(p.name for p in ui.PAGES_DIR.iterdir() if p.suffix in (".js", ".css"))
    assert listed == on_disk and "ui.css" in listed
    for asset in listed:
        assert get(ON, f"/auth/assets/{asset}").status_code == 200, asset
