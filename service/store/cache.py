"""Every Redis key the service writes: its family, what it holds and its TTL are defined here.

    {prefix}user:{id}                hash            cached user row (token version, active,
                                                     role, profile); TTL = refresh lifetime;
                                                     or a deleted account's marker, written
                                                     by session_store.py
    {prefix}reset:{sha256(token)}    "{id}:{ver}"    a password-reset token, single use;
                                                     TTL = password_reset.ttl
    {prefix}rl:{scope}:{sha256(key)} counter         fixed-window rate limit; TTL = the window
    {prefix}lock:{sha256(key)}       counter         password failures: of a submitted identifier
                                                     (id:), an account (user:) or one device
                                                     (device:) at login, of an account at
                                                     re-authentication (reauth:); TTL = the
                                                     lockout window from the first failure
    {prefix}hashing:{id}             owner token     a password check of this user in flight
                                                     (password change, deletion); TTL = 60 s,
                                                     deleted when the check ends
    {prefix}mails:{sha256(address)}  counter         mails anyone can trigger to one address
                                                     (reset links, verification resends);
                                                     TTL = one hour from the first
    {prefix}verify:{sha256(token)}   "{id}"          an email-verification token, single use;
                                                     TTL = auth.email_verification_ttl
    {prefix}notme:{sha256(token)}    "{id}"          a "this wasn't me" link from a security
                                                     alert, single use; TTL = alerts.link_ttl

Sessions and the refresh-token blacklist live in session_store.py.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

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


def token_digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


@dataclass(frozen=True)
class CachedUser:
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


class RedisStore:
    def __init__(self, redis: RedisWire, prefix: str, *, user_ttl: int) -> None:
        self.redis = redis
        self._p = prefix
        self._user_ttl = user_ttl

    async def ping(self) -> None:
        await self.redis.execute("PING")

    # -- keys ---------------------------------------------------------------------------
    def user_key(self, user_id: int) -> str:
        return f"{self._p}user:{user_id}"

    def reset_key(self, token: str) -> str:
        return f"{self._p}reset:{token_digest(token)}"

    def rate_key(self, scope: str, key: str) -> str:
        return f"{self._p}rl:{scope}:{token_digest(key)[:32]}"

    # -- user cache ----------------------------------------------------------------------
    async def cached_user(self, user_id: int) -> CachedUser | None:
        (flat,) = await self.redis.read(("HGETALL", self.user_key(user_id)))
        fields = pairs(flat)
        return CachedUser.from_fields(user_id, fields) if fields else None

    async def fill_user(self, user: CachedUser) -> None:
        """Cache a row read from the database, unless a writer got there first."""
        flat = [item for pair in user.to_fields().items() for item in pair]
        await self.redis.eval(_FILL_IF_ABSENT, [self.user_key(user.id)], [self._user_ttl, *flat])

    async def replace_if_older(self, user: CachedUser) -> None:
        """Overwrite a cached row with a lower token version than `user` (just read from the
        database); absent: fill. A newer row or a deleted account's marker stays."""
        flat = [item for pair in user.to_fields().items() for item in pair]
        await self.redis.eval(_REPLACE_IF_OLDER, [self.user_key(user.id)],
                              [self._user_ttl, user.token_version, *flat])

    async def drop_if_older(self, user_id: int, version: int, is_active: bool,
                            role: str) -> None:
        """Drop the cached row if the database's (version, active flag, role) overtook it."""
        await self.redis.eval(_DROP_IF_OLDER, [self.user_key(user_id)],
                              [version, "1" if is_active else "0", role])

    async def forget_user(self, user_id: int) -> None:
        """Drop the cached row before a security-relevant write to the database: if Redis is
        down this fails first (nothing written), and if a later put fails, readers go to the
        database instead of trusting a stale token version."""
        await self.redis.execute("DEL", self.user_key(user_id))

    async def put_user(self, user: CachedUser) -> None:
        """Overwrite the cache after a write to the database (writers always win)."""
        key = self.user_key(user.id)
        flat = [item for pair in user.to_fields().items() for item in pair]
        await self.redis.transaction(("DEL", key), ("HSET", key, *flat),
                                     ("EXPIRE", key, self._user_ttl))

    # -- password-reset tokens -----------------------------------------------------------
    async def put_reset(self, token: str, user_id: int, version: int, ttl: int) -> None:
        await self.redis.execute("SET", self.reset_key(token), f"{user_id}:{version}", "EX", ttl)

    async def take_reset(self, token: str) -> tuple[tuple[int, int] | None, int]:
        """Consume atomically (GETDEL): two confirms with one token, one wins.

        Returns ((user id, version) or None, the TTL it had left, for a restore on failure).
        """
        key = self.reset_key(token)
        ttl, value = await self.redis.transaction(("TTL", key), ("GETDEL", key))
        if value is None:
            return None, 0
        user_id, version = (value.decode() if isinstance(value, bytes) else value).split(":")
        return (int(user_id), int(version)), int(ttl)

    async def restore_reset(self, token: str, user_id: int, version: int, ttl: int) -> None:
        """Put back a token whose confirm failed half-way, so the user can try again."""
        if ttl > 0:
            await self.redis.execute("SET", self.reset_key(token), f"{user_id}:{version}",
                                     "EX", ttl, "NX")

    # -- login lockout ------------------------------------------------------------------
    def lock_key(self, key: str) -> str:
        return f"{self._p}lock:{token_digest(key)[:32]}"

    async def reserve_attempts(self, keys: list[str], window: int,
                               limit: int) -> list[tuple[int, int]]:
        """Count a password attempt against each key in turn, before the password is checked
        (atomic, so parallel guesses cannot all slip under the limit), stopping after the
        first key past `limit`; returns (attempts counted, seconds left) per key counted."""
        return await self._counts([self.lock_key(k) for k in keys], window, limit)

    async def give_back_attempts(self, keys: list[str]) -> None:
        """A successful attempt was no failure: un-count it."""
        await self.redis.transaction(*[("DECR", self.lock_key(k)) for k in keys])

    async def clear_failures(self, key: str) -> None:
        await self.redis.execute("DEL", self.lock_key(key))

    # -- one password check in flight per user --------------------------------------------
    def flight_key(self, user_id: int) -> str:
        return f"{self._p}hashing:{user_id}"

    async def take_flight(self, user_id: int, owner: str, ttl: int) -> bool:
        reply = await self.redis.execute("SET", self.flight_key(user_id), owner, "NX", "EX", ttl)
        return reply is not None

    async def release_flight(self, user_id: int, owner: str) -> None:
        await self.redis.eval(_RELEASE, [self.flight_key(user_id)], [owner])

    # -- mails anyone can trigger ----------------------------------------------------------
    def mail_key(self, address: str) -> str:
        return f"{self._p}mails:{token_digest(address)[:32]}"

    async def count_mail(self, address: str, window: int) -> int:
        """Count one mail to `address` in a fixed window; returns the count, this one included."""
        ((count, _),) = await self._counts([self.mail_key(address)], window)
        return count

    # -- single-use links: email verification ("verify"), "this wasn't me" ("notme") --------
    def link_key(self, family: str, token: str) -> str:
        return f"{self._p}{family}:{token_digest(token)}"

    async def put_link(self, family: str, token: str, user_id: int, ttl: int) -> None:
        await self.redis.execute("SET", self.link_key(family, token), user_id, "EX", ttl)

    async def take_link(self, family: str, token: str) -> int | None:
        """The link's user, consumed atomically (GETDEL); None if unknown, used or expired."""
        value = await self.redis.execute("GETDEL", self.link_key(family, token))
        return int(value) if value is not None else None

    # -- rate limits ---------------------------------------------------------------------
    async def hit(self, scope: str, keys: list[str], window: int,
                  limit: int = 0) -> list[tuple[int, int]]:
        """Count one event against each key in turn, stopping after the first past `limit`
        (0: count them all);
        returns (count, seconds left) for each key counted."""
        return await self._counts([self.rate_key(scope, k) for k in keys], window, limit)

    async def _counts(self, keys: list[str], window: int,
                      limit: int = 0) -> list[tuple[int, int]]:
        raw = await self.redis.eval(_HIT, keys, [window, limit])
        return [(int(raw[i]), max(1, -(-int(raw[i + 1]) // 1000))) for i in range(0, len(raw), 2)]
