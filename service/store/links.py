"""Single-use links' tokens: password reset (key family `reset`), email verification
(`verify`) and "this wasn't me" (`notme`); keys.py names them. Each is stored only as its
SHA-256, expires with its link and is consumed atomically (GETDEL): two uses, one wins."""

from __future__ import annotations

from dataclasses import dataclass

from service.store.keys import LinkFamily, RedisKeys
from service.store.redis_wire import RedisWire, text


@dataclass(frozen=True)
class TakenReset:
    """A consumed reset token: whose it was, under which token version, and the seconds it
    had left (to put it back if the confirm fails half-way)."""

    user_id: int
    version: int
    ttl: int


class OneTimeLinks:
    """Put, take (once) and put back the tokens of emailed links."""

    def __init__(self, redis: RedisWire, keys: RedisKeys) -> None:
        self.redis = redis
        self._keys = keys

    async def put_reset(self, token: str, user_id: int, version: int, ttl: int) -> None:
        await self.redis.execute("SET", self._keys.reset(token), f"{user_id}:{version}",
                                 "EX", ttl)

    async def take_reset(self, token: str) -> TakenReset | None:
        """Consume atomically (GETDEL): two confirms with one token, one wins. None if the
        token is unknown, used or expired."""
        key = self._keys.reset(token)
        ttl, value = await self.redis.transaction(("TTL", key), ("GETDEL", key))
        if value is None:
            return None
        user_id, version = text(value).split(":")
        return TakenReset(int(user_id), int(version), int(ttl))

    async def restore_reset(self, token: str, taken: TakenReset) -> None:
        """Put back a token whose confirm failed half-way, so the user can try again."""
        if taken.ttl > 0:
            await self.redis.execute("SET", self._keys.reset(token),
                                     f"{taken.user_id}:{taken.version}", "EX", taken.ttl, "NX")

    async def put_link(self, family: LinkFamily, token: str, user_id: int, ttl: int) -> None:
        await self.redis.execute("SET", self._keys.link(family, token), user_id, "EX", ttl)

    async def take_link(self, family: LinkFamily, token: str) -> int | None:
        """The link's user, consumed atomically (GETDEL); None if unknown, used or expired."""
        value = await self.redis.execute("GETDEL", self._keys.link(family, token))
        return int(value) if value is not None else None
