"""Issue 9.7: a Redis rollback (restored from an older snapshot, or a failover to a replica
that missed the last writes) must not undo a password change or reset, a deactivation, a role
change or a deletion: a refresh is judged on the database's row, and heals the cache.

The rollback is simulated the way it happens: the keys as they were (DUMP) are put back over
the newer ones (RESTORE ... REPLACE) after the change."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
import redis
from api import (
    API,
    PASSWORD,
    PROFILE,
    REFRESH,
    USERS,
    assert_refused,
    bearer,
    claims,
    logged_in,
    make_admin,
    register,
)

from service.config import Settings
from service.store.keys import RedisKeys

NEW = "a brand new passphrase"


class Snapshot:
    """Some keys as they are now, to be put back later (TTL included)."""

    def __init__(self, sync_redis: redis.Redis, keys: list[str]) -> None:
        self.redis = sync_redis
        self.saved = [(key, sync_redis.dump(key), sync_redis.pttl(key)) for key in keys]
        assert all(dump is not None for _, dump, _ in self.saved), "nothing to snapshot"

    def restore(self) -> None:
        for key, dump, ttl in self.saved:
            self.redis.restore(key, max(ttl, 0), dump or b"", replace=True)


def keys_of(settings: Settings, *pairs: dict[str, Any]) -> list[str]:
    """The cached user row, the session index and the sessions of these token pairs."""
    p = settings.redis.prefix
    user_id = claims(settings, pairs[0]["access"])["sub"]
    return [RedisKeys(p).user(user_id), RedisKeys(p).user_sessions(user_id),
            *(RedisKeys(p).session(claims(settings, each["access"])["sid"]) for each in pairs)]


@pytest.fixture(params=[False, True], ids=["plain", "rotating"])
def api(request: pytest.FixtureRequest, settings: Settings, make_client: Any) -> httpx.Client:
    rotate = settings.replace(jwt={"rotate_refresh_tokens": request.param},
                              auth={"extra_roles": ("editor",)})
    return make_client(rotate)  # type: ignore[no-any-return]


def test_a_password_change_survives_a_rollback(api: httpx.Client, settings: Settings,
                                               sync_redis: redis.Redis) -> None:
    """The other session, ended by the change, comes back with the snapshot: its refresh is
    refused (`password_changed`), which heals the cached row, so its access token is refused
    too. The session that changed the password goes on with its fresh tokens."""
    mine = register(api)
    other = logged_in(api)
    snapshot = Snapshot(sync_redis, keys_of(settings, mine, other))
    changed = api.post(API + "password/change/", headers=bearer(mine["access"]), json={
        "old_password": PASSWORD, "password": NEW, "password2": NEW})
    assert changed.status_code == 200, changed.text
    snapshot.restore()
    assert_refused(api.post(REFRESH, json={"refresh": other["refresh"]}), "password_changed")
    assert_refused(api.get(PROFILE, headers=bearer(other["access"])), "password_changed")
    fresh = changed.json()
    assert api.get(PROFILE, headers=bearer(fresh["access"])).status_code == 200


def test_a_password_reset_survives_a_rollback(api: httpx.Client, settings: Settings,
                                              sync_redis: redis.Redis) -> None:
    """Every session ended by a reset comes back with the snapshot: refused all the same."""
    tokens = register(api)
    snapshot = Snapshot(sync_redis, keys_of(settings, tokens))
    token = "a-reset-token"  # what send_reset stores: the digest, the user id and version
    owner = claims(settings, tokens["access"])["sub"]
    sync_redis.set(RedisKeys(settings.redis.prefix).reset(token), f"{owner}:0", ex=600)
    reset = api.post(API + "password-reset/confirm/", json={"token": token, "password": NEW,
                                                            "password2": NEW})
    assert reset.status_code == 200, reset.text
    snapshot.restore()
    assert_refused(api.post(REFRESH, json={"refresh": tokens["refresh"]}), "password_changed")
    assert_refused(api.get(PROFILE, headers=bearer(tokens["access"])), "password_changed")


def test_a_deactivation_survives_a_rollback(api: httpx.Client, settings: Settings,
                                            sync_redis: redis.Redis) -> None:
    """A deactivated user's sessions come back with the snapshot: the refresh is refused
    (`user_inactive`) and the sessions end again."""
    bob = register(api, username="bob", email="bob@example.com")
    admin = make_admin(api, settings, sync_redis)["access"]
    bob_keys = keys_of(settings, bob)
    snapshot = Snapshot(sync_redis, bob_keys)
    bob_id = claims(settings, bob["access"])["sub"]
    off = api.patch(f"{USERS}{bob_id}/", json={"is_active": False}, headers=bearer(admin))
    assert off.status_code == 200, off.text
    snapshot.restore()
    assert_refused(api.post(REFRESH, json={"refresh": bob["refresh"]}), "user_inactive")
    assert sync_redis.exists(bob_keys[2]) == 0  # the session restored by the rollback ended
    assert api.get(PROFILE, headers=bearer(bob["access"])).status_code == 401


def test_a_role_change_survives_a_rollback(api: httpx.Client, settings: Settings,
                                           sync_redis: redis.Redis) -> None:
    """The old role's refresh token is refused after the rollback; a token minted under the
    new role is renewed with the database's role even while the cache holds the old row,
    and the cache is healed."""
    bob = register(api, username="bob", email="bob@example.com")
    admin = make_admin(api, settings, sync_redis)["access"]
    bob_id = claims(settings, bob["access"])["sub"]
    user_key = RedisKeys(settings.redis.prefix).user(bob_id)
    snapshot = Snapshot(sync_redis, keys_of(settings, bob))
    promoted = api.patch(f"{USERS}{bob_id}/", json={"role": "editor"}, headers=bearer(admin))
    assert promoted.status_code == 200, promoted.text
    snapshot.restore()
    assert_refused(api.post(REFRESH, json={"refresh": bob["refresh"]}), "password_changed")
    fresh = logged_in(api, "bob")
    assert claims(settings, fresh["access"])["role"] == "editor"
    assert sync_redis.hget(user_key, "role") == b"editor"
    snapshot.restore()  # the old cached row (role user) written back once more
    assert sync_redis.hget(user_key, "role") == b"user"
    renewed = api.post(REFRESH, json={"refresh": fresh["refresh"]})
    assert renewed.status_code == 200, renewed.text
    assert claims(settings, renewed.json()["access"])["role"] == "editor"
    profile = api.get(PROFILE, headers=bearer(renewed.json()["access"]))
    assert profile.status_code == 200 and profile.json()["role"] == "editor"


def test_a_token_newer_than_the_cached_row_heals_it(api: httpx.Client, settings: Settings,
                                                    sync_redis: redis.Redis) -> None:
    """After a rollback of the cached row alone, a Bearer request with a token minted after
    the change is answered from the database's row (not refused), and the cache is healed."""
    mine = register(api)
    user_key = RedisKeys(settings.redis.prefix).user(claims(settings, mine["access"])["sub"])
    snapshot = Snapshot(sync_redis, [user_key])
    fresh = api.post(API + "password/change/", headers=bearer(mine["access"]), json={
        "old_password": PASSWORD, "password": NEW, "password2": NEW}).json()
    snapshot.restore()
    assert sync_redis.hget(user_key, "ver") == b"0"
    assert api.get(PROFILE, headers=bearer(fresh["access"])).status_code == 200
    assert sync_redis.hget(user_key, "ver") == b"1"
    assert_refused(api.get(PROFILE, headers=bearer(mine["access"])), "password_changed")


def test_a_deletion_survives_a_rollback(api: httpx.Client, settings: Settings,
                                        sync_redis: redis.Redis) -> None:
    """A deleted account's keys come back with the snapshot: its refresh is refused
    (`user_not_found`) and every session it brought back ends."""
    tokens = register(api)
    other = logged_in(api)
    keys = keys_of(settings, tokens, other)
    snapshot = Snapshot(sync_redis, keys)
    gone = api.request("DELETE", PROFILE, json={"password": PASSWORD},
                       headers=bearer(tokens["access"]))
    assert gone.status_code == 204, gone.text
    snapshot.restore()
    assert_refused(api.post(REFRESH, json={"refresh": other["refresh"]}), "user_not_found")
    assert [key for key in keys[1:] if sync_redis.exists(key)] == []
    assert_refused(api.get(PROFILE, headers=bearer(tokens["access"])), "session_ended")
