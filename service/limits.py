"""Rate limits (API.md [rate_limit]): per client IP and, separately, per identifier."""

from __future__ import annotations

from .config import RateLimitSettings
from .errors import RateLimited
from .identity import fold
from .redis_store import RedisStore


class RateLimiter:
    def __init__(self, settings: RateLimitSettings, store: RedisStore) -> None:
        self._s = settings
        self._store = store

    async def check(self, scope: str, client_ip: str, identifier: str) -> None:
        """Count one event of `scope` (login, register, password_reset); 429 past the rate."""
        if not self._s.enabled:
            return
        rate = getattr(self._s, scope)
        counts = await self._store.hit(scope, [f"ip:{client_ip}", f"id:{fold(identifier)}"],
                                       rate.window)
        over = [left for count, left in counts if count > rate.limit]
        if over:
            raise RateLimited(max(over))
