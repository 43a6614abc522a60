"""A page on another origin (http://127.0.0.1:PORT, while the sites are http://localhost:...)
that imports the client served by authsvc and, given a user, signs in with it: what an app
on its own domain does with no bundler. Tests may serve more files there (the React app that
test_browser_react.py builds): the origin is in the rotation-off site's CORS list."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

# The query string says which module to import and whom to sign in; the title says how it went.
PAGE = b"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>starting</title>
<script type="module">
const params = new URLSearchParams(location.search);
try {
  const { createAuthClient } = await import(params.get("module"));
  const client = createAuthClient({ storage: "memory" });
  document.title = "imported";
  if (params.get("user")) {
    await client.login(params.get("user"), params.get("password"));
    document.title = "signed in as " + (await client.getProfile()).username;
  }
} catch (error) {
  document.title = "failed: " + error;
}
</script></head><body><main><h1>Another origin</h1></main></body></html>
"""


@dataclass
class OtherOrigin:
    """The origin, and the files served there besides the page: path -> (type, body)."""

    url: str
    files: dict[str, tuple[str, bytes]] = field(default_factory=dict)


class FilesServer(ThreadingHTTPServer):
    files: dict[str, tuple[str, bytes]]


class PageHandler(BaseHTTPRequestHandler):
    server: FilesServer

    def do_GET(self) -> None:
        content_type, body = self.server.files.get(
            urlsplit(self.path).path, ("text/html; charset=utf-8", PAGE))
        self.send_response(200)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass  # quiet: the test reports what matters


@contextlib.contextmanager
def other_origin() -> Iterator[OtherOrigin]:
    """The page served on 127.0.0.1 and a free port, until the block ends."""
    server = FilesServer(("127.0.0.1", 0), PageHandler)
    served = OtherOrigin(f"http://127.0.0.1:{server.server_address[1]}")
    server.files = served.files
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield served
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)
