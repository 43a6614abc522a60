"""Counters that hold abuse back: rate limits (key family `rl`), password failures (`lock`),
mails anyone can trigger to one address (`mails`), and the mark of a password check in
flight (`hashing`); keys.py names them. The limits themselves are core's (core/limits.py)."""

from __future__ import annotations

from typing import NamedTuple

from service.store.keys import RedisKeys
from service.store.redis_wire import RedisWire, Script

# Fixed windows, one counter per key, counted in order; returns for each key counted its
# count and TTL (ms). ARGV[2] > 0: stop after the first key past that limit, so what is
# refused on one key (a client IP) spends nothing of the next (an identifier).
_HIT = Script("""
local limit = tonumber(ARGV[2])
local out = {}
for i, key in ipairs(KEYS) do
  local count = redis.call('INCR', key)
  if count == 1 then redis.call('EXPIRE', key, ARGV[1]) end
  local ttl = redis.call('PTTL', key)
  if ttl < 0 then redis.call('EXPIRE', key, ARGV[1]); ttl = tonumber(ARGV[1]) * 1000 end
  out[#out + 1] = count
  out[#out + 1] = ttl
  if limit > 0 and count > limit then break end
end
return out
""")

# Delete a key only if it still holds the owner's value (it may have expired and been
# taken by another request meanwhile).
_RELEASE = Script("""
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
""")


class WindowCount(NamedTuple):
    """One key's count in its fixed window, and the seconds until the window ends."""

    hits: int
    seconds_left: int


class LimitCounters:
    """Fixed-window counters and the one-check-per-user mark; every count is atomic."""

    def __init__(self, redis: RedisWire, keys: RedisKeys) -> None:
        self.redis = redis
        self._keys = keys

    # -- rate limits ---------------------------------------------------------------------
    async def hit(self, scope: str, keys: list[str], window: int,
                  limit: int = 0) -> list[WindowCount]:
        """Count one event against each key in turn, stopping after the first past `limit`
        (0: count them all); returns (count, seconds left) for each key counted."""
        return await self._counts([self._keys.rate(scope, k) for k in keys], window, limit)

    # -- login lockout ------------------------------------------------------------------
    async def reserve_attempts(self, keys: list[str], window: int,
                               limit: int) -> list[WindowCount]:
        """Count a password attempt against each key in turn, before the password is checked
        (atomic, so parallel guesses cannot all slip under the limit), stopping after the
        first key past `limit`; returns (attempts counted, seconds left) per key counted."""
        return await self._counts([self._keys.lock(k) for k in keys], window, limit)

    async def give_back_attempts(self, keys: list[str]) -> None:
        """A successful attempt was no failure: un-count it."""
        await self.redis.transaction(*[("DECR", self._keys.lock(k)) for k in keys])

    async def clear_failures(self, key: str) -> None:
        await self.redis.execute("DEL", self._keys.lock(key))

    # -- mails anyone can trigger --------------------------------------------------------
    async def count_mail(self, address: str, window: int) -> int:
        """Count one mail to `address` in a fixed window; returns the count, this one included."""
        ((count, _),) = await self._counts([self._keys.mails(address)], window)
        return count

    # -- one password check in flight per user --------------------------------------------
    async def take_flight(self, user_id: int, owner: str, ttl: int) -> bool:
        """Mark a password check of the user in flight; False if one already is."""
        reply = await self.redis.execute("SET", self._keys.hashing(user_id), owner,
                                         "NX", "EX", ttl)
        return reply is not None

    async def release_flight(self, user_id: int, owner: str) -> None:
        """End `owner`'s mark (not one taken by another check after it expired)."""
        await self.redis.eval(_RELEASE, [self._keys.hashing(user_id)], [owner])

    async def _counts(self, keys: list[str], window: int,
                      limit: int = 0) -> list[WindowCount]:
        raw = await self.redis.eval(_HIT, keys, [window, limit])
        return [WindowCount(int(raw[i]), max(1, -(-int(raw[i + 1]) // 1000)))
                for i in range(0, len(raw), 2)]
