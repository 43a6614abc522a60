"""The Redis stores (cache.py, links.py, counters.py) on the real Redis: key families, TTLs,
hashing of secrets, atomicity."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import redis.asyncio

from service.store.cache import CachedUser, UserCache
from service.store.counters import LimitCounters
from service.store.keys import RedisKeys
from service.store.links import OneTimeLinks, TakenReset
from service.store.redis_wire import RedisWire

T = TypeVar("T")
USER_TTL = 86400
ALICE = CachedUser(id=7, username="alice", email="alice@example.com", display_name="Älice ✓",
                   role="user", is_active=True, token_version=3)
TOKEN = "sEcReT-reset-token_Abc123"


@dataclass(frozen=True)
class Stores:
    keys: RedisKeys
    cache: UserCache
    links: OneTimeLinks
    counters: LimitCounters


def run(redis_url: str, prefix: str,
        body: Callable[[Stores, redis.asyncio.Redis], Awaitable[T]]) -> T:
    """Run `body` with the stores on a wire of their own, closed afterwards."""
    async def main() -> T:
        client = redis.asyncio.Redis.from_url(redis_url)
        wire = RedisWire(redis_url, timeout=5)
        keys = RedisKeys(prefix)
        try:
            return await body(Stores(keys, UserCache(wire, keys, ttl=USER_TTL),
                                     OneTimeLinks(wire, keys), LimitCounters(wire, keys)),
                              client)
        finally:
            await wire.close()
            await client.aclose()

    return asyncio.run(main())


async def keys_with_ttls(client: redis.asyncio.Redis, prefix: str) -> dict[str, int]:
    found = [k async for k in client.scan_iter(match=f"{prefix}*", count=1000)]
    return {key.decode(): await client.ttl(key) for key in found}


def test_every_key_family_has_a_ttl(redis_url: str, redis_prefix: str) -> None:
    """After every writing method has run, each key under the prefix expires."""
    async def body(stores: Stores, client: redis.asyncio.Redis) -> dict[str, int]:
        await stores.cache.put(ALICE)
        await stores.cache.fill(CachedUser(8, "bob", "bob@example.com", "", "user", True, 0))
        await stores.links.put_reset(TOKEN, 7, 3, 600)
        await stores.links.put_reset("other-token", 8, 0, 600)
        taken = await stores.links.take_reset("other-token")
        assert taken is not None
        await stores.links.restore_reset("other-token", taken)
        await stores.counters.hit("login", ["ip:127.0.0.1", "id:alice"], 60)
        await stores.counters.reserve_attempts(["id:alice", "user:7"], 900, 5)
        assert await stores.counters.take_flight(7, "owner", 60)
        assert await stores.counters.count_mail("alice@example.com", 3600) == 1
        return await keys_with_ttls(client, redis_prefix)

    ttls = run(redis_url, redis_prefix, body)
    families = {key[len(redis_prefix):].split(":", 1)[0] for key in ttls}
    assert families == {"user", "reset", "rl", "lock", "hashing", "mails"}, ttls
    assert len(ttls) == 10, ttls
    assert all(ttl > 0 for ttl in ttls.values()), ttls


def test_reset_token_is_stored_under_its_sha256_only(redis_url: str, redis_prefix: str) -> None:
    """The key is the token's sha256 digest (test_redis_keys.py pins the key's form); the
    token text appears in no key or value."""
    async def body(stores: Stores, client: redis.asyncio.Redis) -> tuple[dict[str, int], Any]:
        await stores.links.put_reset(TOKEN, 7, 3, 600)
        ttls = await keys_with_ttls(client, redis_prefix)
        return ttls, [await client.get(key) for key in ttls]

    ttls, values = run(redis_url, redis_prefix, body)
    key = RedisKeys(redis_prefix).reset(TOKEN)
    assert list(ttls) == [key]
    assert 599 <= ttls[key] <= 600
    assert values == [b"7:3"]
    assert all(TOKEN not in key and TOKEN.encode() not in value
               for key, value in zip(ttls, values, strict=False))


def test_take_reset_is_single_use(redis_url: str, redis_prefix: str) -> None:
    """A token is taken once with its user, version and TTL; then it is gone."""
    async def body(stores: Stores, client: redis.asyncio.Redis) -> list[Any]:
        await stores.links.put_reset(TOKEN, 7, 3, 600)
        return [await stores.links.take_reset(TOKEN), await stores.links.take_reset(TOKEN),
                await stores.links.take_reset("never-issued")]

    first, second, unknown = run(redis_url, redis_prefix, body)
    assert first is not None and (first.user_id, first.version) == (7, 3)
    assert 599 <= first.ttl <= 600
    assert second is None and unknown is None


def test_fifty_concurrent_takes_of_one_token_let_exactly_one_win(redis_url: str,
                                                                redis_prefix: str) -> None:
    """take_reset is atomic: of 50 simultaneous takes exactly one gets the token."""
    async def body(stores: Stores, client: redis.asyncio.Redis) -> list[Any]:
        await stores.links.put_reset(TOKEN, 7, 3, 600)
        return list(await asyncio.gather(*(stores.links.take_reset(TOKEN) for _ in range(50))))

    results = run(redis_url, redis_prefix, body)
    winners = [r for r in results if r is not None]
    assert len(winners) == 1 and (winners[0].user_id, winners[0].version) == (7, 3)
    assert results.count(None) == 49


def test_restore_reset_puts_the_token_back_with_its_remaining_ttl(redis_url: str,
                                                                  redis_prefix: str) -> None:
    """A token taken with 250 s left comes back with 250 s, not the original hour."""
    async def body(stores: Stores, client: redis.asyncio.Redis) -> tuple[Any, ...]:
        await stores.links.put_reset(TOKEN, 7, 3, 3600)
        await client.expire(stores.keys.reset(TOKEN), 250)  # as if most of the hour had passed
        taken = await stores.links.take_reset(TOKEN)
        assert taken is not None
        await stores.links.restore_reset(TOKEN, taken)
        restored_ttl = await client.ttl(stores.keys.reset(TOKEN))
        return taken.ttl, restored_ttl, await stores.links.take_reset(TOKEN)

    ttl, restored_ttl, again = run(redis_url, redis_prefix, body)
    assert 249 <= ttl <= 250 and 248 <= restored_ttl <= ttl
    assert again is not None and (again.user_id, again.version) == (7, 3)


def test_restore_reset_of_an_expired_token_stores_nothing(redis_url: str,
                                                          redis_prefix: str) -> None:
    """A remaining TTL of 0 means the token is dead: nothing is written back."""
    async def body(stores: Stores, client: redis.asyncio.Redis) -> dict[str, int]:
        await stores.links.restore_reset(TOKEN, TakenReset(7, 3, 0))
        return await keys_with_ttls(client, redis_prefix)

    assert run(redis_url, redis_prefix, body) == {}


def test_fill_user_caches_an_absent_row_with_the_user_ttl(redis_url: str,
                                                          redis_prefix: str) -> None:
    """fill_user writes the row when nothing is cached, expiring after the user TTL."""
    async def body(stores: Stores, client: redis.asyncio.Redis) -> tuple[Any, int]:
        await stores.cache.fill(ALICE)
        return await stores.cache.get(7), await client.ttl(stores.keys.user(7))

    cached, ttl = run(redis_url, redis_prefix, body)
    assert cached == ALICE and USER_TTL - 1 <= ttl <= USER_TTL


def test_fill_user_never_overwrites_a_writers_put_user(redis_url: str,
                                                       redis_prefix: str) -> None:
    """A reader's stale fill after a writer's put leaves the writer's row (writer wins)."""
    written = CachedUser(7, "alice", "alice@example.com", "New name", "admin", False, 4)

    async def body(stores: Stores, client: redis.asyncio.Redis) -> tuple[Any, int]:
        await stores.cache.put(written)
        await stores.cache.fill(ALICE)
        return await stores.cache.get(7), await client.ttl(stores.keys.user(7))

    cached, ttl = run(redis_url, redis_prefix, body)
    assert cached == written and USER_TTL - 1 <= ttl <= USER_TTL


def test_put_user_replaces_a_cached_row(redis_url: str, redis_prefix: str) -> None:
    """put_user overwrites whatever was cached, keeping the user TTL."""
    written = CachedUser(7, "alice", "alice@example.com", "", "user", True, 9)

    async def body(stores: Stores, client: redis.asyncio.Redis) -> tuple[Any, int]:
        await stores.cache.fill(ALICE)
        await client.hset(stores.keys.user(7), "stray", "field")
        await stores.cache.put(written)
        return await stores.cache.get(7), await client.ttl(stores.keys.user(7))

    cached, ttl = run(redis_url, redis_prefix, body)
    assert cached == written and USER_TTL - 1 <= ttl <= USER_TTL


def test_thirty_concurrent_hits_count_one_to_thirty(redis_url: str, redis_prefix: str) -> None:
    """30 hits at once over a limit of 10: counts 1..30 once each, 10 pass, TTL is the window."""
    limit, window = 10, 60

    async def body(stores: Stores, client: redis.asyncio.Redis) -> tuple[list[Any], int]:
        results = await asyncio.gather(*(stores.counters.hit("login", ["ip:10.0.0.1"], window)
                                         for _ in range(30)))
        return [r[0] for r in results], await client.ttl(stores.keys.rate("login", "ip:10.0.0.1"))

    hits, ttl = run(redis_url, redis_prefix, body)
    assert sorted(count for count, _ in hits) == list(range(1, 31))
    assert sum(1 for count, _ in hits if count <= limit) == limit
    assert all(window - 1 <= left <= window for _, left in hits), hits
    assert window - 1 <= ttl <= window


def test_hit_counts_each_key_and_scope_apart(redis_url: str, redis_prefix: str) -> None:
    """One hit counts against every key given; another scope or key has its own counter."""
    async def body(stores: Stores, client: redis.asyncio.Redis) -> list[Any]:
        return [await stores.counters.hit("login", ["ip:a", "id:alice"], 60),
                await stores.counters.hit("login", ["ip:a", "id:bob"], 60),
                await stores.counters.hit("register", ["ip:a"], 3600)]

    first, second, other_scope = run(redis_url, redis_prefix, body)
    assert [c for c, _ in first] == [1, 1]
    assert [c for c, _ in second] == [2, 1]
    assert other_scope == [(1, 3600)]


def test_hit_window_is_fixed_not_sliding(redis_url: str, redis_prefix: str) -> None:
    """A later hit does not push the window's end back: seconds left keep falling."""
    async def body(stores: Stores, client: redis.asyncio.Redis) -> tuple[Any, int]:
        await stores.counters.hit("login", ["ip:b"], 60)
        await client.pexpire(stores.keys.rate("login", "ip:b"), 4500)  # as if 55.5 s had passed
        result = await stores.counters.hit("login", ["ip:b"], 60)
        return result, await client.pttl(stores.keys.rate("login", "ip:b"))

    result, pttl = run(redis_url, redis_prefix, body)
    assert result == [(2, 5)]
    assert 0 < pttl <= 4500


def test_rate_keys_do_not_hold_the_identifier_in_clear(redis_url: str, redis_prefix: str) -> None:
    """The counted identifier (an email here) is hashed into the key."""
    async def body(stores: Stores, client: redis.asyncio.Redis) -> dict[str, int]:
        await stores.counters.hit("password_reset", ["id:alice@example.com"], 3600)
        return await keys_with_ttls(client, redis_prefix)

    keys = run(redis_url, redis_prefix, body)
    assert len(keys) == 1 and all("alice" not in key for key in keys), keys


def test_counting_stops_at_the_first_key_past_the_limit(redis_url: str,
                                                        redis_prefix: str) -> None:
    """hit(..., limit): a request refused on its first key (the client IP) spends nothing of
    the keys after it (an identifier's budget)."""
    async def body(stores: Stores, client: redis.asyncio.Redis) -> list[Any]:
        hit = stores.counters.hit
        return [await hit("login", ["ip:c", "id:alice"], 60, 2) for _ in range(3)] + [
            await hit("login", ["ip:d", "id:alice"], 60, 2)]

    assert [[count for count, _ in counts] for counts in run(redis_url, redis_prefix, body)] \
        == [[1, 1], [2, 2], [3], [1, 3]]


def test_a_flight_mark_is_released_only_by_its_owner(redis_url: str, redis_prefix: str) -> None:
    async def body(stores: Stores, client: redis.asyncio.Redis) -> list[bool]:
        first = await stores.counters.take_flight(7, "a", 60)
        second = await stores.counters.take_flight(7, "b", 60)
        await stores.counters.release_flight(7, "b")  # not its mark: nothing happens
        still = await stores.counters.take_flight(7, "c", 60)
        await stores.counters.release_flight(7, "a")
        return [first, second, still, await stores.counters.take_flight(7, "c", 60)]

    assert run(redis_url, redis_prefix, body) == [True, False, False, True]
