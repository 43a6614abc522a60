"""Serve authsvc for a benchmark, optionally WITHOUT the per-request session check.

The 'without' variant exists only to measure what that check costs: it replaces the
pipelined HGETALL + HGET with the HGETALL alone. Never use it for anything else.
Usage: python bench/serve_variant.py {with|without} PORT   (settings from AUTH_* env)
"""

from __future__ import annotations

import sys

import uvicorn

from service.app import create_app
from service.config import load_settings
from service.redis_wire import pairs
from service.server import uvicorn_options
from service.session_store import SessionStore


async def _user_only(self: SessionStore, user_id: int, sid: str) -> tuple[dict[str, str], bool]:
    return pairs(await self.redis.execute("HGETALL", self._user_key(user_id))), True


def main() -> None:
    variant, port = sys.argv[1], int(sys.argv[2])
    if variant == "without":
        SessionStore.user_and_alive = _user_only  # type: ignore[method-assign]
    settings = load_settings()  # the protocol and limits `authsvc serve` runs
    uvicorn.run(create_app(settings, freeze_heap=True), host="127.0.0.1", port=port,
                log_level="warning", access_log=False, loop="uvloop",
                **uvicorn_options(settings.server))


if __name__ == "__main__":
    main()
