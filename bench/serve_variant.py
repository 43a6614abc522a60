"""Serve authsvc for a benchmark, as it is ('with') or with one part taken out.

Each variant exists only to measure what that part costs (bench/ab.py); never use them for
anything else.
- without: no per-request session check (the pipelined HGETALL + HGET becomes the HGETALL).
- nopool: no reuse of SQLite connections (databases' own backend: one per query).
Usage: python bench/serve_variant.py {with|without|nopool} PORT   (settings from AUTH_* env)
"""

from __future__ import annotations

import sys

import uvicorn
from databases import Database

from service import app as app_module
from service.app import create_app
from service.config import load_settings
from service.http.server import uvicorn_options
from service.store.cache import parse_row
from service.store.sessions import SessionStore, UserAndSession


async def _user_only(self: SessionStore, user_id: int, sid: str) -> UserAndSession:
    user, deleted = parse_row(user_id, await self.redis.execute("HGETALL",
                                                                self._keys.user(user_id)))
    return UserAndSession(user, deleted, True)


def main() -> None:
    variant, port = sys.argv[1], int(sys.argv[2])
    if variant == "without":
        SessionStore.user_and_alive = _user_only  # type: ignore[method-assign]
    elif variant == "nopool":
        app_module.SQLDatabase = Database  # type: ignore[misc]
    elif variant != "with":
        raise SystemExit(f"unknown variant {variant!r}")
    settings = load_settings()  # the protocol and limits `authsvc serve` runs
    uvicorn.run(create_app(settings, freeze_heap=True), host="127.0.0.1", port=port,
                log_level="warning", access_log=False, loop="uvloop",
                **uvicorn_options(settings.server))


if __name__ == "__main__":
    main()
