"""Issue 9.6: deleted accounts. DELETE profile/ (with the password) and an admin's
DELETE users/{id}/ remove the row, end every session and token at once and free the username
and email; ids are never reused; a row deleted in SQL by an operator refuses its tokens."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import redis
from api import (
    API,
    PASSWORD,
    PROFILE,
    REFRESH,
    USERS,
    assert_refused,
    bearer,
    delete_profile,
    login,
    make_admin,
    profile,
    refresh,
    register,
    session_id_of,
    user_id_of,
)
from support import sql

from service.config import Settings
from service.store.keys import RedisKeys

ROOT = Path(__file__).resolve().parent.parent


def assert_dead(client: httpx.Client, tokens: dict[str, Any]) -> None:
    """Both tokens of a pair refused, on a Bearer endpoint and on token/refresh/."""
    assert_refused(profile(client, tokens["access"]), "user_not_found", "session_ended")
    assert_refused(refresh(client, tokens["refresh"]), "user_not_found")


def redis_keys(sync_redis: redis.Redis, settings: Settings, user_id: int,
               *sids: str) -> list[str]:
    """Which of the user's session keys, index and account data are still in Redis."""
    p = settings.redis.prefix
    keys = RedisKeys(p)
    names = [keys.session(s) for s in sids] + [keys.user_sessions(user_id)]
    found = [name for name in names if sync_redis.exists(name)]
    row: dict[bytes, bytes] = sync_redis.hgetall(keys.user(user_id))  # type: ignore[assignment]
    cached = {k.decode(): v.decode() for k, v in row.items()}
    assert cached in ({}, {"gone": "1"}), cached  # nothing of the account, at most the marker
    return found


# -- DELETE profile/ ----------------------------------------------------------------------------

def test_deleting_my_account_ends_every_token_and_frees_the_names(
        client: httpx.Client, settings: Settings, sync_redis: redis.Redis) -> None:
    """204 with an empty body; every session's access and refresh token is refused at once,
    nothing of the account stays in the database or Redis, the old password logs nobody in,
    and the username and email can be registered again, under a new id."""
    first = register(client)
    second = login(client).json()
    user_id = user_id_of(settings, first["access"])
    gone = delete_profile(client, first["access"], {"password": PASSWORD})
    assert gone.status_code == 204 and gone.content == b"", gone.text
    assert gone.headers["Cache-Control"] == "no-store"
    for tokens in (first, second):
        assert_dead(client, tokens)
    assert sql(settings, "SELECT id FROM users WHERE id = ?", user_id) == []
    assert redis_keys(sync_redis, settings, user_id, session_id_of(settings, first["access"]),
                      session_id_of(settings, second["access"])) == []
    assert login(client).status_code == 401
    again = register(client)
    assert user_id_of(settings, again["access"]) > user_id
    assert client.get(PROFILE, headers=bearer(again["access"])).status_code == 200
    for tokens in (first, second):  # the new account inherits nothing
        assert_dead(client, tokens)
    listed = client.get(API + "sessions/", headers=bearer(again["access"])).json()
    assert [row["id"] for row in listed] == [session_id_of(settings, again["access"])]


def test_a_wrong_password_deletes_nothing(client: httpx.Client, settings: Settings) -> None:
    """A wrong password is a 400 on `password`; bad bodies are 400s; no token is a 401;
    the account and its tokens are untouched."""
    tokens = register(client)
    wrong = delete_profile(client, tokens["access"], {"password": "not my password"})
    assert wrong.status_code == 400 and set(wrong.json()) == {"password"}, wrong.text
    for body in ({}, {"password": None}, {"password": 12}, {"password": ""},
                 {"password": "x" * 5000}, {"password": "a\x00b"}):
        answer = delete_profile(client, tokens["access"], body)
        assert answer.status_code == 400 and set(answer.json()) == {"password"}, (body, answer.text)
    empty = client.request("DELETE", PROFILE, headers=bearer(tokens["access"]))
    assert empty.status_code == 400 and "detail" in empty.json()
    assert client.request("DELETE", PROFILE, json={"password": PASSWORD}).status_code == 401
    assert client.get(PROFILE, headers=bearer(tokens["access"])).status_code == 200
    assert client.post(REFRESH, json={"refresh": tokens["refresh"]}).status_code == 200
    assert len(sql(settings, "SELECT id FROM users")) == 1


def test_pending_links_of_a_deleted_account_do_nothing(
        client: httpx.Client, settings: Settings, sync_redis: redis.Redis) -> None:
    """A reset, verification or "this wasn't me" link mailed before the deletion is refused
    afterwards (400 on `token`), also once the email belongs to a new account."""
    tokens = register(client)
    user_id = user_id_of(settings, tokens["access"])
    keys = RedisKeys(settings.redis.prefix)
    # What send_reset, send_verification and an alert leave in Redis (keys by their digest).
    sync_redis.set(keys.reset("reset-link"), f"{user_id}:0", ex=600)
    sync_redis.set(keys.link("verify", "verify-link"), user_id, ex=600)
    sync_redis.set(keys.link("notme", "notme-link"), user_id, ex=600)
    assert delete_profile(client, tokens["access"], {"password": PASSWORD}).status_code == 204
    again = register(client)
    new = "another long passphrase"
    answers = [
        client.post(API + "password-reset/confirm/", json={"token": "reset-link", "password": new,
                                                           "password2": new}),
        client.post(API + "verify-email/", json={"token": "verify-link"}),
        client.post(API + "security/not-me/", json={"token": "notme-link"}),
    ]
    for answer in answers:
        assert answer.status_code == 400 and set(answer.json()) == {"token"}, answer.text
    assert client.get(PROFILE, headers=bearer(again["access"])).status_code == 200
    assert login(client, "alice", new).status_code == 401
    new_id = user_id_of(settings, again["access"])
    assert [tuple(row) for row in sql(settings, "SELECT email_verified FROM users WHERE id = ?",
                                        new_id)] == [(0,)]


# -- DELETE users/{id}/ -------------------------------------------------------------------------

def test_an_admin_deletes_an_account(client: httpx.Client, settings: Settings,
                                     sync_redis: redis.Redis) -> None:
    """204; the user's tokens are refused at once and the row is gone (GET is a 404, a second
    DELETE too); the name is free again."""
    bob = register(client, username="bob", email="bob@example.com")
    admin = make_admin(client, settings, sync_redis)["access"]
    bob_id = user_id_of(settings, bob["access"])
    gone = client.delete(f"{USERS}{bob_id}/", headers=bearer(admin))
    assert gone.status_code == 204 and gone.content == b"", gone.text
    assert_dead(client, bob)
    assert client.get(f"{USERS}{bob_id}/", headers=bearer(admin)).status_code == 404
    assert client.delete(f"{USERS}{bob_id}/", headers=bearer(admin)).status_code == 404
    assert client.delete(f"{USERS}nope/", headers=bearer(admin)).status_code == 404
    again = register(client, username="bob", email="bob@example.com")
    assert user_id_of(settings, again["access"]) > bob_id


def test_an_admin_cannot_delete_themselves_and_users_cannot_delete_others(
        client: httpx.Client, settings: Settings, sync_redis: redis.Redis) -> None:
    """Deleting one's own account through the admin API is a 400 (`non_field_errors`: use
    DELETE profile/); a non-admin gets 403; nobody is deleted."""
    bob = register(client, username="bob", email="bob@example.com")
    admin = make_admin(client, settings, sync_redis)["access"]
    mine = client.delete(f"{USERS}{user_id_of(settings, admin)}/", headers=bearer(admin))
    assert mine.status_code == 400 and set(mine.json()) == {"non_field_errors"}, mine.text
    other = client.delete(f"{USERS}{user_id_of(settings, admin)}/", headers=bearer(bob["access"]))
    assert other.status_code == 403
    assert client.get(PROFILE, headers=bearer(admin)).status_code == 200
    assert len(sql(settings, "SELECT id FROM users")) == 2


# -- rows deleted in SQL, ids never reused, a crash half-way -----------------------------------

def test_an_id_is_never_given_to_a_second_account(client: httpx.Client,
                                                  settings: Settings) -> None:
    """The highest id deleted (by an operator, in SQL): the next account gets a new id and
    none of the deleted one's sessions; the deleted one's tokens are refused, and the refusal
    ends its sessions."""
    register(client, username="bob", email="bob@example.com")
    alice = register(client)
    alice_id = user_id_of(settings, alice["access"])
    sql(settings, "DELETE FROM users WHERE id = ?", alice_id)
    carol = register(client, username="carol", email="carol@example.com")
    assert user_id_of(settings, carol["access"]) == alice_id + 1
    assert_refused(client.post(REFRESH, json={"refresh": alice["refresh"]}), "user_not_found")
    assert_refused(client.get(PROFILE, headers=bearer(alice["access"])), "session_ended",
            "user_not_found")
    listed = client.get(API + "sessions/", headers=bearer(carol["access"])).json()
    assert [row["id"] for row in listed] == [session_id_of(settings, carol["access"])]


def test_an_id_given_again_carries_nothing_of_its_first_account(
        client: httpx.Client, settings: Settings) -> None:
    """An id can still come round again: the highest row deleted in SQL before migration 0003
    (its sequence starts at the highest id kept) or a database restored from a backup. The
    deleted account's refresh token then refreshed into the new account (token_state read
    the new row: same id, same version 0), its access token acted as it, and its sessions
    were listed as the new account's. A new account starts with no sessions of its id."""
    register(client, username="bob", email="bob@example.com")
    alice = register(client)
    alice_id = user_id_of(settings, alice["access"])
    sql(settings, "DELETE FROM users WHERE id = ?", alice_id)
    sql(settings, "UPDATE sqlite_sequence SET seq = ? WHERE name = 'users'", alice_id - 1)
    carol = register(client, username="carol", email="carol@example.com")
    assert user_id_of(settings, carol["access"]) == alice_id  # the id came round again
    assert_refused(client.post(REFRESH, json={"refresh": alice["refresh"]}), "session_ended")
    assert_refused(client.get(PROFILE, headers=bearer(alice["access"])), "session_ended")
    listed = client.get(API + "sessions/", headers=bearer(carol["access"])).json()
    assert [row["id"] for row in listed] == [session_id_of(settings, carol["access"])]


def test_a_row_deleted_in_sql_refuses_its_tokens_once_the_cache_is_gone(
        client: httpx.Client, settings: Settings, sync_redis: redis.Redis) -> None:
    """An operator's SQL delete, then the cached row expires (or Redis restarts without it):
    the access token reads the database, finds nobody, and every session of the id ends."""
    alice = register(client)
    other = login(client).json()
    user_id = user_id_of(settings, alice["access"])
    sql(settings, "DELETE FROM users WHERE id = ?", user_id)
    sync_redis.delete(RedisKeys(settings.redis.prefix).user(user_id))
    assert_refused(client.get(PROFILE, headers=bearer(alice["access"])), "user_not_found")
    assert redis_keys(sync_redis, settings, user_id, session_id_of(settings, alice["access"]),
                      session_id_of(settings, other["access"])) == []
    assert_dead(client, other)


def test_a_crash_before_the_row_is_deleted_leaves_the_account_whole(
        client: httpx.Client, settings: Settings, sync_redis: redis.Redis) -> None:
    """Step 1 of a deletion done (the cached row replaced by the marker), then a crash: the
    account works as before (its requests read the database meanwhile), and a later
    deletion completes."""
    tokens = register(client)
    user_id = user_id_of(settings, tokens["access"])
    key = RedisKeys(settings.redis.prefix).user(user_id)
    sync_redis.delete(key)
    sync_redis.hset(key, "gone", "1")
    sync_redis.expire(key, 120)
    profile = client.get(PROFILE, headers=bearer(tokens["access"]))
    assert profile.status_code == 200 and profile.json()["username"] == "alice"
    assert client.post(REFRESH, json={"refresh": tokens["refresh"]}).status_code == 200
    assert login(client).status_code == 200
    assert delete_profile(client, tokens["access"], {"password": PASSWORD}).status_code == 204
    assert_dead(client, tokens)


def test_a_crash_after_the_row_is_deleted_still_refuses_every_token(
        client: httpx.Client, settings: Settings, sync_redis: redis.Redis) -> None:
    """Steps 1 and 2 done (marker, row deleted), then a crash before the sessions ended:
    every token is refused all the same, and the first refusal ends the sessions."""
    tokens = register(client)
    other = login(client).json()
    user_id = user_id_of(settings, tokens["access"])
    key = RedisKeys(settings.redis.prefix).user(user_id)
    sync_redis.delete(key)
    sync_redis.hset(key, "gone", "1")
    sync_redis.expire(key, 120)
    sql(settings, "DELETE FROM users WHERE id = ?", user_id)
    assert_refused(client.get(PROFILE, headers=bearer(tokens["access"])), "user_not_found")
    assert redis_keys(sync_redis, settings, user_id, session_id_of(settings, tokens["access"]),
                      session_id_of(settings, other["access"])) == []
    for each in (tokens, other):
        assert_dead(client, each)


# -- the operator's command -------------------------------------------------------------------

def cli(settings: Settings, *args: str, redis_url: str | None = None
        ) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AUTH_")}
    env.update({"PYTHONPATH": str(ROOT), "AUTH_DATABASE_URL": settings.database.url,
                "AUTH_REDIS_URL": redis_url or settings.redis.url,
                "AUTH_REDIS_PREFIX": settings.redis.prefix, "AUTH_REDIS_SOCKET_TIMEOUT": "3",
                "AUTH_DATA_DIR": str(settings.data_dir)})
    return subprocess.run([sys.executable, "-m", "service.cli", *args],
                          cwd=settings.data_dir.parent, env=env, capture_output=True, text=True,
                          timeout=60)


def test_authsvc_delete_user_ends_every_session_at_once(
        client: httpx.Client, settings: Settings, sync_redis: redis.Redis) -> None:
    """`authsvc delete-user NAME`: the same deletion for operators, unlike a DELETE in SQL
    (whose access tokens live on the cached row until they expire)."""
    tokens = register(client)
    other = login(client).json()
    user_id = user_id_of(settings, tokens["access"])
    unreachable = cli(settings, "delete-user", "alice", redis_url="redis://127.0.0.1:1/0")
    assert unreachable.returncode != 0 and "could not delete alice" in unreachable.stderr
    assert client.get(PROFILE, headers=bearer(tokens["access"])).status_code == 200
    assert cli(settings, "delete-user", "nobody").returncode != 0
    done = cli(settings, "delete-user", "ALICE@example.com")
    assert done.returncode == 0, done.stderr
    assert f"id {user_id}" in done.stdout
    for each in (tokens, other):
        assert_dead(client, each)
    assert redis_keys(sync_redis, settings, user_id, session_id_of(settings, tokens["access"]),
                      session_id_of(settings, other["access"])) == []
    assert sql(settings, "SELECT id FROM users") == []
