"""Readiness: whether the backing services answer (GET /healthz)."""

from __future__ import annotations

from service.store.cache import UserCache
from service.store.users import UserStore


class Health:
    """Pings the database and Redis."""

    def __init__(self, users: UserStore, cache: UserCache) -> None:
        self._users = users
        self._cache = cache

    async def check(self) -> None:
        """Raise if the database or Redis cannot be reached (mapped to 503)."""
        await self._users.ping()
        await self._cache.ping()
