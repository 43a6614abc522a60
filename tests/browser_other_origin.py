"""A page on another origin (http://127.0.0.1:PORT, while the sites are http://localhost:...)
that imports the client served by authsvc and, given a user, signs in with it: what an app
on its own domain does with no bundler."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

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


class PageHandler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(PAGE)))
        self.end_headers()
        self.wfile.write(PAGE)

    def log_message(self, format: str, *args: object) -> None:
        pass  # quiet: the test reports what matters


@contextlib.contextmanager
def other_origin() -> Iterator[str]:
    """The page served on 127.0.0.1 and a free port, until the block ends; its origin."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), PageHandler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)
