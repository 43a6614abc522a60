"""Server-side sessions in Redis: one per login or registration, ended by logout, logout-all,
a password reset or change, or an admin.

    {prefix}session:{sid}         hash  uid, created, last_used, user_agent, ip, exp,
                                        cur (live refresh jti), prev + rot_at + acc (the last
                                        rotation, for the grace window); TTL = until the
                                        session's refresh token expires (+ leeway)
    {prefix}user_sessions:{uid}   set   the user's session ids; TTL = refresh lifetime + leeway
    {prefix}blacklist:{jti}       "1"   a refresh token revoked by logout or replaced by rotation;
                                        TTL = until the token expires (+ leeway)
    {prefix}user:{uid}            hash  (redis_store.py's user cache) `gone` = "1" only: the
                                        account was deleted; TTL = refresh lifetime + leeway

Every check that must be atomic (refresh, rotation with reuse detection, logout) is one Lua
script, so two tabs refreshing with the same token at once cannot both win or log the user out.
"""

from __future__ import annotations

from dataclasses import dataclass

from service.store.redis_wire import RedisWire, Script, pairs, text

# The one field of a deleted account's cache marker (see _PURGE_USER).
GONE = "gone"

# Head of the logout script: the user cache row, and a token minted under an older token
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

# Refresh and rotation are judged on the database's user row, read just before and passed in
# (its token version equals the token's, or the caller refused already): a cached row older
# than it (Redis restored from a snapshot, a failover that lost writes) is dropped, so the
# next request re-reads the database; a cached row newer than it means a password change,
# deactivation or role change landed after the read: the token is stale. A row with no `ver`
# (a deleted account's marker) is left alone.
_DB_HEAD = """
local c = redis.call('HMGET', KEYS[3], 'ver', 'is_active', 'role')
if c[1] then
  if tonumber(c[1]) > tonumber(ARGV[3]) then return {'stale'} end
  if c[1] ~= ARGV[3] or c[2] ~= '1' or c[3] ~= ARGV[4] then redis.call('DEL', KEYS[3]) end
end
local s = redis.call('HMGET', KEYS[1], 'uid', 'cur', 'prev', 'rot_at', 'acc')
if not s[1] or s[1] ~= ARGV[1] then
  if redis.call('EXISTS', KEYS[2]) == 1 then return {'revoked'} end
  return {'ended'}
end
"""

# KEYS: session, blacklist:{jti}, user cache. ARGV: uid, jti, database's ver, its role, now.
# -> {status}: ok | stale | ended | revoked | reused
_REFRESH = Script(_DB_HEAD + """
if s[2] ~= ARGV[2] then
  redis.call('DEL', KEYS[1])
  return {'reused'}
end
redis.call('HSET', KEYS[1], 'last_used', ARGV[5])
return {'ok'}
""")

# ARGV: uid, jti, database's ver, its role, now, grace, new refresh jti, new access jti,
# blacklist ttl. -> {status, cur, acc, rot_at}; status: rotated | grace | stale | ended |
# revoked | reused
_ROTATE = Script(_DB_HEAD + """
if s[2] == ARGV[2] then
  redis.call('HSET', KEYS[1], 'prev', ARGV[2], 'cur', ARGV[7], 'acc', ARGV[8],
             'rot_at', ARGV[5], 'last_used', ARGV[5])
  redis.call('SET', KEYS[2], '1', 'EX', ARGV[9])
  return {'rotated', ARGV[7], ARGV[8], ARGV[5]}
end
if s[3] == ARGV[2] and tonumber(ARGV[5]) - tonumber(s[4]) <= tonumber(ARGV[6]) then
  return {'grace', s[2], s[5], s[4]}
end
redis.call('DEL', KEYS[1])
return {'reused'}
""")

# ARGV: uid, jti, ver, blacklist ttl. -> {status}: ok | stale | ended | revoked | reused
_LOGOUT = Script(_HEAD + """
redis.call('DEL', KEYS[1])
if s[2] ~= ARGV[2] then return {'reused', user} end
redis.call('SET', KEYS[2], '1', 'EX', ARGV[4])
return {'ok', user}
""")


# A deleted account (issue 9.6): every session of the user ends and the cached row becomes a
# marker with no account data in it, which no reader's fill can overwrite (fills only land on
# an absent key): every token of the id then goes to the database, which no longer has it.
# KEYS: user cache, the user's session index. ARGV: session key prefix, marker TTL.
_PURGE_USER = Script("""
local sids = redis.call('SMEMBERS', KEYS[2])
for _, sid in ipairs(sids) do redis.call('DEL', ARGV[1] .. sid) end
redis.call('DEL', KEYS[2], KEYS[1])
redis.call('HSET', KEYS[1], 'gone', '1')
redis.call('EXPIRE', KEYS[1], ARGV[2])
return #sids
""")


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
    def __init__(self, redis: RedisWire, prefix: str, *, index_ttl: int) -> None:
        self.redis = redis
        self._p = prefix
        self._index_ttl = index_ttl

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
        key, index = self.key(sid), self.index_key(user_id)
        await self.redis.transaction(
            ("HSET", key, "uid", user_id, "cur", refresh_jti, "created", int(now),
             "last_used", int(now), "exp", exp, "user_agent", user_agent[:256], "ip", ip),
            ("EXPIRE", key, ttl),
            ("SADD", index, sid),
            ("EXPIRE", index, self._index_ttl))

    async def user_and_alive(self, user_id: int, sid: str) -> tuple[dict[str, str], bool]:
        """One round trip for every Bearer request: the cached user and whether the session
        still exists and belongs to that user."""
        fields, owner = await self.redis.read(("HGETALL", self._user_key(user_id)),
                                              ("HGET", self.key(sid), "uid"))
        return pairs(fields), owner is not None and text(owner) == str(user_id)

    def _keys(self, user_id: int, sid: str, jti: str) -> list[str]:
        return [self.key(sid), self._blacklist_key(jti), self._user_key(user_id)]

    async def use_refresh(self, user_id: int, sid: str, jti: str, ver: int, role: str,
                          now: float) -> RefreshOutcome:
        """A refresh without rotation: the token must be its session's live one. `ver` and
        `role` are the database's (see _DB_HEAD)."""
        (status,) = await self.redis.eval(_REFRESH, self._keys(user_id, sid, jti),
                                          [user_id, jti, ver, role, int(now)])
        return RefreshOutcome(text(status), {})

    async def rotate(self, user_id: int, sid: str, jti: str, ver: int, role: str, now: float,
                     *, grace: int, new_refresh_jti: str, new_access_jti: str,
                     blacklist_ttl: int) -> RefreshOutcome:
        """Swap the live refresh token for a successor, atomically; within `grace` seconds the
        replaced token gets the same successor again (two tabs), after that it is theft."""
        result = await self.redis.eval(
            _ROTATE, self._keys(user_id, sid, jti),
            [user_id, jti, ver, role, int(now), grace, new_refresh_jti, new_access_jti,
             blacklist_ttl])
        status = text(result[0])
        if status in ("rotated", "grace"):
            return RefreshOutcome(status, {}, text(result[1]), text(result[2]),
                                  int(text(result[3])))
        return RefreshOutcome(status, {})

    async def logout(self, user_id: int, sid: str, jti: str, ver: int,
                     blacklist_ttl: int) -> RefreshOutcome:
        """End the session of a live refresh token and blacklist it; else say why not."""
        status, user = await self.redis.eval(_LOGOUT, self._keys(user_id, sid, jti),
                                             [user_id, jti, ver, blacklist_ttl])
        return RefreshOutcome(text(status), pairs(user))

    async def set_current(self, user_id: int, sid: str, refresh_jti: str, now: float, exp: int,
                          ttl: int) -> None:
        """After a password change the current session goes on with a new refresh token (and
        a new lifetime, which the user's index must outlive so logout-all still finds it)."""
        key, index = self.key(sid), self.index_key(user_id)
        await self.redis.transaction(
            ("SADD", index, sid),
            ("EXPIRE", index, self._index_ttl),
            ("HSET", key, "cur", refresh_jti, "prev", "", "rot_at", 0, "last_used", int(now),
             "exp", exp),
            ("EXPIRE", key, ttl))

    async def list(self, user_id: int) -> list[SessionInfo]:
        (members,) = await self.redis.read(("SMEMBERS", self.index_key(user_id)))
        sids = [text(s) for s in members]
        if not sids:
            return []
        rows = await self.redis.read(*[("HGETALL", self.key(sid)) for sid in sids])
        alive, gone = [], []
        for sid, raw in zip(sids, rows, strict=False):
            row = pairs(raw)
            if row.get("uid") != str(user_id):
                gone.append(sid)
                continue
            alive.append(SessionInfo(sid, float(row["created"]), float(row["last_used"]),
                                     row.get("user_agent", ""), row.get("ip", "")))
        if gone:  # expired sessions leave their id behind in the index
            await self.redis.execute("SREM", self.index_key(user_id), *gone)
        return sorted(alive, key=lambda s: s.created)

    async def end(self, user_id: int, sid: str) -> bool:
        """End one of the user's sessions; False if it is not theirs or already over."""
        if await self.redis.execute("HGET", self.key(sid), "uid") != str(user_id).encode():
            return False
        await self.redis.transaction(("DEL", self.key(sid)),
                                     ("SREM", self.index_key(user_id), sid))
        return True

    async def mark_gone(self, user_id: int, ttl: int) -> None:
        """Replace the cached row by the deleted-account marker before the row is deleted
        from the database: from now on every token of the user is judged on the database."""
        key = self._user_key(user_id)
        await self.redis.transaction(("DEL", key), ("HSET", key, GONE, "1"),
                                     ("EXPIRE", key, ttl))

    async def purge_user(self, user_id: int) -> int:
        """A user with no row in the database: end every session, atomically, and leave the
        marker for as long as any token of theirs could live. Returns the sessions ended."""
        ended = await self.redis.eval(
            _PURGE_USER, [self._user_key(user_id), self.index_key(user_id)],
            [self.key(""), self._index_ttl])
        return int(ended)

    async def end_all(self, user_id: int, *, keep: str | None = None) -> int:
        """End every session of the user (but `keep`); returns how many were ended."""
        sids = [text(s) for s in await self.redis.execute("SMEMBERS", self.index_key(user_id))]
        doomed = [sid for sid in sids if sid != keep]
        if not doomed:
            return 0
        await self.redis.transaction(("DEL", *[self.key(sid) for sid in doomed]),
                                     ("SREM", self.index_key(user_id), *doomed))
        return len(doomed)
