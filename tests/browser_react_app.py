"""The React app of clients/js/test/browser/react-app.jsx (the client's React adapter on real
React and react-dom), bundled by the client's pinned esbuild into this test run's own folder
(never into the repository) and served from the other origin, whose origin the site's CORS
allows: an app on its own domain, calling authsvc on another."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlencode

from browser_other_origin import OtherOrigin
from browser_site import Site
from npm_client import CLIENT, ensure_installed, run_limited

APP_SOURCE = CLIENT / "test" / "browser" / "react-app.jsx"
BUILD_LIMIT = 60  # seconds; esbuild takes well under one
APP_PATH = "/react/"
BUNDLE_PATH = "/react/app.js"
INDEX = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>React app</title>
<script type="module" src="{BUNDLE_PATH}"></script></head>
<body><div id="root"></div></body></html>
""".encode()


def build_bundle(out: Path) -> bytes:
    """React's development build (its warnings are console errors, which fail the tests)."""
    esbuild = CLIENT / "node_modules" / ".bin" / "esbuild"
    done = run_limited([str(esbuild), str(APP_SOURCE), "--bundle", "--format=esm",
                        "--jsx=automatic", "--target=es2022", "--log-level=warning",
                        '--define:process.env.NODE_ENV="development"', f"--outfile={out}"],
                       BUILD_LIMIT)
    assert done.returncode == 0, f"esbuild failed:\n{done.stdout}\n{done.stderr}"
    return out.read_bytes()


def serve_react_app(origin: OtherOrigin, build_dir: Path) -> str:
    """Installs the client's devDependencies if needed, builds the app and serves it; its URL."""
    ensure_installed()
    bundle = build_bundle(build_dir / "react-app.js")
    origin.files[BUNDLE_PATH] = ("text/javascript; charset=utf-8", bundle)
    origin.files[APP_PATH] = ("text/html; charset=utf-8", INDEX)
    return origin.url + APP_PATH


def app_url(app: str, site: Site, view: str) -> str:
    """The app, in one of its views, calling `site`'s API."""
    return f"{app}?{urlencode({'api': site.url + '/api/v1/auth/', 'view': view})}"
