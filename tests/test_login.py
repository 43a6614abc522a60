"""login/: by username or email in any case, one answer for every failure, argon2 upkeep."""

from __future__ import annotations

import sqlite3
import threading
import unicodedata
from contextlib import closing
from typing import Any

import argon2
import httpx
import pytest
import redis
from api import API, LOGIN, USER, bearer, login, register

from service.config import Settings
from service.store.keys import RedisKeys

# API.md's three, plus device_token (issue 3: OWASP device-cookie lockout).
LOGIN_FIELDS = {"user", "refresh", "access", "device_token"}


def db_path(settings: Settings) -> str:
    return settings.database.url.removeprefix("sqlite:///")


def stored_hash(settings: Settings, username: str) -> str:
    with closing(sqlite3.connect(db_path(settings))) as db:
        row = db.execute("SELECT password_hash FROM users WHERE username = ?",
                         (username,)).fetchone()
    assert row is not None, username
    return str(row[0])


def deactivate(settings: Settings, sync_redis: redis.Redis, username: str) -> None:
    """Mark the user inactive in the database and drop its cached row from Redis."""
    with closing(sqlite3.connect(db_path(settings))) as db:
        user_id = db.execute("SELECT id FROM users WHERE username = ?", (username,)).fetchone()[0]
        db.execute("UPDATE users SET is_active = 0 WHERE id = ?", (user_id,))
        db.commit()
    sync_redis.delete(RedisKeys(settings.redis.prefix).user(user_id))


def assert_no_active_account(response: httpx.Response) -> dict[str, Any]:
    assert response.status_code == 401, response.text
    body = response.json()
    assert set(body) == {"detail", "code"}, body
    assert body["code"] == "no_active_account"
    assert isinstance(body["detail"], str) and body["detail"]
    return body  # type: ignore[no-any-return]


@pytest.fixture
def argon2_verifications(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every argon2.PasswordHasher.verify call the app makes: the hash it checked against."""
    calls: list[str] = []
    lock = threading.Lock()
    real_verify = argon2.PasswordHasher.verify

    def verify(self: argon2.PasswordHasher, hash: str | bytes, password: str | bytes) -> bool:
        with lock:
            calls.append(hash.decode() if isinstance(hash, bytes) else hash)
        return real_verify(self, hash, password)

    monkeypatch.setattr(argon2.PasswordHasher, "verify", verify)
    return calls


# -- success ---------------------------------------------------------------------------------

def test_login_body_is_user_refresh_access(client: httpx.Client) -> None:
    """API.md #2: 200 `{user:{username,email}, refresh, access}`."""
    register(client)
    response = login(client, "alice")
    assert response.status_code == 200, response.text
    body = response.json()
    assert set(body) == LOGIN_FIELDS
    assert body["user"] == {"username": "alice", "email": "alice@example.com"}
    assert all(isinstance(body[k], str) and body[k].count(".") == 2 for k in ("refresh", "access"))


def test_login_response_is_not_cacheable(client: httpx.Client) -> None:
    """API.md "Every response that carries a token has Cache-Control: no-store"."""
    register(client)
    response = login(client, "alice")
    assert response.status_code == 200
    assert response.headers["cache-control"] == "no-store"


def test_login_tokens_are_usable(client: httpx.Client) -> None:
    """API.md #2/#5/#6: the access token opens profile/, the refresh token refreshes."""
    register(client)
    body = login(client, "alice").json()
    profile = client.get(API + "profile/", headers=bearer(body["access"]))
    assert profile.status_code == 200 and profile.json()["username"] == "alice"
    refreshed = client.post(API + "token/refresh/", json={"refresh": body["refresh"]})
    assert refreshed.status_code == 200 and set(refreshed.json()) == {"access"}


def test_login_by_username_or_email_in_any_case(client: httpx.Client) -> None:
    """API.md "login accepts either, in any case" (NFKC + case folding)."""
    register(client, username="Alice", email="Alice.Smith@Example.com")
    for identifier in ["Alice", "alice", "ALICE", "ａｌｉｃｅ", " alice ",
                       "alice.smith@example.com", "ALICE.SMITH@EXAMPLE.COM",
                       "Alice.Smith@Example.com"]:
        response = login(client, identifier)
        assert response.status_code == 200, (identifier, response.text)
        assert response.json()["user"] == {"username": "Alice",
                                           "email": "alice.smith@example.com"}, identifier


def test_path_without_trailing_slash_is_served(client: httpx.Client) -> None:
    """API.md base path: a request without the trailing slash is served the same, never 404."""
    register(client)
    response = client.post(LOGIN.rstrip("/"), json={"username_or_email": "alice",
                                                    "password": USER["password"]})
    assert response.status_code == 200, response.text
    assert set(response.json()) == LOGIN_FIELDS


# -- one answer for every failure ------------------------------------------------------------

def test_wrong_password_unknown_user_and_inactive_account_answer_alike(
        client: httpx.Client, settings: Settings, sync_redis: redis.Redis) -> None:
    """API.md: wrong password, unknown user, inactive account: the same 401 and message
    (OWASP ASVS V2.2.x / V3: no account enumeration through login)."""
    register(client)
    register(client, username="carol", email="carol@example.com")
    deactivate(settings, sync_redis, "carol")
    answers = [login(client, "alice", "not the password"),
               login(client, "alice@example.com", "not the password"),
               login(client, "nobody"),
               login(client, "nobody@example.com"),
               login(client, "carol"),
               login(client, "carol@example.com")]
    bodies = [assert_no_active_account(r) for r in answers]
    assert all(b == bodies[0] for b in bodies), bodies
    header_sets = [{k for k in r.headers if k not in ("date", "content-length")} for r in answers]
    assert all(h == header_sets[0] for h in header_sets), header_sets


def test_inactive_account_cannot_log_in_with_the_right_password(
        client: httpx.Client, settings: Settings, sync_redis: redis.Redis) -> None:
    """API.md: an inactive account gets the same 401 `no_active_account` as a wrong password."""
    register(client)
    assert login(client, "alice").status_code == 200
    deactivate(settings, sync_redis, "alice")
    assert_no_active_account(login(client, "alice"))


def test_password_is_compared_verbatim(client: httpx.Client) -> None:
    """NIST SP 800-63B 5.1.1.2: the whole secret is verified (no trimming, no truncation)."""
    register(client)
    for wrong in [USER["password"] + " ", " " + USER["password"], USER["password"].upper(),
                  USER["password"][:-1]]:
        assert_no_active_account(login(client, "alice", wrong))


def test_unknown_user_still_costs_one_argon2_verification(
        client: httpx.Client, settings: Settings, argon2_verifications: list[str]) -> None:
    """API.md "in about the same time": a miss spends an argon2 verify with the configured
    parameters, as a wrong password does (OWASP ASVS V2.2 / fastapi-users dummy hash)."""
    register(client)
    for identifier, password in [("alice", "not the password"), ("nobody", "any password"),
                                 ("nobody@example.com", "any password")]:
        argon2_verifications.clear()
        assert_no_active_account(login(client, identifier, password))
        assert len(argon2_verifications) == 1, identifier
        params = argon2.extract_parameters(argon2_verifications[0])
        assert (params.type, params.time_cost, params.memory_cost, params.parallelism) == (
            argon2.Type.ID, settings.passwords.time_cost, settings.passwords.memory_cost,
            settings.passwords.parallelism), identifier


def test_inactive_account_still_costs_one_argon2_verification(
        client: httpx.Client, settings: Settings, sync_redis: redis.Redis,
        argon2_verifications: list[str]) -> None:
    """API.md "in about the same time": an inactive account is checked like any other."""
    register(client)
    deactivate(settings, sync_redis, "alice")
    argon2_verifications.clear()
    assert_no_active_account(login(client, "alice", "not the password"))
    assert len(argon2_verifications) == 1


# -- argon2 parameter upgrades ---------------------------------------------------------------

def test_old_argon2_parameters_are_upgraded_at_next_login(settings: Settings,
                                                          make_client: Any) -> None:
    """STYLE.md verify_and_update / OWASP ASVS V2.4: a hash made with older parameters is
    re-hashed with the current ones at the next successful login; the password still works."""
    old = make_client(settings)
    register(old)
    before = argon2.extract_parameters(stored_hash(settings, "alice"))
    assert (before.time_cost, before.memory_cost) == (1, 1024)

    stronger = make_client(settings.replace(passwords={"time_cost": 2, "memory_cost": 2048}))
    assert_no_active_account(login(stronger, "alice", "not the password"))
    assert argon2.extract_parameters(stored_hash(settings, "alice")) == before

    assert login(stronger, "alice").status_code == 200
    upgraded = stored_hash(settings, "alice")
    after = argon2.extract_parameters(upgraded)
    assert (after.type, after.time_cost, after.memory_cost) == (argon2.Type.ID, 2, 2048)

    response = login(stronger, "alice")
    assert response.status_code == 200, response.text
    assert set(response.json()) == LOGIN_FIELDS
    assert stored_hash(settings, "alice") == upgraded  # current parameters: no needless re-hash


def test_failed_login_does_not_touch_the_stored_hash(settings: Settings,
                                                     make_client: Any) -> None:
    """STYLE.md verify_and_update: only a successful login re-hashes."""
    register(make_client(settings))
    original = stored_hash(settings, "alice")
    stronger = make_client(settings.replace(passwords={"time_cost": 2}))
    assert_no_active_account(login(stronger, "alice", "not the password"))
    assert stored_hash(settings, "alice") == original


def test_password_is_unicode_normalised(client: httpx.Client) -> None:
    """NIST SP 800-63B 5.1.1.2: the verifier SHOULD apply NFKC or NFKD normalisation, so
    canonically equivalent spellings of one password are the same password."""
    password = unicodedata.normalize("NFC", "crème brûlée à volonté")
    register(client, password=password)
    response = login(client, "alice", unicodedata.normalize("NFD", password))
    assert response.status_code == 200, response.text
    assert set(response.json()) == LOGIN_FIELDS


# -- bad input -------------------------------------------------------------------------------

def test_missing_or_malformed_fields_are_field_errors(client: httpx.Client) -> None:
    """API.md Errors: 400 `{"<field>": ["message", ...]}` for invalid input."""
    cases: list[tuple[dict[str, Any], set[str]]] = [
        ({}, {"username_or_email", "password"}),
        ({"username_or_email": "alice"}, {"password"}),
        ({"password": "whatever pass"}, {"username_or_email"}),
        ({"username_or_email": None, "password": None}, {"username_or_email", "password"}),
        ({"username_or_email": "", "password": ""}, {"username_or_email", "password"}),
        ({"username_or_email": 7, "password": ["x"]}, {"username_or_email", "password"}),
        ({"username_or_email": "alice", "password": "x" * 1025}, {"password"}),
    ]
    for payload, fields in cases:
        response = client.post(LOGIN, json=payload)
        assert response.status_code == 400, (payload, response.text)
        body = response.json()
        assert set(body) == fields, payload
        assert all(isinstance(v, list) and v and all(isinstance(m, str) for m in v)
                   for v in body.values()), body


def test_unparseable_body_is_a_400_detail(client: httpx.Client) -> None:
    """API.md Errors: an unparseable body is 400 `{"detail": "..."}`, never a 500."""
    for content in [b"", b"{", b"[]", b'"alice"', b"\xff"]:
        response = client.post(LOGIN, content=content,
                               headers={"Content-Type": "application/json"})
        assert response.status_code == 400, content
        body = response.json()
        assert set(body) == {"detail"} and isinstance(body["detail"], str), content


def test_null_byte_in_identifier_is_a_field_error(client: httpx.Client) -> None:
    """API.md Errors: null bytes are a 4xx with a clear message, never a 500."""
    response = login(client, "al\x00ice", "p" * 10)
    assert response.status_code == 400
    assert set(response.json()) == {"username_or_email"}
