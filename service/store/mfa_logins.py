"""Sign-ins waiting for their second factor (login/ -> login/mfa/), in Redis under
`mfa_login:{sha256(token)}` (keys.py) for [mfa] login_ttl: the token itself is never stored.

One attempt at a time per pending sign-in, each counted, and the sign-in is used up by the
attempt that completes it: all three are one Lua script each, so parallel requests with one
mfa_token cannot try more codes than allowed, nor both complete it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from service.store.keys import RedisKeys
from service.store.redis_wire import RedisWire, Script, pairs, text

# Longer than one attempt can take (the database and Redis time out well before).
BUSY_FOR = 30

# KEYS: the pending sign-in. ARGV: max attempts, now, BUSY_FOR. -> {status, fields}; status:
# ok | missing | busy (another attempt is being judged) | exhausted (that was one too many:
# it is gone). `busy` holds when its attempt began: one whose request died (a lost Redis
# reply, a killed process) stops counting as in flight after BUSY_FOR seconds.
_BEGIN = Script("""
local f = redis.call('HGETALL', KEYS[1])
if #f == 0 then return {'missing'} end
local busy = redis.call('HGET', KEYS[1], 'busy')
if busy and tonumber(ARGV[2]) - tonumber(busy) < tonumber(ARGV[3]) then return {'busy'} end
redis.call('HSET', KEYS[1], 'busy', ARGV[2])
local n = redis.call('HINCRBY', KEYS[1], 'attempts', 1)
if n > tonumber(ARGV[1]) then
  redis.call('DEL', KEYS[1])
  return {'exhausted'}
end
return {'ok', f}
""")


@dataclass(frozen=True)
class PendingLogin:
    """What the password step established, for the second step to finish."""

    user_id: int
    token_version: int
    counters: list[str]  # the lockout counters the sign-in spends (core/lockout.py)
    device: str          # the known device it came from ("" for none)
    device_token: str    # the device token it sent ("" for none)
    ip: str
    user_agent: str

    def fields(self) -> dict[str, str]:
        return {"uid": str(self.user_id), "ver": str(self.token_version),
                "counters": json.dumps(self.counters), "device": self.device,
                "device_token": self.device_token, "ip": self.ip,
                "user_agent": self.user_agent[:256], "attempts": "0"}

    @classmethod
    def parse(cls, f: dict[str, str]) -> PendingLogin:
        return cls(int(f["uid"]), int(f["ver"]), list(json.loads(f["counters"])), f["device"],
                   f["device_token"], f["ip"], f["user_agent"])


@dataclass(frozen=True)
class Attempt:
    status: str  # ok | missing | busy | exhausted
    login: PendingLogin | None = None


class PendingLogins:
    def __init__(self, redis: RedisWire, keys: RedisKeys, *, ttl: int) -> None:
        self._redis = redis
        self._keys = keys
        self._ttl = ttl

    async def put(self, token: str, login: PendingLogin) -> None:
        key = self._keys.mfa_login(token)
        flat = [item for pair in login.fields().items() for item in pair]
        await self._redis.transaction(("HSET", key, *flat), ("EXPIRE", key, self._ttl))

    async def begin_attempt(self, token: str, max_attempts: int, now: float) -> Attempt:
        """Claim the pending sign-in for one attempt at a code (counted)."""
        status, *rest = await self._redis.eval(_BEGIN, [self._keys.mfa_login(token)],
                                               [max_attempts, int(now), BUSY_FOR])
        status = text(status)
        if status != "ok":
            return Attempt(status)
        return Attempt(status, PendingLogin.parse(pairs(rest[0])))

    async def peek(self, token: str) -> PendingLogin | None:
        """The pending sign-in, without spending an attempt (a passkey's options)."""
        flat = await self._redis.execute("HGETALL", self._keys.mfa_login(token))
        return PendingLogin.parse(pairs(flat)) if flat else None

    async def failed(self, token: str) -> None:
        """The attempt was refused: the next one may begin."""
        await self._redis.execute("HDEL", self._keys.mfa_login(token), "busy")

    async def finish(self, token: str) -> None:
        """The sign-in completed: its token is used up."""
        await self._redis.execute("DEL", self._keys.mfa_login(token))
