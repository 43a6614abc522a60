"""profile/: GET and PATCH behind a Bearer access token; what PATCH may and may not change."""

from __future__ import annotations

import re
import sqlite3
import time
from contextlib import closing
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

import httpx
import jwt
import redis
from api import (
    API,
    PROFILE,
    USER,
    assert_field_errors,
    assert_refused,
    bearer,
    claims,
    login,
    register,
)
from support import run_worker, user_row

from service.config import Settings
from service.store.keys import RedisKeys

ALICE = {"username": "alice", "email": "alice@example.com", "display_name": "Alice",
         "role": "user"}


def forget_cached_user(settings: Settings, sync_redis: redis.Redis, user_id: int) -> None:
    sync_redis.delete(RedisKeys(settings.redis.prefix).user(user_id))


def patch(client: httpx.Client, token: str, body: Any) -> httpx.Response:
    return client.patch(PROFILE, json=body, headers=bearer(token))


def test_get_returns_the_profile(client: httpx.Client) -> None:
    """API.md #5: GET with Bearer -> 200 `{username, email, display_name}` (+ role)."""
    created = register(client)
    response = client.get(PROFILE, headers=bearer(created["access"]))
    assert response.status_code == 200, response.text
    assert response.json() == ALICE
    assert response.headers["cache-control"] == "no-store"


def test_path_without_trailing_slash_is_served(client: httpx.Client) -> None:
    """API.md base path: a request without the trailing slash is served the same, never 404."""
    created = register(client)
    response = client.get(PROFILE.rstrip("/"), headers=bearer(created["access"]))
    assert response.status_code == 200 and response.json() == ALICE


def test_no_token_is_not_authenticated(client: httpx.Client) -> None:
    """API.md Errors: no token -> 401 `code: not_authenticated` + `WWW-Authenticate: Bearer`."""
    register(client)
    for method, headers in [("GET", {}), ("PATCH", {}), ("GET", {"Authorization": "Basic YTpi"}),
                            ("GET", {"Authorization": ""})]:
        response = client.request(method, PROFILE, headers=headers,
                                  json={"display_name": "x"} if method == "PATCH" else None)
        assert response.status_code == 401, (method, headers)
        body = response.json()
        assert set(body) == {"detail", "code"} and body["code"] == "not_authenticated", body
        assert response.headers["www-authenticate"].lower().startswith("bearer")


def test_malformed_token_is_refused(client: httpx.Client) -> None:
    """API.md Errors: an invalid token -> 401 `token_not_valid` with a reason, on GET and PATCH."""
    register(client)
    for token in ["garbage", "a.b.c", "Bearer", "x" * 5000]:
        assert_refused(client.get(PROFILE, headers=bearer(token)))
        assert_refused(patch(client, token, {"display_name": "Mallory"}))
    assert_refused(client.get(PROFILE, headers={"Authorization": "Bearer a b"}))


def test_altered_or_foreign_token_is_refused(client: httpx.Client, settings: Settings) -> None:
    """API.md: tokens altered in any byte, signed with another key, or `alg: none` -> 401."""
    access = register(client)["access"]
    genuine = claims(settings, access)
    header, payload, signature = access.split(".")
    flipped = signature[:5] + ("A" if signature[5] != "A" else "B") + signature[6:]
    forged_payload = jwt.encode({**genuine, "role": "admin"}, "k" * 40).split(".")[1]
    candidates: dict[tuple[str, ...], list[str]] = {
        ("bad_signature",): [f"{header}.{payload}.{flipped}",
                             f"{header}.{forged_payload}.{signature}",
                             jwt.encode(genuine, "another-secret-" + "y" * 40,
                                        algorithm="HS256")],
        (): [jwt.encode(genuine, None, algorithm="none")],  # type: ignore[arg-type]
    }
    for reasons, tokens in candidates.items():
        for token in tokens:
            assert_refused(client.get(PROFILE, headers=bearer(token)), *reasons)


def test_refresh_token_is_not_an_access_token(client: httpx.Client) -> None:
    """API.md: an access token is never accepted where a refresh token is expected, nor the
    other way round."""
    created = register(client)
    assert_refused(client.get(PROFILE, headers=bearer(created["refresh"])),
                         "wrong_token_type")
    assert_refused(patch(client, created["refresh"], {"display_name": "x"}),
                         "wrong_token_type")


def test_expired_access_token_is_refused(settings: Settings, make_client: Any) -> None:
    """API.md: access tokens live `access_ttl` (60 min) with `leeway` (10 s) for clock skew,
    then 401 `token_not_valid`, reason `token_expired` (injected clock, no sleeping)."""
    t = [float(int(time.time()))]
    client = make_client(settings, clock=lambda: t[0])
    access = register(client)["access"]
    t[0] += settings.jwt.access_ttl + settings.jwt.leeway - 1
    assert client.get(PROFILE, headers=bearer(access)).status_code == 200
    t[0] += 1
    assert_refused(client.get(PROFILE, headers=bearer(access)), "token_expired")
    assert_refused(patch(client, access, {"display_name": "x"}), "token_expired")


def test_configured_access_ttl_is_honoured(settings: Settings, make_client: Any) -> None:
    """API.md [jwt] access_ttl / leeway are configurable (injected clock)."""
    t = [float(int(time.time()))]
    client = make_client(settings.replace(jwt={"access_ttl": 60, "leeway": 0}),
                         clock=lambda: t[0])
    access = register(client)["access"]
    t[0] += 59
    assert client.get(PROFILE, headers=bearer(access)).status_code == 200
    t[0] += 1
    assert_refused(client.get(PROFILE, headers=bearer(access)), "token_expired")


def test_access_token_from_before_a_password_reset_is_refused(
        settings: Settings, make_client: Any, smtp_server: Any, tmp_path: Path) -> None:
    """API.md: after a password reset, tokens issued before it are refused and tokens issued
    after it accepted, even within the same second (frozen injected clock)."""
    mailbox, _ = smtp_server
    frozen = float(int(time.time()))
    client = make_client(settings, clock=lambda: frozen)
    old_access = register(client)["access"]
    assert client.get(PROFILE, headers=bearer(old_access)).status_code == 200

    assert client.post(API + "password-reset/", json={"email": USER["email"]}).status_code == 200
    worker = run_worker(settings, tmp_path)
    assert worker.returncode == 0, worker.stderr
    assert len(mailbox.messages) == 1
    text = mailbox.messages[0].get_body(preferencelist=("plain",)).get_content()
    link = re.search(r"https?://\S+", text)
    assert link, text
    token = parse_qs(urlparse(link.group(0)).query)["token"][0]
    new_password = "a brand new passphrase"
    confirmed = client.post(API + "password-reset/confirm/", json={
        "token": token, "password": new_password, "password2": new_password})
    assert confirmed.status_code == 200, confirmed.text

    assert_refused(client.get(PROFILE, headers=bearer(old_access)), "password_changed")
    assert_refused(patch(client, old_access, {"display_name": "x"}), "password_changed")
    fresh = login(client, "alice", new_password)
    assert fresh.status_code == 200
    assert client.get(PROFILE, headers=bearer(fresh.json()["access"])).json() == ALICE


def test_access_token_of_a_deactivated_user_is_refused(
        client: httpx.Client, settings: Settings, sync_redis: redis.Redis) -> None:
    """API.md Errors: a token of an account that is no longer active is refused with 401."""
    access = register(client)["access"]
    user_id = user_row(settings)["id"]
    with closing(sqlite3.connect(settings.database.url.removeprefix("sqlite:///"))) as db:
        db.execute("UPDATE users SET is_active = 0 WHERE id = ?", (user_id,))
        db.commit()
    forget_cached_user(settings, sync_redis, user_id)
    assert_refused(client.get(PROFILE, headers=bearer(access)))


# -- PATCH -----------------------------------------------------------------------------------

def test_patch_changes_display_name_and_returns_the_profile(client: httpx.Client) -> None:
    """API.md #5: PATCH `display_name` -> 200 `{username, email, display_name}` (updated)."""
    access = register(client)["access"]
    response = patch(client, access, {"display_name": "Alice Liddell"})
    assert response.status_code == 200, response.text
    assert response.json() == {**ALICE, "display_name": "Alice Liddell"}
    assert response.headers["cache-control"] == "no-store"
    again = client.get(PROFILE, headers=bearer(access))
    assert again.status_code == 200 and again.json()["display_name"] == "Alice Liddell"


def test_patched_display_name_is_persisted(client: httpx.Client, settings: Settings,
                                           make_client: Any, sync_redis: redis.Redis) -> None:
    """API.md #5: the change is stored: a fresh server on the same database, with the Redis
    cache of the user dropped, still sees it."""
    access = register(client)["access"]
    assert patch(client, access, {"display_name": "  Lewis's Alice  "}).status_code == 200
    row = user_row(settings)
    assert row["display_name"] == "Lewis's Alice"
    forget_cached_user(settings, sync_redis, row["id"])
    fresh = make_client(settings)
    response = fresh.get(PROFILE, headers=bearer(access))
    assert response.status_code == 200
    assert response.json() == {**ALICE, "display_name": "Lewis's Alice"}


def test_patch_accepts_empty_and_150_character_display_names(client: httpx.Client) -> None:
    """API.md: `display_name` is a string of 0-150 characters."""
    access = register(client)["access"]
    for name in ["", "ü" * 150, "Алиса 🐇"]:
        response = patch(client, access, {"display_name": name})
        assert response.status_code == 200, (name, response.text)
        assert response.json() == {**ALICE, "display_name": name}


def test_patch_with_empty_object_changes_nothing(client: httpx.Client,
                                                 settings: Settings) -> None:
    """API.md "`{}` changes nothing and answers 200"."""
    access = register(client)["access"]
    response = patch(client, access, {})
    assert response.status_code == 200, response.text
    assert response.json() == ALICE
    assert user_row(settings)["display_name"] == "Alice"


def test_patch_ignores_unknown_fields(client: httpx.Client) -> None:
    """API.md "unknown fields are ignored"."""
    access = register(client)["access"]
    response = patch(client, access, {"display_name": "Al", "nickname": "x", "is_active": False,
                                      "password": "hijack it now", "": None})
    assert response.status_code == 200, response.text
    assert response.json() == {**ALICE, "display_name": "Al"}
    assert login(client).status_code == 200


def test_patch_never_changes_username_email_or_role(client: httpx.Client, settings: Settings,
                                                    sync_redis: redis.Redis) -> None:
    """API.md "username, email and role sent there are ignored and never changed"
    (OWASP ASVS V4.1.3 / mass assignment: no role escalation through PATCH)."""
    access = register(client)["access"]
    response = patch(client, access, {"username": "mallory", "email": "mallory@evil.test",
                                      "role": "admin", "display_name": "Still Alice"})
    assert response.status_code == 200, response.text
    assert response.json() == {**ALICE, "display_name": "Still Alice"}
    only_forbidden = patch(client, access, {"username": "mallory", "role": "admin"})
    assert only_forbidden.status_code == 200
    assert only_forbidden.json() == {**ALICE, "display_name": "Still Alice"}

    row = user_row(settings)
    assert (row["username"], row["email"], row["role"]) == ("alice", "alice@example.com", "user")
    forget_cached_user(settings, sync_redis, row["id"])
    assert client.get(PROFILE, headers=bearer(access)).json()["role"] == "user"
    relogin = login(client)
    assert relogin.status_code == 200
    assert claims(settings, relogin.json()["access"])["role"] == "user"
    assert login(client, "mallory").status_code == 401


def test_patch_with_zero_byte_body_is_a_400(client: httpx.Client, settings: Settings) -> None:
    """API.md "an empty body (zero bytes) is a 400" (`{"detail": "..."}`)."""
    access = register(client)["access"]
    for headers in [{"Content-Type": "application/json"}, {}]:
        response = client.patch(PROFILE, content=b"", headers={**bearer(access), **headers})
        assert response.status_code == 400, (headers, response.text)
        body = response.json()
        assert set(body) == {"detail"} and isinstance(body["detail"], str) and body["detail"]
    assert user_row(settings)["display_name"] == "Alice"


def test_patch_refuses_null_overlong_or_non_string_display_name(client: httpx.Client,
                                                                settings: Settings) -> None:
    """API.md: `display_name` is a string of 0-150 characters; `null` is a 400."""
    access = register(client)["access"]
    for value in [None, "x" * 151, 42, True, ["Al"], {"name": "Al"}, "nul\x00byte"]:
        assert_field_errors(patch(client, access, {"display_name": value}), "display_name")
    assert user_row(settings)["display_name"] == "Alice"


def test_patch_with_unparseable_or_non_object_body(client: httpx.Client) -> None:
    """API.md Errors: malformed JSON or a non-object is 400 `{detail}`; non-JSON is 415."""
    access = register(client)["access"]
    for content in [b"{", b"[]", b'"Al"', b"null", b"\xff"]:
        response = client.patch(PROFILE, content=content,
                                headers={**bearer(access), "Content-Type": "application/json"})
        assert response.status_code == 400, content
        assert set(response.json()) == {"detail"}
    form = client.patch(PROFILE, content=b"display_name=Al",
                        headers={**bearer(access),
                                 "Content-Type": "application/x-www-form-urlencoded"})
    assert form.status_code == 415 and set(form.json()) == {"detail"}


def test_other_methods_are_405(client: httpx.Client) -> None:
    """API.md Errors: wrong method -> 405 `{"detail": "..."}`."""
    access = register(client)["access"]
    for method in ["POST", "PUT"]:  # DELETE deletes the account (test_account_deletion.py)
        response = client.request(method, PROFILE, headers=bearer(access), json={})
        assert response.status_code == 405, method
        assert set(response.json()) == {"detail"}
