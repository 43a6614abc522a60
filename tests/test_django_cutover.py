"""The move from the Django reference, end to end on what it made (tests/fixtures/django_ref):
its users imported, each logging in with the old password (every hash format), and the
browsers' old simplejwt tokens working through the cut-over, dying when revoked on either
side, on SQLite and on PostgreSQL."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
from api import (
    LOGIN,
    LOGOUT,
    LOGOUT_ALL,
    PASSWORD_CHANGE,
    PROFILE,
    REFRESH,
    SESSIONS,
    assert_refused,
    bearer,
    login,
)
from django_ref import (
    BY_FORMAT,
    TOKENS,
    USERS,
    copy_fixture_to_postgres,
    drop_fixture_from_postgres,
    migration_settings,
    run_import,
    session_of,
)
from support import delete_prefixed, sql

from service.config import DatabaseSettings, Settings
from service.store import migrate


@pytest.fixture
def cutover(settings: Settings) -> Settings:
    """authsvc with the reference's users imported, accepting its tokens for a day."""
    settings = settings.replace(migration=migration_settings())
    run_import(settings)
    return settings


@pytest.fixture
def api(cutover: Settings, make_client: Any) -> httpx.Client:
    return make_client(cutover)  # type: ignore[no-any-return]


def stored_hash(settings: Settings, username: str) -> str:
    return str(sql(settings, "SELECT password_hash FROM users WHERE username = ?",
                   username)[0]["password_hash"])


# -- passwords ---------------------------------------------------------------------------------
@pytest.mark.parametrize("hash_format", sorted(BY_FORMAT))
def test_each_hash_format_logs_in_with_the_old_password_then_is_argon2id(
        hash_format: str, cutover: Settings, api: httpx.Client) -> None:
    user = BY_FORMAT[hash_format]
    assert stored_hash(cutover, user["username"]) == user["password_hash"]  # kept as it was
    assert login(api, user["username"], user["password"] + "!").status_code == 401
    assert stored_hash(cutover, user["username"]) == user["password_hash"]
    answer = login(api, user["email"].upper(), user["password"])
    assert answer.status_code == 200, answer.text
    assert answer.json()["user"] == {"username": user["username"], "email": user["email"]}
    assert stored_hash(cutover, user["username"]).startswith("$argon2id$")  # re-hashed once
    assert login(api, user["username"], user["password"]).status_code == 200
    assert login(api, user["username"], user["password"] + "!").status_code == 401


def test_unusable_and_inactive_accounts_do_not_log_in(api: httpx.Client) -> None:
    assert login(api, "nopass", "any password at all").status_code == 401
    inactive = USERS["inactive"]
    refused = login(api, "inactive", inactive["password"])
    assert refused.status_code == 401 and refused.json()["code"] == "no_active_account"


def test_the_admin_keeps_its_role(api: httpx.Client) -> None:
    admin = USERS["siteadmin"]
    tokens = login(api, admin["email"], admin["password"]).json()
    me = api.get(PROFILE, headers=bearer(tokens["access"])).json()
    assert me == {"username": "siteadmin", "email": "admin@example.com",
                  "display_name": "Site Admin", "role": "admin"}


# -- old tokens ----------------------------------------------------------------------------
def session_ids(api: httpx.Client, access: str) -> list[str]:
    answer = api.get(SESSIONS, headers=bearer(access))
    assert answer.status_code == 200, answer.text
    return [s["id"] for s in answer.json()]


def test_an_old_access_token_works_on_bearer_endpoints(api: httpx.Client) -> None:
    user = USERS["argon2_one"]
    old = session_of(user)
    me = api.get(PROFILE, headers=bearer(old["access"]))
    assert me.status_code == 200, me.text
    assert me.json()["username"] == "argon2_one"
    assert me.json()["display_name"] == user["display_name"]


def test_an_old_refresh_token_starts_one_session_and_keeps_it(
        api: httpx.Client, caplog: pytest.LogCaptureFixture) -> None:
    user = USERS["PBKDF2.Two"]
    first, second = user["sessions"]
    with caplog.at_level("INFO", logger="authsvc.migration"):
        one = api.post(REFRESH, json={"refresh": first["refresh"]},
                       headers={"User-Agent": "old browser"})
    assert one.status_code == 200, one.text
    assert set(one.json()) == {"access"}  # the contract's answer, rotation off
    assert any("simplejwt token used: refresh, first use" in r.getMessage()
               for r in caplog.records)
    sessions = api.get(SESSIONS, headers=bearer(one.json()["access"])).json()
    assert len(sessions) == 1 and sessions[0]["current"] and sessions[0]["user_agent"] == \
        "old browser"
    again = api.post(REFRESH, json={"refresh": first["refresh"]})
    assert again.status_code == 200
    assert session_ids(api, again.json()["access"]) == [sessions[0]["id"]]  # the same session
    other = api.post(REFRESH, json={"refresh": second["refresh"]}).json()["access"]
    assert len(session_ids(api, other)) == 2  # the other browser: a session of its own


def test_old_tokens_blacklisted_on_the_old_side_stay_refused(api: httpx.Client) -> None:
    user = USERS["bcrypt_one"]
    revoked = session_of(user, logged_out=True)
    assert_refused(api.post(REFRESH, json={"refresh": revoked["refresh"]}), "token_revoked")
    assert api.post(LOGOUT, json={"refresh_token": revoked["refresh"]}).status_code == 400
    live = session_of(user)
    assert api.post(REFRESH, json={"refresh": live["refresh"]}).status_code == 200


def test_logout_with_an_old_refresh_token_revokes_it_and_the_old_access_tokens(
        api: httpx.Client) -> None:
    user = USERS["ARGON2.Two"]
    first, second = user["sessions"]
    started = api.post(REFRESH, json={"refresh": first["refresh"]}).json()["access"]
    assert api.post(LOGOUT, json={"refresh_token": first["refresh"]}).status_code == 205
    assert_refused(api.post(REFRESH, json={"refresh": first["refresh"]}), "token_revoked")
    assert_refused(api.get(PROFILE, headers=bearer(started)), "session_ended")
    # Old access tokens name no session: a logout ends every one of that user's.
    assert_refused(api.get(PROFILE, headers=bearer(first["access"])), "session_ended")
    assert api.post(LOGOUT, json={"refresh_token": first["refresh"]}).status_code == 400
    # The other browser's refresh token is its own: it goes on, and a fresh access token works.
    renewed = api.post(REFRESH, json={"refresh": second["refresh"]})
    assert renewed.status_code == 200, renewed.text
    assert api.get(PROFILE, headers=bearer(renewed.json()["access"])).status_code == 200


def test_a_never_used_old_refresh_token_logs_out(api: httpx.Client) -> None:
    token = session_of(USERS["SCRYPT.Two"])["refresh"]
    assert api.post(LOGOUT, json={"refresh_token": token}).status_code == 205
    assert_refused(api.post(REFRESH, json={"refresh": token}), "token_revoked")


def test_logout_all_on_the_new_side_ends_old_tokens_even_after_redis_is_lost(
        cutover: Settings, api: httpx.Client) -> None:
    user = USERS["BCRYPT.Two"]
    first, second = user["sessions"]
    access = api.post(REFRESH, json={"refresh": first["refresh"]}).json()["access"]
    assert api.post(LOGOUT_ALL, headers=bearer(access)).status_code == 205
    assert_refused(api.post(REFRESH, json={"refresh": first["refresh"]}), "session_ended")
    assert_refused(api.get(PROFILE, headers=bearer(second["access"])), "session_ended")
    # A Redis that lost every key (FLUSHALL, a new server) must not let the token start anew.
    delete_prefixed(cutover.redis.url, cutover.redis.prefix)
    assert_refused(api.post(REFRESH, json={"refresh": first["refresh"]}), "session_ended")


def test_a_password_change_with_an_old_access_token_ends_the_old_tokens(
        api: httpx.Client) -> None:
    user = USERS["bcryptsha_one"]
    old = session_of(user)
    changed = api.post(PASSWORD_CHANGE, headers=bearer(old["access"]), json={
        "old_password": user["password"], "password": "a brand new passphrase",
        "password2": "a brand new passphrase"})
    assert changed.status_code == 200, changed.text
    assert api.get(PROFILE, headers=bearer(changed.json()["access"])).status_code == 200
    assert_refused(api.post(REFRESH, json={"refresh": old["refresh"]}), "password_changed")
    assert_refused(api.get(PROFILE, headers=bearer(old["access"])), "password_changed")
    assert login(api, user["username"], "a brand new passphrase").status_code == 200


def test_a_deleted_account_refuses_its_old_tokens(api: httpx.Client) -> None:
    user = USERS["scrypt_one"]
    old = session_of(user)
    gone = api.request("DELETE", PROFILE, headers=bearer(old["access"]),
                       json={"password": user["password"]})
    assert gone.status_code == 204, gone.text
    assert_refused(api.post(REFRESH, json={"refresh": old["refresh"]}), "user_not_found")
    assert_refused(api.get(PROFILE, headers=bearer(old["access"])), "user_not_found")


def test_rotation_hands_out_authsvc_pairs_and_catches_reuse(
        cutover: Settings, make_client: Any) -> None:
    api = make_client(cutover.replace(jwt={"rotate_refresh_tokens": True, "rotation_grace": 0}))
    old = session_of(USERS["pbkdf2_one"])
    rotated = api.post(REFRESH, json={"refresh": old["refresh"]})
    assert rotated.status_code == 200 and set(rotated.json()) == {"access", "refresh"}
    assert api.post(REFRESH, json={"refresh": rotated.json()["refresh"]}).status_code == 200
    time.sleep(1.1)  # past rotation_grace (0 s): the replaced old token used again is theft
    assert_refused(api.post(REFRESH, json={"refresh": old["refresh"]}), "token_reused")


def test_after_accept_until_or_without_the_setting_old_tokens_are_refused(
        cutover: Settings, make_client: Any) -> None:
    old = session_of(USERS["siteadmin"])
    for settings in (cutover.replace(migration=migration_settings(until=time.time() - 1)),
                     cutover.replace(migration={"simplejwt_signing_key": "",
                                                "accept_until": ""})):
        api = make_client(settings)
        assert_refused(api.post(REFRESH, json={"refresh": old["refresh"]}), "bad_signature")
        assert_refused(api.get(PROFILE, headers=bearer(old["access"])), "bad_signature")
        assert api.post(LOGIN, json={"username_or_email": "siteadmin",
                                     "password": USERS["siteadmin"]["password"]}
                        ).status_code == 200


def test_an_old_token_of_a_skipped_user_is_refused(api: httpx.Client) -> None:
    """dave@home was not imported (`@` in the username): their old tokens name no user."""
    old = session_of(USERS["dave@home"])
    assert_refused(api.post(REFRESH, json={"refresh": old["refresh"]}), "user_not_found")
    assert_refused(api.get(PROFILE, headers=bearer(old["access"])), "user_not_found")


# -- PostgreSQL ------------------------------------------------------------------------------
@pytest.fixture
def on_postgres(settings: Settings, empty_postgres: str) -> Iterator[Settings]:
    """authsvc on PostgreSQL, and the reference's tables copied into the same database."""
    migrate.upgrade(empty_postgres)
    copy_fixture_to_postgres(empty_postgres)
    try:
        yield settings.replace(database=DatabaseSettings(url=empty_postgres),
                               migration=migration_settings())
    finally:
        drop_fixture_from_postgres(empty_postgres)


@pytest.mark.postgres
def test_the_cutover_on_postgresql(on_postgres: Settings, make_client: Any,
                                   tmp_path: Path) -> None:
    first = run_import(on_postgres, on_postgres.database.url)
    assert first.imported == 15 and first.tokens_revoked == 5, first.lines()
    again = run_import(on_postgres, on_postgres.database.url)
    assert (again.imported, again.updated, again.unchanged, again.tokens_revoked) == \
        (0, 0, 15, 0), again.lines()
    api = make_client(on_postgres)
    user = BY_FORMAT["argon2"]
    assert login(api, user["username"], user["password"]).status_code == 200
    old = session_of(user)
    refreshed = api.post(REFRESH, json={"refresh": old["refresh"]})
    assert refreshed.status_code == 200, refreshed.text
    assert api.get(PROFILE, headers=bearer(old["access"])).status_code == 200
    assert_refused(api.post(REFRESH, json={"refresh": session_of(user, True)["refresh"]}),
                   "token_revoked")
    assert api.post(LOGOUT, json={"refresh_token": old["refresh"]}).status_code == 205
    assert_refused(api.post(REFRESH, json={"refresh": old["refresh"]}), "token_revoked")


def test_the_openapi_document_says_when_old_tokens_are_accepted(cutover: Settings) -> None:
    from service.http.openapi import document

    refresh = "/api/v1/auth/token/refresh/"
    on = document(cutover)
    assert cutover.migration.accept_until in on["paths"][refresh]["post"]["description"]
    assert "simplejwt" in on["components"]["securitySchemes"]["bearerAuth"]["description"]
    off = document(cutover.replace(migration={"simplejwt_signing_key": "", "accept_until": ""}))
    assert "simplejwt" not in str(off)


# -- found by review: revocations that raced or missed an old token ---------------------------
def test_logout_all_ends_old_refresh_tokens_never_used_here(api: httpx.Client) -> None:
    first, second = USERS["BCRYPT.Two"]["sessions"]
    access = api.post(REFRESH, json={"refresh": first["refresh"]}).json()["access"]
    assert api.post(LOGOUT_ALL, headers=bearer(access)).status_code == 205
    assert_refused(api.post(REFRESH, json={"refresh": second["refresh"]}), "session_ended")


def slow_first_use(monkeypatch: pytest.MonkeyPatch) -> None:
    """Half a second between an old token's first-use checks and its session's start."""
    from service.core import migration

    original = migration.OldTokens.start_session

    async def slow(self: Any, *args: Any, **kwargs: Any) -> None:
        await asyncio.sleep(0.5)
        await original(self, *args, **kwargs)

    monkeypatch.setattr(migration.OldTokens, "start_session", slow)


def refresh_in_background(api: httpx.Client, token: str) -> tuple[threading.Thread,
                                                                    dict[str, httpx.Response]]:
    answers: dict[str, httpx.Response] = {}

    def run() -> None:
        with httpx.Client(base_url=api.base_url, timeout=30) as other:
            answers["refresh"] = other.post(REFRESH, json={"refresh": token})

    thread = threading.Thread(target=run)
    thread.start()
    time.sleep(0.15)  # the refresh is past its checks, before its session starts
    return thread, answers


@pytest.mark.parametrize("rotate", [False, True])
def test_a_logout_racing_an_old_tokens_first_use_wins(
        cutover: Settings, make_client: Any, monkeypatch: pytest.MonkeyPatch,
        rotate: bool) -> None:
    slow_first_use(monkeypatch)
    api = make_client(cutover.replace(jwt={"rotate_refresh_tokens": rotate}))
    old = session_of(USERS["pbkdf2_one"])
    thread, answers = refresh_in_background(api, old["refresh"])
    assert api.post(LOGOUT, json={"refresh_token": old["refresh"]}).status_code == 205
    thread.join(10)
    assert_refused(answers["refresh"], "token_revoked")
    assert_refused(api.post(REFRESH, json={"refresh": old["refresh"]}), "token_revoked")


def test_a_logout_all_racing_an_old_tokens_first_use_wins(
        api: httpx.Client, monkeypatch: pytest.MonkeyPatch) -> None:
    slow_first_use(monkeypatch)
    user = USERS["siteadmin"]
    old = session_of(user)
    access = login(api, user["username"], user["password"]).json()["access"]
    time.sleep(1.05)  # the logout-all's second is later than the old token's issue
    thread, answers = refresh_in_background(api, old["refresh"])
    assert api.post(LOGOUT_ALL, headers=bearer(access)).status_code == 205
    thread.join(10)
    assert_refused(answers["refresh"], "session_ended")


def test_ending_a_session_started_by_an_old_token_ends_the_old_access_tokens(
        cutover: Settings, make_client: Any) -> None:
    api = make_client(cutover.replace(jwt={"rotate_refresh_tokens": True}))
    old = session_of(USERS["argon2_one"])
    pair = api.post(REFRESH, json={"refresh": old["refresh"]}).json()
    assert api.post(LOGOUT, json={"refresh_token": pair["refresh"]}).status_code == 205
    assert_refused(api.get(PROFILE, headers=bearer(old["access"])), "session_ended")


def signed(**claims: Any) -> str:
    payload = {"token_type": "refresh", "exp": int(time.time()) + 600,
               "iat": int(time.time()), "jti": "a-jti", "user_id": str(USERS["bob"]["id"]),
               **claims}
    return jwt.encode(payload, TOKENS["signing_key"], algorithm="HS256")


@pytest.mark.parametrize("claims", [{"exp": 10 ** 20}, {"exp": 2 ** 63}, {"iat": -5},
                                    {"jti": "\ud800"}, {"jti": "white space"}, {"jti": ""}])
def test_an_old_token_with_claims_out_of_range_is_refused_not_a_crash(
        api: httpx.Client, claims: dict[str, Any]) -> None:
    token = signed(**claims)
    assert_refused(api.post(REFRESH, json={"refresh": token}), "malformed")
    assert api.post(LOGOUT, json={"refresh_token": token}).status_code == 400
    access = signed(token_type="access", **claims)
    assert_refused(api.get(PROFILE, headers=bearer(access)), "malformed")


def test_reuse_detection_ends_the_old_access_token_too(cutover: Settings,
                                                       make_client: Any) -> None:
    api = make_client(cutover.replace(jwt={"rotate_refresh_tokens": True, "rotation_grace": 0}))
    old = session_of(USERS["argon2_one"])
    pair = api.post(REFRESH, json={"refresh": old["refresh"]}).json()
    assert api.post(REFRESH, json={"refresh": pair["refresh"]}).status_code == 200
    time.sleep(1.1)
    assert_refused(api.post(REFRESH, json={"refresh": pair["refresh"]}), "token_reused")
    assert_refused(api.get(PROFILE, headers=bearer(old["access"])), "session_ended")


def test_logout_all_ends_old_tokens_issued_within_the_clock_leeway(
        cutover: Settings, api: httpx.Client) -> None:
    """The old service's clock a few seconds ahead: its last tokens still predate the end."""
    first = USERS["BCRYPT.Two"]["sessions"][0]
    ahead = int(time.time()) + cutover.jwt.leeway - 2
    refresh = signed(user_id=str(USERS["BCRYPT.Two"]["id"]), iat=ahead, jti="ahead-r")
    access = signed(user_id=str(USERS["BCRYPT.Two"]["id"]), iat=ahead, jti="ahead-a",
                    token_type="access")
    assert api.get(PROFILE, headers=bearer(access)).status_code == 200
    new = api.post(REFRESH, json={"refresh": first["refresh"]}).json()["access"]
    assert api.post(LOGOUT_ALL, headers=bearer(new)).status_code == 205
    assert_refused(api.post(REFRESH, json={"refresh": refresh}), "session_ended")
    assert_refused(api.get(PROFILE, headers=bearer(access)), "session_ended")
