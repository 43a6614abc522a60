"""Server-side sessions in Redis: one per login or registration, ended by logout, logout-all,
a password reset or change, or an admin. Key families `session`, `user_sessions` and
`blacklist` (keys.py); a deleted account's marker replaces its row in the user cache (`user`).

Every check that must be atomic (refresh, rotation with reuse detection, logout) is one Lua
script, so two tabs refreshing with the same token at once cannot both win or log the user out.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

from service.store.cache import GONE, CachedUser, parse_row
from service.store.keys import RedisKeys
from service.store.redis_wire import RedisWire, Script, pairs, text

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
local s = redis.call('HMGET', KEYS[1], 'uid', 'cur', 'prev', 'rot_at', 'acc', 'auth_time',
                    'amr')
if not s[1] or s[1] ~= ARGV[1] then
  if redis.call('EXISTS', KEYS[2]) == 1 then return {'revoked'} end
  return {'ended'}
end
local auth_time, amr = s[6] or '0', s[7] or 'pwd'
"""

# A refresh token used twice ends its session; `ended:{sid}` remembers why for as long as the
# session had left, so every tab still holding its tokens is told `token_reused`, not only
# the one that presented the old token. KEYS[4]: ended:{sid}.
_END_REUSED = """
local left = redis.call('TTL', KEYS[1])
redis.call('DEL', KEYS[1])
if left > 0 then redis.call('SET', KEYS[4], 'token_reused', 'EX', left) end
"""

# The presented token (ARGV[2]) is the one the last rotation replaced, at most `grace`
# (ARGV[6]) seconds before `now` (ARGV[5]): the same browser's other tab, not a thief.
_IN_GRACE = "s[3] == ARGV[2] and tonumber(ARGV[5]) - tonumber(s[4]) <= tonumber(ARGV[6])"

# KEYS: session, blacklist:{jti}, user cache, ended. ARGV: uid, jti, database's ver, its role,
# now. -> {status}: ok | stale | ended | revoked | reused
_REFRESH = Script(_DB_HEAD + """
if s[2] ~= ARGV[2] then""" + _END_REUSED + """
  return {'reused'}
end
redis.call('HSET', KEYS[1], 'last_used', ARGV[5])
return {'ok', auth_time, amr}
""")

# ARGV: uid, jti, database's ver, its role, now, grace, new refresh jti, new access jti,
# blacklist ttl. -> {status, cur, acc, rot_at, auth_time, amr}; status: rotated | grace |
# stale | ended | revoked | reused
_ROTATE = Script(_DB_HEAD + """
if s[2] == ARGV[2] then
  redis.call('HSET', KEYS[1], 'prev', ARGV[2], 'cur', ARGV[7], 'acc', ARGV[8],
             'rot_at', ARGV[5], 'last_used', ARGV[5])
  redis.call('SET', KEYS[2], '1', 'EX', ARGV[9])
  return {'rotated', ARGV[7], ARGV[8], ARGV[5], auth_time, amr}
end
if """ + _IN_GRACE + """ then
  return {'grace', s[2], s[5], s[4], auth_time, amr}
end""" + _END_REUSED + """
return {'reused'}
""")

# ARGV: uid, jti, ver, blacklist ttl, now, grace. -> {status}: ok | stale | ended | revoked |
# reused. The token another tab replaced inside the grace window is this browser's, as
# _ROTATE holds: signing out with it ends the session (the token itself is already revoked),
# and is no theft.
_LOGOUT = Script(_HEAD + """
if s[2] ~= ARGV[2] then
  if """ + _IN_GRACE + """ then
    redis.call('DEL', KEYS[1])
    return {'revoked', user}
  end""" + _END_REUSED + """
  return {'reused', user}
end
redis.call('DEL', KEYS[1])
redis.call('SET', KEYS[2], '1', 'EX', ARGV[4])
return {'ok', user}
""")


# A session started only if it does not exist yet (an old simplejwt token's first use: two
# tabs' first uses name the same session). KEYS: session, the user's index. ARGV: uid, cur,
# created/last_used, exp, user agent, ip, session ttl, index ttl, sid. -> 1 if started.
_START_IF_ABSENT = Script("""
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
redis.call('HSET', KEYS[1], 'uid', ARGV[1], 'cur', ARGV[2], 'created', ARGV[3],
           'last_used', ARGV[3], 'exp', ARGV[4], 'user_agent', ARGV[5], 'ip', ARGV[6])
redis.call('EXPIRE', KEYS[1], ARGV[7])
redis.call('SADD', KEYS[2], ARGV[9])
redis.call('EXPIRE', KEYS[2], ARGV[8])
return 1
""")


# A re-authentication (or a new factor) renews the session's grant. A session that has none
# (started before grants were kept, or by an old simplejwt token's first use) reads as a
# password sign-in long ago (auth_time 0): never recent. KEYS: session. ARGV: uid, amr,
# auth_time. -> the session's exp, or false when it is not the user's (ended).
_ELEVATE = Script("""
if redis.call('HGET', KEYS[1], 'uid') ~= ARGV[1] then return false end
redis.call('HSET', KEYS[1], 'amr', ARGV[2], 'auth_time', ARGV[3])
return redis.call('HGET', KEYS[1], 'exp')
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
    """What a refresh, rotation or logout script found."""

    status: str                     # ok | rotated | grace | stale | ended | revoked | reused
    user: CachedUser | None = None  # logout: the cached row it read (None: not cached)
    refresh_jti: str = ""           # rotated / grace: the live successor's jti
    access_jti: str = ""
    rotated_at: int = 0
    amr: tuple[str, ...] = ()       # ok / rotated / grace: the session's grant
    auth_time: int = 0


def _grant(fields: Sequence[Any]) -> dict[str, Any]:
    """A script's (auth_time, amr) as RefreshOutcome's fields; none when it returned none."""
    if len(fields) < 2:
        return {}
    return {"auth_time": int(text(fields[0])),
            "amr": tuple(m for m in text(fields[1]).split(",") if m)}


class UserAndSession(NamedTuple):
    """One Bearer request's read: the cached user, and whether its session lives."""

    user: CachedUser | None  # None: not cached (absent, incomplete or a deleted account's)
    deleted: bool            # the cached row is a deleted account's marker
    alive: bool              # the session exists and belongs to the user


class SessionStore:
    """Sessions, each user's index of them, and the refresh-token blacklist."""

    def __init__(self, redis: RedisWire, keys: RedisKeys, *, index_ttl: int) -> None:
        self.redis = redis
        self._keys = keys
        self._index_ttl = index_ttl

    async def start(self, *, sid: str, user_id: int, refresh_jti: str, now: float, exp: int,
                    ttl: int, user_agent: str, ip: str, amr: tuple[str, ...] = ("pwd",),
                    auth_time: int | None = None) -> None:
        key, index = self._keys.session(sid), self._keys.user_sessions(user_id)
        await self.redis.transaction(
            ("HSET", key, "uid", user_id, "cur", refresh_jti, "created", int(now),
             "last_used", int(now), "exp", exp, "user_agent", user_agent[:256], "ip", ip,
             "amr", ",".join(amr), "auth_time", int(now) if auth_time is None else auth_time),
            ("EXPIRE", key, ttl),
            ("SADD", index, sid),
            ("EXPIRE", index, self._index_ttl))

    async def start_if_absent(self, *, sid: str, user_id: int, refresh_jti: str, now: float,
                              exp: int, ttl: int, user_agent: str, ip: str) -> bool:
        """start(), unless session `sid` exists already; True if this call started it."""
        started = await self.redis.eval(
            _START_IF_ABSENT, [self._keys.session(sid), self._keys.user_sessions(user_id)],
            [user_id, refresh_jti, int(now), exp, user_agent[:256], ip, ttl, self._index_ttl,
             sid])
        return bool(started)

    async def user_and_alive(self, user_id: int, sid: str) -> UserAndSession:
        """One round trip for every Bearer request: the cached user and whether the session
        still exists and belongs to that user."""
        flat, owner = await self.redis.read(("HGETALL", self._keys.user(user_id)),
                                            ("HGET", self._keys.session(sid), "uid"))
        user, deleted = parse_row(user_id, flat)
        return UserAndSession(user, deleted, owner is not None and text(owner) == str(user_id))

    def _script_keys(self, user_id: int, sid: str, jti: str) -> list[str]:
        return [self._keys.session(sid), self._keys.blacklist(jti), self._keys.user(user_id),
                self._keys.ended(sid)]

    async def end_reason(self, sid: str) -> str | None:
        """Why the session ended, when it was for a reason worth telling (`token_reused`)."""
        reason = await self.redis.execute("GET", self._keys.ended(sid))
        return None if reason is None else text(reason)

    async def use_refresh(self, user_id: int, sid: str, jti: str, ver: int, role: str,
                          now: float) -> RefreshOutcome:
        """A refresh without rotation: the token must be its session's live one. `ver` and
        `role` are the database's (see _DB_HEAD)."""
        status, *grant = await self.redis.eval(_REFRESH, self._script_keys(user_id, sid, jti),
                                               [user_id, jti, ver, role, int(now)])
        return RefreshOutcome(text(status), **_grant(grant))

    async def rotate(self, user_id: int, sid: str, jti: str, ver: int, role: str, now: float,
                     *, grace: int, new_refresh_jti: str, new_access_jti: str,
                     blacklist_ttl: int) -> RefreshOutcome:
        """Swap the live refresh token for a successor, atomically; within `grace` seconds the
        replaced token gets the same successor again (two tabs), after that it is theft."""
        result = await self.redis.eval(
            _ROTATE, self._script_keys(user_id, sid, jti),
            [user_id, jti, ver, role, int(now), grace, new_refresh_jti, new_access_jti,
             blacklist_ttl])
        status = text(result[0])
        if status in ("rotated", "grace"):
            return RefreshOutcome(status, None, text(result[1]), text(result[2]),
                                  int(text(result[3])), **_grant(result[4:]))
        return RefreshOutcome(status)

    async def elevate(self, user_id: int, sid: str, amr: tuple[str, ...],
                      auth_time: int) -> int | None:
        """Renew the session's grant (reauth/, a confirmed factor); the session's end (its
        refresh token's exp), or None when it is over."""
        exp = await self.redis.eval(_ELEVATE, [self._keys.session(sid)],
                                    [user_id, ",".join(amr), auth_time])
        return None if exp is None else int(text(exp))

    async def logout(self, user_id: int, sid: str, jti: str, ver: int, blacklist_ttl: int,
                     now: float, grace: int) -> RefreshOutcome:
        """End the session of a live refresh token (or of the one it replaced less than
        `grace` seconds ago) and blacklist it; else say why not."""
        status, user = await self.redis.eval(_LOGOUT, self._script_keys(user_id, sid, jti),
                                             [user_id, jti, ver, blacklist_ttl, int(now), grace])
        return RefreshOutcome(text(status), parse_row(user_id, user)[0])

    async def set_current(self, user_id: int, sid: str, refresh_jti: str, now: float, exp: int,
                          ttl: int) -> None:
        """After a password change the current session goes on with a new refresh token (and
        a new lifetime, which the user's index must outlive so logout-all still finds it)."""
        key, index = self._keys.session(sid), self._keys.user_sessions(user_id)
        await self.redis.transaction(
            ("SADD", index, sid),
            ("EXPIRE", index, self._index_ttl),
            ("HSET", key, "cur", refresh_jti, "prev", "", "rot_at", 0, "last_used", int(now),
             "exp", exp),
            ("EXPIRE", key, ttl))

    async def list(self, user_id: int) -> list[SessionInfo]:
        (members,) = await self.redis.read(("SMEMBERS", self._keys.user_sessions(user_id)))
        sids = [text(s) for s in members]
        if not sids:
            return []
        rows = await self.redis.read(*[("HGETALL", self._keys.session(sid)) for sid in sids])
        alive, gone = [], []
        for sid, raw in zip(sids, rows, strict=False):
            row = pairs(raw)
            if row.get("uid") != str(user_id):
                gone.append(sid)
                continue
            alive.append(SessionInfo(sid, float(row["created"]), float(row["last_used"]),
                                     row.get("user_agent", ""), row.get("ip", "")))
        if gone:  # expired sessions leave their id behind in the index
            await self.redis.execute("SREM", self._keys.user_sessions(user_id), *gone)
        return sorted(alive, key=lambda s: s.created)

    async def end(self, user_id: int, sid: str) -> bool:
        """End one of the user's sessions; False if it is not theirs or already over."""
        key = self._keys.session(sid)
        if await self.redis.execute("HGET", key, "uid") != str(user_id).encode():
            return False
        await self.redis.transaction(("DEL", key),
                                     ("SREM", self._keys.user_sessions(user_id), sid))
        return True

    async def mark_gone(self, user_id: int, ttl: int) -> None:
        """Replace the cached row by the deleted-account marker before the row is deleted
        from the database: from now on every token of the user is judged on the database."""
        key = self._keys.user(user_id)
        await self.redis.transaction(("DEL", key), ("HSET", key, GONE, "1"),
                                     ("EXPIRE", key, ttl))

    async def purge_user(self, user_id: int) -> int:
        """A user with no row in the database: end every session, atomically, and leave the
        marker for as long as any token of theirs could live. Returns the sessions ended."""
        ended = await self.redis.eval(
            _PURGE_USER, [self._keys.user(user_id), self._keys.user_sessions(user_id)],
            [self._keys.session(""), self._index_ttl])
        return int(ended)

    async def end_all(self, user_id: int, *, keep: str | None = None) -> int:
        """End every session of the user (but `keep`); returns how many were ended."""
        index = self._keys.user_sessions(user_id)
        sids = [text(s) for s in await self.redis.execute("SMEMBERS", index)]
        doomed = [sid for sid in sids if sid != keep]
        if not doomed:
            return 0
        await self.redis.transaction(("DEL", *[self._keys.session(sid) for sid in doomed]),
                                     ("SREM", index, *doomed))
        return len(doomed)
