"""Server-side sessions in Redis: one per login or registration, ended by logout, logout-all,
a password reset or change, or an admin.

    {prefix}session:{sid}         hash  uid, created, last_used, user_agent, ip, exp,
                                        cur (live refresh jti), prev + rot_at + acc (the last
                                        rotation, for the grace window); TTL = until the
                                        session's refresh token expires (+ leeway)
    {prefix}user_sessions:{uid}   set   the user's session ids; TTL = refresh lifetime + leeway
    {prefix}blacklist:{jti}       "1"   a refresh token revoked by logout or replaced by rotation;
                                        TTL = until the token expires (+ leeway)

Every check that must be atomic (refresh, rotation with reuse detection, logout) is one Lua
script, so two tabs refreshing with the same token at once cannot both win or log the user out.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from redis.asyncio import Redis

# Shared head of the scripts: the user cache row, and a token minted under an older token
# version (password changed) is refused without touching the session it names.
_HEAD = """
local user = redis.call('HGETALL', KEYS[3])
local ver = redis.call('HGET', KEYS[3], 'ver')
if ver and ver ~= ARGV[3] then return {'stale', user} end
local s = redis.call('HMGET', KEYS[1], 'uid', 'cur', 'prev', 'rot_at', 'acc')
if not s[1] or s[1] ~= ARGV[1] then
  if redis.call('EXISTS', KEYS[2]) == 1 then return {'revoked', user} end
  return {'ended', user}
end
"""

# KEYS: session, blacklist:{jti}, user cache. ARGV: uid, jti, ver, now.
# -> {status, user cache fields (flat)}; status: ok | stale | ended | revoked | reused
_REFRESH = _HEAD + """
if s[2] ~= ARGV[2] then
  redis.call('DEL', KEYS[1])
  return {'reused', user}
end
redis.call('HSET', KEYS[1], 'last_used', ARGV[4])
return {'ok', user}
"""

# ARGV: uid, jti, ver, now, grace, new refresh jti, new access jti, blacklist ttl.
# -> {status, user, cur, acc, rot_at}; status: rotated | grace | stale | ended | revoked | reused
_ROTATE = _HEAD + """
if s[2] == ARGV[2] then
  redis.call('HSET', KEYS[1], 'prev', ARGV[2], 'cur', ARGV[6], 'acc', ARGV[7],
             'rot_at', ARGV[4], 'last_used', ARGV[4])
  redis.call('SET', KEYS[2], '1', 'EX', ARGV[8])
  return {'rotated', user, ARGV[6], ARGV[7], ARGV[4]}
end
if s[3] == ARGV[2] and tonumber(ARGV[4]) - tonumber(s[4]) <= tonumber(ARGV[5]) then
  return {'grace', user, s[2], s[5], s[4]}
end
redis.call('DEL', KEYS[1])
return {'reused', user}
"""

# ARGV: uid, jti, ver, blacklist ttl. -> {status}: ok | stale | ended | revoked | reused
_LOGOUT = _HEAD + """
redis.call('DEL', KEYS[1])
if s[2] ~= ARGV[2] then return {'reused', user} end
redis.call('SET', KEYS[2], '1', 'EX', ARGV[4])
return {'ok', user}
"""


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _pairs(flat: list[Any]) -> dict[str, str]:
    return {_text(flat[i]): _text(flat[i + 1]) for i in range(0, len(flat), 2)}


@dataclass(frozen=True)
class SessionInfo:
    sid: str
    created: float
    last_used: float
    user_agent: str
    ip: str


@dataclass(frozen=True)
class RefreshOutcome:
    status: str               # ok | rotated | grace | stale | ended | revoked | reused
    user_fields: dict[str, str]
    refresh_jti: str = ""     # rotated / grace: the live successor's jti
    access_jti: str = ""
    rotated_at: int = 0


class SessionStore:
    def __init__(self, redis: Redis, prefix: str, *, index_ttl: int) -> None:
        self.redis = redis
        self._p = prefix
        self._index_ttl = index_ttl
        self._refresh = redis.register_script(_REFRESH)
        self._rotate = redis.register_script(_ROTATE)
        self._logout = redis.register_script(_LOGOUT)

    def key(self, sid: str) -> str:
        return f"{self._p}session:{sid}"

    def index_key(self, user_id: int) -> str:
        return f"{self._p}user_sessions:{user_id}"

    def _blacklist_key(self, jti: str) -> str:
        return f"{self._p}blacklist:{jti}"

    def _user_key(self, user_id: int) -> str:
        return f"{self._p}user:{user_id}"

    async def start(self, *, sid: str, user_id: int, refresh_jti: str, now: float, exp: int,
                    ttl: int, user_agent: str, ip: str) -> None:
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.hset(self.key(sid), mapping={
                "uid": str(user_id), "cur": refresh_jti, "created": str(int(now)),
                "last_used": str(int(now)), "exp": str(exp), "user_agent": user_agent[:256],
                "ip": ip})
            pipe.expire(self.key(sid), ttl)
            pipe.sadd(self.index_key(user_id), sid)
            pipe.expire(self.index_key(user_id), self._index_ttl)
            await pipe.execute()

    async def user_and_alive(self, user_id: int, sid: str) -> tuple[dict[str, str], bool]:
        """One round trip for every Bearer request: the cached user and whether the session
        still exists and belongs to that user."""
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.hgetall(self._user_key(user_id))
            pipe.hget(self.key(sid), "uid")
            fields, owner = await pipe.execute()
        return ({_text(k): _text(v) for k, v in fields.items()},
                owner is not None and _text(owner) == str(user_id))

    def _keys(self, user_id: int, sid: str, jti: str) -> list[str]:
        return [self.key(sid), self._blacklist_key(jti), self._user_key(user_id)]

    async def use_refresh(self, user_id: int, sid: str, jti: str, ver: int,
                          now: float) -> RefreshOutcome:
        """A refresh without rotation: the token must be its session's live one."""
        status, user = await self._refresh(keys=self._keys(user_id, sid, jti),
                                           args=[str(user_id), jti, str(ver), str(int(now))])
        return RefreshOutcome(_text(status), _pairs(user))

    async def rotate(self, user_id: int, sid: str, jti: str, ver: int, now: float, *,
                     grace: int, new_refresh_jti: str, new_access_jti: str,
                     blacklist_ttl: int) -> RefreshOutcome:
        """Swap the live refresh token for a successor, atomically; within `grace` seconds the
        replaced token gets the same successor again (two tabs), after that it is theft."""
        result = await self._rotate(
            keys=self._keys(user_id, sid, jti),
            args=[str(user_id), jti, str(ver), str(int(now)), str(grace), new_refresh_jti,
                  new_access_jti, str(blacklist_ttl)])
        status, user = _text(result[0]), _pairs(result[1])
        if status in ("rotated", "grace"):
            return RefreshOutcome(status, user, _text(result[2]), _text(result[3]),
                                  int(_text(result[4])))
        return RefreshOutcome(status, user)

    async def logout(self, user_id: int, sid: str, jti: str, ver: int,
                     blacklist_ttl: int) -> RefreshOutcome:
        """End the session of a live refresh token and blacklist it; else say why not."""
        status, user = await self._logout(keys=self._keys(user_id, sid, jti),
                                          args=[str(user_id), jti, str(ver), str(blacklist_ttl)])
        return RefreshOutcome(_text(status), _pairs(user))

    async def set_current(self, user_id: int, sid: str, refresh_jti: str, now: float, exp: int,
                          ttl: int) -> None:
        """After a password change the current session goes on with a new refresh token (and
        a new lifetime, which the user's index must outlive so logout-all still finds it)."""
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.sadd(self.index_key(user_id), sid)
            pipe.expire(self.index_key(user_id), self._index_ttl)
            pipe.hset(self.key(sid), mapping={
                "cur": refresh_jti, "prev": "", "rot_at": "0", "last_used": str(int(now)),
                "exp": str(exp)})
            pipe.expire(self.key(sid), ttl)
            await pipe.execute()

    async def list(self, user_id: int) -> list[SessionInfo]:
        sids = [_text(s) for s in await self.redis.smembers(self.index_key(user_id))]
        if not sids:
            return []
        async with self.redis.pipeline(transaction=False) as pipe:
            for sid in sids:
                pipe.hgetall(self.key(sid))
            rows = await pipe.execute()
        alive, gone = [], []
        for sid, raw in zip(sids, rows):
            row = {_text(k): _text(v) for k, v in raw.items()}
            if row.get("uid") != str(user_id):
                gone.append(sid)
                continue
            alive.append(SessionInfo(sid, float(row["created"]), float(row["last_used"]),
                                     row.get("user_agent", ""), row.get("ip", "")))
        if gone:  # expired sessions leave their id behind in the index
            await self.redis.srem(self.index_key(user_id), *gone)
        return sorted(alive, key=lambda s: s.created)

    async def end(self, user_id: int, sid: str) -> bool:
        """End one of the user's sessions; False if it is not theirs or already over."""
        if await self.redis.hget(self.key(sid), "uid") not in (str(user_id).encode(),
                                                                str(user_id)):
            return False
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.delete(self.key(sid))
            pipe.srem(self.index_key(user_id), sid)
            await pipe.execute()
        return True

    async def end_all(self, user_id: int, *, keep: str | None = None) -> int:
        """End every session of the user (but `keep`); returns how many were ended."""
        sids = [_text(s) for s in await self.redis.smembers(self.index_key(user_id))]
        doomed = [sid for sid in sids if sid != keep]
        if not doomed:
            return 0
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.delete(*[self.key(sid) for sid in doomed])
            pipe.srem(self.index_key(user_id), *doomed)
            await pipe.execute()
        return len(doomed)
