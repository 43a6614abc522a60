"""Server-side sessions (issue 3): listed, ended one by one or all at once, checked on every
Bearer request so an ended session's access token is refused at once."""

from __future__ import annotations

import datetime as dt
import re
from typing import Any

import httpx
import redis
from api import (
    API,
    USER,
    assert_refused,
    bearer,
    logged_in,
    login,
    profile,
    register,
    session_id_of,
)

from service.config import Settings
from service.store.keys import RedisKeys

NEW = "a brand new passphrase"


def test_each_login_is_a_session_listed_with_the_current_one_marked(
        client: httpx.Client, settings: Settings) -> None:
    """ASVS V3.3.4: users can see their active sessions."""
    first = register(client)
    second = logged_in(client, headers={"User-Agent": "Firefox/140"})
    listed = client.get(API + "sessions/", headers=bearer(second["access"]))
    assert listed.status_code == 200
    rows = listed.json()
    assert {row["id"] for row in rows} == {session_id_of(settings, first["access"]),
                                           session_id_of(settings, second["access"])}
    current = [row for row in rows if row["current"]]
    assert len(current) == 1 and current[0]["id"] == session_id_of(settings, second["access"])
    assert current[0]["user_agent"] == "Firefox/140" and current[0]["ip"] == "127.0.0.1"
    for field in ("created", "last_used"):  # RFC 3339 in UTC with `Z`, as users/ answers
        moment = current[0][field]
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z", moment), moment
        age = dt.datetime.now(dt.UTC) - dt.datetime.fromisoformat(moment)
        assert abs(age.total_seconds()) < 60
    assert session_id_of(settings, first["access"]) == session_id_of(settings, first["refresh"])


def test_logout_ends_the_session_and_its_access_token_at_once(client: httpx.Client) -> None:
    """ASVS V3.3.1: logout invalidates the session; the access token dies with it."""
    tokens = register(client)
    other = logged_in(client, headers={"User-Agent": "tests"})
    ended = client.post(API + "logout/", json={"refresh_token": tokens["refresh"]})
    assert ended.status_code == 205
    assert_refused(profile(client, tokens["access"]), "session_ended")
    assert profile(client, other["access"]).status_code == 200


def test_deleting_a_session_ends_only_that_one(client: httpx.Client, settings: Settings) -> None:
    """ASVS V3.3.4: a user can end any of their sessions."""
    tokens = register(client)
    other = logged_in(client, headers={"User-Agent": "tests"})
    gone = client.delete(f"{API}sessions/{session_id_of(settings, other['access'])}/",
                         headers=bearer(tokens["access"]))
    assert gone.status_code == 204 and gone.content == b""
    assert_refused(profile(client, other["access"]), "session_ended")
    assert_refused(client.post(API + "token/refresh/", json={"refresh": other["refresh"]}),
            "session_ended")
    assert profile(client, tokens["access"]).status_code == 200
    again = client.delete(f"{API}sessions/{session_id_of(settings, other['access'])}/",
                          headers=bearer(tokens["access"]))
    assert again.status_code == 404 and again.json() == {"detail": "Not found."}


def test_nobody_can_end_another_users_session(client: httpx.Client, settings: Settings) -> None:
    """ASVS V4.2.1 (IDOR): another user's session id answers 404 and stays alive."""
    alice = register(client)
    bob = register(client, username="bob", email="bob@example.com")
    response = client.delete(f"{API}sessions/{session_id_of(settings, alice['access'])}/",
                             headers=bearer(bob["access"]))
    assert response.status_code == 404
    assert profile(client, alice["access"]).status_code == 200


def test_logout_all_ends_every_session(client: httpx.Client) -> None:
    """Issue 3: logout-all/ answers 205 and ends every session of the caller."""
    tokens = register(client)
    other = logged_in(client, headers={"User-Agent": "tests"})
    done = client.post(API + "logout-all/", headers=bearer(tokens["access"]))
    assert done.status_code == 205 and done.content == b""
    for each in (tokens, other):
        assert_refused(profile(client, each["access"]), "session_ended")
        assert_refused(client.post(API + "token/refresh/", json={"refresh": each["refresh"]}),
                "session_ended")
    assert client.post(API + "logout-all/").status_code == 401


def test_password_change_keeps_this_session_and_ends_the_others(
        client: httpx.Client, settings: Settings) -> None:
    """Issue 3 + ASVS V3.3.3: after a password change every other session ends; this one goes
    on with fresh tokens, and the old password no longer logs in."""
    tokens = register(client)
    other = logged_in(client, headers={"User-Agent": "tests"})
    response = client.post(API + "password/change/", headers=bearer(tokens["access"]), json={
        "old_password": USER["password"], "password": NEW, "password2": NEW})
    assert response.status_code == 200, response.text
    fresh = response.json()
    assert set(fresh) == {"access", "refresh"}
    assert response.headers["Cache-Control"] == "no-store"
    assert session_id_of(settings, fresh["access"]) == session_id_of(settings, tokens["access"])
    assert profile(client, fresh["access"]).status_code == 200
    renewed = client.post(API + "token/refresh/", json={"refresh": fresh["refresh"]})
    assert renewed.status_code == 200
    assert_refused(profile(client, tokens["access"]), "password_changed")
    assert_refused(profile(client, other["access"]), "password_changed")
    listed = client.get(API + "sessions/", headers=bearer(fresh["access"])).json()
    assert [row["id"] for row in listed] == [session_id_of(settings, tokens["access"])]
    assert login(client).status_code == 401
    assert login(client, "alice", NEW).status_code == 200


def test_password_change_checks_the_old_password_and_the_policy(client: httpx.Client) -> None:
    """ASVS V2.1.5/V2.1.6: the current password is required; the new one meets the policy."""
    tokens = register(client)
    wrong = client.post(API + "password/change/", headers=bearer(tokens["access"]), json={
        "old_password": "not my password", "password": NEW, "password2": NEW})
    assert wrong.status_code == 400 and set(wrong.json()) == {"old_password"}
    weak = client.post(API + "password/change/", headers=bearer(tokens["access"]), json={
        "old_password": USER["password"], "password": "password", "password2": "password"})
    assert weak.status_code == 400 and set(weak.json()) == {"password"}
    mismatch = client.post(API + "password/change/", headers=bearer(tokens["access"]), json={
        "old_password": USER["password"], "password": NEW, "password2": NEW + "!"})
    assert mismatch.status_code == 400 and set(mismatch.json()) == {"password2"}
    assert profile(client, tokens["access"]).status_code == 200
    assert client.post(API + "password/change/", json={}).status_code == 401


def test_session_keys_live_as_long_as_the_refresh_token(client: httpx.Client, settings: Settings,
                                                        sync_redis: redis.Redis) -> None:
    """Redis conventions: session keys expire with what they guard (refresh lifetime)."""
    tokens = register(client)
    sid = session_id_of(settings, tokens["access"])
    session_ttl = sync_redis.ttl(RedisKeys(settings.redis.prefix).session(sid))
    index_ttl = sync_redis.ttl(RedisKeys(settings.redis.prefix).user_sessions(1))
    lifetime = settings.jwt.refresh_ttl + settings.jwt.leeway
    assert lifetime - 5 <= session_ttl <= lifetime + 1
    assert lifetime - 5 <= index_ttl <= lifetime + 1


def test_refresh_marks_the_session_used(settings: Settings, make_client: Any) -> None:
    """GET sessions/ shows when each session was last used (refresh keeps it alive)."""
    now = [2_000_000_000.0]
    client = make_client(settings, clock=lambda: now[0])
    tokens = register(client)
    now[0] += 600
    renewed = client.post(API + "token/refresh/", json={"refresh": tokens["refresh"]})
    assert renewed.status_code == 200
    row = client.get(API + "sessions/", headers=bearer(tokens["access"])).json()[0]
    assert (row["created"], row["last_used"]) == ("2033-05-18T03:33:20Z", "2033-05-18T03:43:20Z")


def test_logout_all_finds_a_session_renewed_by_a_password_change(
        client: httpx.Client, settings: Settings, sync_redis: redis.Redis) -> None:
    """A password change gives this session a new lifetime; the user's session index must
    outlive it, or logout-all (and "this wasn't me") would miss it. Simulated: the index
    from the login has expired by the time the password is changed."""
    tokens = register(client)
    sync_redis.delete(RedisKeys(settings.redis.prefix).user_sessions(1))
    fresh = client.post(API + "password/change/", headers=bearer(tokens["access"]), json={
        "old_password": USER["password"], "password": NEW, "password2": NEW}).json()
    assert client.post(API + "logout-all/", headers=bearer(fresh["access"])).status_code == 205
    assert_refused(profile(client, fresh["access"]), "session_ended")
