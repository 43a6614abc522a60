"""Readiness: whether the backing services answer (GET /healthz)."""

from __future__ import annotations

from service.store.redis_store import RedisStore
from service.store.users import UserStore


class Health:
    """Pings the database and Redis."""

    def __init__(self, users: UserStore, store: RedisStore) -> None:
        self._users = users
        self._store = store

    async def check(self) -> None:
        """Raise if the database or Redis cannot be reached (mapped to 503)."""
        await self._users.ping()
        await self._store.ping()
