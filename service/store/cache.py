"""The user cache: each user's row as the database last gave it, so a Bearer request is
judged in one Redis round trip (key family `user`, see keys.py)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from service.store.keys import RedisKeys
from service.store.redis_wire import RedisWire, Script, pairs

# Fill the user cache only if absent: a writer that has just overwritten it wins over a
# reader still holding a row it read before the write.
_FILL_IF_ABSENT = Script("""
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
redis.call('HSET', KEYS[1], unpack(ARGV, 2))
redis.call('EXPIRE', KEYS[1], ARGV[1])
return 1
""")

# Heal a cached row the database has overtaken (Redis restored from an older snapshot, or a
# failover that lost writes): token versions only grow, so a row with a lower `ver` is older.
# Never touches a deleted account's marker (no `ver`).
# KEYS: user cache. ARGV: ttl, the database's ver, then the row's field/value pairs.
_REPLACE_IF_OLDER = Script("""
if redis.call('EXISTS', KEYS[1]) == 1 then
  local ver = redis.call('HGET', KEYS[1], 'ver')
  if not ver or tonumber(ver) >= tonumber(ARGV[2]) then return 0 end
end
redis.call('DEL', KEYS[1])
redis.call('HSET', KEYS[1], unpack(ARGV, 3))
redis.call('EXPIRE', KEYS[1], ARGV[1])
return 1
""")

# ARGV: the database's ver, is_active ("1"/"0"), role: drop a cached row that is older, or
# of the same version but disagreeing (the next reader re-reads the database).
_DROP_IF_OLDER = Script("""
local c = redis.call('HMGET', KEYS[1], 'ver', 'is_active', 'role')
if not c[1] then return 0 end
local cached, db = tonumber(c[1]), tonumber(ARGV[1])
if cached < db or (cached == db and (c[2] ~= ARGV[2] or c[3] ~= ARGV[3])) then
  redis.call('DEL', KEYS[1])
  return 1
end
return 0
""")

# The one field of a deleted account's marker, which replaces its row (sessions.py writes it).
GONE = "gone"


@dataclass(frozen=True)
class CachedUser:
    """A user's row as cached: what a Bearer request is judged on."""

    id: int
    username: str
    email: str
    display_name: str
    role: str
    is_active: bool
    token_version: int

    def to_fields(self) -> dict[str, str]:
        return {"username": self.username, "email": self.email,
                "display_name": self.display_name, "role": self.role,
                "is_active": "1" if self.is_active else "0", "ver": str(self.token_version)}

    @classmethod
    def from_fields(cls, user_id: int, f: dict[str, str]) -> CachedUser | None:
        """From a hash already decoded to text (redis_wire.pairs); None if incomplete."""
        try:
            return cls(id=user_id, username=f["username"], email=f["email"],
                       display_name=f["display_name"], role=f["role"],
                       is_active=f["is_active"] == "1", token_version=int(f["ver"]))
        except (KeyError, ValueError):
            return None



def parse_row(user_id: int, flat: Sequence[Any]) -> tuple[CachedUser | None, bool]:
    """A user-cache hash as read (a flat field/value reply): the row, None if absent,
    incomplete or a deleted account's marker; and whether it is that marker."""
    fields = pairs(flat)
    if not fields:
        return None, False
    return CachedUser.from_fields(user_id, fields), GONE in fields


class UserCache:
    """Cached user rows: filled by readers unless a writer got there first, overwritten by
    writers, healed when the database is found to be ahead."""

    def __init__(self, redis: RedisWire, keys: RedisKeys, *, ttl: int) -> None:
        self.redis = redis
        self._keys = keys
        self._ttl = ttl

    async def ping(self) -> None:
        """Raise if Redis cannot be reached."""
        await self.redis.execute("PING")

    async def get(self, user_id: int) -> CachedUser | None:
        """The cached row; None if absent, incomplete or a deleted account's marker."""
        (flat,) = await self.redis.read(("HGETALL", self._keys.user(user_id)))
        return parse_row(user_id, flat)[0]

    async def fill(self, user: CachedUser) -> None:
        """Cache a row read from the database, unless a writer got there first."""
        await self.redis.eval(_FILL_IF_ABSENT, [self._keys.user(user.id)],
                              [self._ttl, *_flat(user)])

    async def replace_if_older(self, user: CachedUser) -> None:
        """Overwrite a cached row with a lower token version than `user` (just read from the
        database); absent: fill. A newer row or a deleted account's marker stays."""
        await self.redis.eval(_REPLACE_IF_OLDER, [self._keys.user(user.id)],
                              [self._ttl, user.token_version, *_flat(user)])

    async def drop_if_older(self, user_id: int, version: int, is_active: bool,
                            role: str) -> None:
        """Drop the cached row if the database's (version, active flag, role) overtook it."""
        await self.redis.eval(_DROP_IF_OLDER, [self._keys.user(user_id)],
                              [version, "1" if is_active else "0", role])

    async def forget(self, user_id: int) -> None:
        """Drop the cached row before a security-relevant write to the database: if Redis is
        down this fails first (nothing written), and if a later put fails, readers go to the
        database instead of trusting a stale token version."""
        await self.redis.execute("DEL", self._keys.user(user_id))

    async def put(self, user: CachedUser) -> None:
        """Overwrite the cache after a write to the database (writers always win)."""
        key = self._keys.user(user.id)
        await self.redis.transaction(("DEL", key), ("HSET", key, *_flat(user)),
                                     ("EXPIRE", key, self._ttl))


def _flat(user: CachedUser) -> list[str]:
    return [item for pair in user.to_fields().items() for item in pair]
