"""Serve authsvc for a benchmark, optionally WITHOUT the per-request session check.

The 'without' variant exists only to measure what that check costs: it replaces the
pipelined HGETALL + HGET with the HGETALL alone. Never use it for anything else.
Usage: python bench/serve_variant.py {with|without} PORT   (settings from AUTH_* env)
"""

from __future__ import annotations

import sys
from typing import Any

import uvicorn

from service.app import UVICORN_OPTIONS, create_app
from service.config import load_settings
from service.session_store import SessionStore, _text


async def _user_only(self: SessionStore, user_id: int, sid: str) -> tuple[dict[str, str], bool]:
    fields: dict[Any, Any] = await self.redis.hgetall(self._user_key(user_id))
    return {_text(k): _text(v) for k, v in fields.items()}, True


def main() -> None:
    variant, port = sys.argv[1], int(sys.argv[2])
    if variant == "without":
        SessionStore.user_and_alive = _user_only  # type: ignore[method-assign]
    uvicorn.run(create_app(load_settings()), host="127.0.0.1", port=port, log_level="warning",
                access_log=False, loop="uvloop", http="httptools", **UVICORN_OPTIONS)


if __name__ == "__main__":
    main()
