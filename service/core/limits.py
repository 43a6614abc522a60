"""Rate limits (API.md [rate_limit]) and the guards on password checks.

Counters are keyed by what they limit: a client address (`client_key`: IPv4 by address, IPv6
by /64), a submitted identifier (`identifier_key`, folded) or a known device (`device_key`).
"""

from __future__ import annotations

import ipaddress
import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from service.config import RateLimitSettings
from service.errors import RateLimited
from service.store.counters import LimitCounters
from service.store.users import fold

# The prefix one IPv6 host is usually given (RFC 6177 suggests /56 or /48 for sites, SLAAC
# needs /64): counting single addresses would give each host 2^64 budgets.
IPV6_PREFIX = 64


def client_key(ip: str) -> str:
    """The counter of a client address: one per IPv4 address and one per IPv6 /64, however the
    address was spelt (an IPv4-mapped IPv6 address is its IPv4 address)."""
    try:
        address = ipaddress.ip_address(ip)
    except ValueError:
        return f"ip:{ip}"  # no socket address at all (e.g. "unknown"): one shared counter
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is None:
            network = ipaddress.IPv6Network((int(address), IPV6_PREFIX), strict=False)
            return f"ip:{network}"
        address = address.ipv4_mapped
    return f"ip:{address}"


def identifier_key(identifier: str) -> str:
    return f"id:{fold(identifier)}"


def device_key(device: str) -> str:
    return f"device:{device}"


class RateLimiter:
    def __init__(self, settings: RateLimitSettings, counters: LimitCounters) -> None:
        self._s = settings
        self._counters = counters

    async def check(self, scope: str, *keys: str) -> None:
        """Count one event of `scope` (login, register, password_reset) against each key in
        turn; 429 at the first key past the rate. Keys after it are not counted: a client over
        its IP limit spends no identifier's budget."""
        if not self._s.enabled:
            return
        rate = getattr(self._s, scope)
        counts = await self._counters.hit(scope, list(keys), rate.window, rate.limit)
        over = [left for count, left in counts if count > rate.limit]
        if over:
            raise RateLimited(max(over))

    async def mail_allowed(self, address: str, per_hour: int) -> bool:
        """Count one mail anyone can trigger to `address` (whatever [rate_limit] enabled
        says: it protects a mailbox, not the service); False past `per_hour` this hour."""
        return await self._counters.count_mail(fold(address), 3600) <= per_hour


class HashInFlight(RateLimited):
    """A second password check for the same user while one is running: 429, try again soon."""

    def __init__(self) -> None:
        super().__init__(1)
        self.detail = ("Another password check for this account is in progress. Try again in "
                       "1 second.")


class OneHashPerUser:
    """At most one password hash in flight per user on re-authenticated endpoints (password
    change, account deletion), across every API process: a stolen token cannot fill the shared
    hash pool and slow everyone's login. Held in Redis with a TTL, so a crashed process frees
    it by itself."""

    def __init__(self, counters: LimitCounters, ttl: int = 60) -> None:
        self._counters = counters
        self._ttl = ttl

    @asynccontextmanager
    async def hold(self, user_id: int) -> AsyncIterator[None]:
        """Raises HashInFlight (429, Retry-After: 1) while another check of `user_id` runs."""
        owner = secrets.token_hex(8)
        if not await self._counters.take_flight(user_id, owner, self._ttl):
            raise HashInFlight()
        try:
            yield
        finally:
            await self._counters.release_flight(user_id, owner)
