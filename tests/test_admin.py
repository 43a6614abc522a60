"""The admin API (issue 3): users/, users/{id}/ GET and PATCH, users/{id}/revoke-sessions/."""

from __future__ import annotations

import dataclasses
import datetime as dt
import sqlite3
from contextlib import closing
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis
from api import (
    API,
    PROFILE,
    REFRESH,
    USERS,
    assert_field_errors,
    assert_refused,
    bearer,
    claims,
    login,
    make_admin,
    profile,
    refresh,
    register,
    set_role,
    user_id_of,
)
from databases import Database
from support import migrated_sqlite, sql, with_store

from service.config import Settings
from service.store import migrate
from service.store.keys import RedisKeys
from service.store.users import User, UserFilter, UserStore

EXTRA_ROLES = ("editor", "r" * 64, "Support Team ü 🐇")


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """The test app, knowing some roles besides admin and user ([auth] extra_roles)."""
    return settings.replace(auth={"extra_roles": EXTRA_ROLES})
SPENT = {"password_changed", "user_inactive"}


# -- helpers -----------------------------------------------------------------------------------

def make_user(client: httpx.Client, settings: Settings, name: str,
              **overrides: Any) -> dict[str, Any]:
    """Register `name` (email name@example.com); returns {id, access, refresh}."""
    created = register(client, **{"username": name, "email": f"{name}@example.com",
                                  **overrides})
    return {"id": user_id_of(settings, created["access"]), "access": created["access"],
            "refresh": created["refresh"]}


def insert_users(settings: Settings, count: int, *, role: str = "user",
                 active: bool = True) -> None:
    """Rows straight into SQLite: many users without hashing a password each."""
    rows = [(f"bulk{i}", f"bulk{i}", f"bulk{i}@example.com", f"bulk{i}@example.com", "", role,
             int(active), "!", 0, "2025-01-01 00:00:00.000000", "2025-01-01 00:00:00.000000")
            for i in range(count)]
    with closing(sqlite3.connect(settings.database.url.removeprefix("sqlite:///"))) as db:
        db.executemany(
            "INSERT INTO users (username, username_norm, email, email_norm, display_name, role, "
            "is_active, password_hash, token_version, password_changed_at, date_joined) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", rows)
        db.commit()


def get(client: httpx.Client, token: str, path: str = USERS, **params: Any) -> httpx.Response:
    return client.get(path, params=params, headers=bearer(token))


def patch(client: httpx.Client, token: str, user_id: int | str, body: Any) -> httpx.Response:
    return client.patch(f"{USERS}{user_id}/", json=body, headers=bearer(token))


def revoke(client: httpx.Client, token: str, user_id: int | str) -> httpx.Response:
    return client.post(f"{USERS}{user_id}/revoke-sessions/", headers=bearer(token))


def usernames(response: httpx.Response) -> list[str]:
    assert response.status_code == 200, response.text
    return [user["username"] for user in response.json()["results"]]


def assert_spent(client: httpx.Client, access: str, refresh_token: str,
                 reasons: set[str] = SPENT) -> None:
    """Both tokens of a pair refused at once, on a Bearer endpoint and on token/refresh/."""
    assert_refused(profile(client, access), *reasons)
    assert_refused(refresh(client, refresh_token), *reasons)


def assert_detail(response: httpx.Response, status: int, detail: str | None = None) -> None:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"detail"} and isinstance(body["detail"], str) and body["detail"], body
    if detail is not None:
        assert body["detail"] == detail


def every_endpoint(user_id: int | str) -> list[tuple[str, str, Any]]:
    return [("GET", USERS, None), ("GET", f"{USERS}{user_id}/", None),
            ("PATCH", f"{USERS}{user_id}/", {"role": "admin"}),
            ("POST", f"{USERS}{user_id}/revoke-sessions/", None)]


# -- listing -----------------------------------------------------------------------------------

def test_list_is_paged_in_drf_shape_ordered_by_id(client: httpx.Client, settings: Settings,
                                                  sync_redis: redis.Redis) -> None:
    """Issue 3: `{count, next, previous, results}`, `next`/`previous` absolute URLs or null;
    the link to page 1 drops `page`, as DRF's does; other query parameters are kept."""
    admin = make_admin(client, settings, sync_redis)
    for name in ["carol", "dave", "erin", "frank"]:
        make_user(client, settings, name)
    first = get(client, admin["access"], page_size=2)
    assert first.status_code == 200, first.text
    assert first.headers["cache-control"] == "no-store"
    body = first.json()
    assert set(body) == {"count", "next", "previous", "results"}
    assert (body["count"], body["previous"], usernames(first)) == (5, None, ["boss", "carol"])
    assert httpx.URL(body["next"]).is_absolute_url
    assert dict(httpx.URL(body["next"]).params) == {"page": "2", "page_size": "2"}

    second = client.get(body["next"], headers=bearer(admin["access"]))
    assert usernames(second) == ["dave", "erin"]
    assert dict(httpx.URL(second.json()["previous"]).params) == {"page_size": "2"}
    third = client.get(second.json()["next"], headers=bearer(admin["access"]))
    assert usernames(third) == ["frank"] and third.json()["next"] is None
    assert third.json()["count"] == 5
    everyone = [u["id"] for u in get(client, admin["access"]).json()["results"]]
    assert everyone == sorted(everyone) and len(everyone) == 5


def test_user_object_carries_id_role_active_and_date_joined(
        client: httpx.Client, settings: Settings, sync_redis: redis.Redis) -> None:
    """Issue 3: user objects carry `id` (the token's `sub`, an integer), `role`, `is_active`,
    `date_joined` (ISO 8601), besides username, email and display_name."""
    admin = make_admin(client, settings, sync_redis)
    carol = make_user(client, settings, "carol", display_name="Carol C.")
    before = dt.datetime.now(dt.UTC)
    listed = get(client, admin["access"]).json()["results"][1]
    detail = get(client, admin["access"], f"{USERS}{carol['id']}/")
    assert detail.status_code == 200 and detail.json() == listed
    assert set(listed) == {"id", "username", "email", "display_name", "role", "is_active",
                           "date_joined", "mfa_methods"}
    assert listed["mfa_methods"] == []  # no second factor (test_mfa.py has one)
    assert listed["id"] == carol["id"] and type(listed["id"]) is int
    assert (listed["username"], listed["email"], listed["display_name"], listed["role"],
            listed["is_active"]) == ("carol", "carol@example.com", "Carol C.", "user", True)
    joined = dt.datetime.fromisoformat(listed["date_joined"])
    assert joined.utcoffset() == dt.timedelta(0) and listed["date_joined"].endswith("Z")
    assert abs((before - joined).total_seconds()) < 60


def test_page_size_defaults_to_50_and_allows_up_to_200(
        client: httpx.Client, settings: Settings, sync_redis: redis.Redis) -> None:
    """Issue 3 paging: `page_size` default 50, max 200; beyond it is a 400, not a silent cap."""
    admin = make_admin(client, settings, sync_redis)
    insert_users(settings, 204)
    default = get(client, admin["access"]).json()
    assert (default["count"], len(default["results"])) == (205, 50)
    assert dict(httpx.URL(default["next"]).params) == {"page": "2"}
    biggest = get(client, admin["access"], page_size=200, page=2).json()
    assert len(biggest["results"]) == 5 and biggest["next"] is None
    assert_field_errors(get(client, admin["access"], page_size=201), "page_size")


def test_page_past_the_last_is_404_but_an_empty_first_page_is_not(
        client: httpx.Client, settings: Settings, sync_redis: redis.Redis) -> None:
    """DRF's pagination: a page past the last is 404 `{"detail": "Invalid page."}`; page 1 of
    nothing is an empty page."""
    admin = make_admin(client, settings, sync_redis)
    assert_detail(get(client, admin["access"], page=2), 404, "Invalid page.")
    assert_detail(get(client, admin["access"], page=10**30), 404, "Invalid page.")
    empty = get(client, admin["access"], role="nobody")
    assert empty.json() == {"count": 0, "next": None, "previous": None, "results": []}


def test_filters_by_role_and_active_state(client: httpx.Client, settings: Settings,
                                          sync_redis: redis.Redis) -> None:
    """Issue 3: filter by role and active state (`is_active=true|false`); filters combine."""
    admin = make_admin(client, settings, sync_redis)
    carol, dave, _ = (make_user(client, settings, n) for n in ["carol", "dave", "erin"])
    set_role(settings, sync_redis, carol["id"], "editor")
    set_role(settings, sync_redis, dave["id"], "editor")
    assert patch(client, admin["access"], dave["id"], {"is_active": False}).status_code == 200
    token = admin["access"]
    assert usernames(get(client, token, role="editor")) == ["carol", "dave"]
    assert usernames(get(client, token, role="admin")) == ["boss"]
    assert usernames(get(client, token, is_active="false")) == ["dave"]
    assert usernames(get(client, token, is_active="true")) == ["boss", "carol", "erin"]
    assert usernames(get(client, token, role="editor", is_active="true")) == ["carol"]
    assert get(client, token, role="editor", is_active="false").json()["count"] == 1
    assert usernames(get(client, token, role="", is_active="")) == [
        "boss", "carol", "dave", "erin"]


def test_search_is_a_case_insensitive_substring_with_literal_wildcards(
        client: httpx.Client, settings: Settings, sync_redis: redis.Redis) -> None:
    """Issue 3 search on username, email and display_name; `%` and `_` match only
    themselves (LIKE wildcards escaped), as does the escape character."""
    admin = make_admin(client, settings, sync_redis)
    make_user(client, settings, "bob_smith", display_name="Robert")
    make_user(client, settings, "bobxsmith", display_name="100% Bob")
    make_user(client, settings, "Åsa", email="asa@lund.example", display_name="back\\slash/")
    token = admin["access"]
    assert usernames(get(client, token, search="BOB")) == ["bob_smith", "bobxsmith"]
    assert usernames(get(client, token, search="b_s")) == ["bob_smith"]
    assert usernames(get(client, token, search="_")) == ["bob_smith"]
    assert usernames(get(client, token, search="%")) == ["bobxsmith"]
    assert usernames(get(client, token, search="0% b")) == ["bobxsmith"]
    assert usernames(get(client, token, search="robERT")) == ["bob_smith"]
    assert usernames(get(client, token, search="LUND.EX")) == ["Åsa"]
    assert usernames(get(client, token, search="åSA")) == ["Åsa"]
    assert usernames(get(client, token, search="\\")) == ["Åsa"]
    assert usernames(get(client, token, search="h/")) == ["Åsa"]
    assert usernames(get(client, token, search="  smith ", role="user")) == [
        "bob_smith", "bobxsmith"]
    assert usernames(get(client, token, search="zzz")) == []


def test_bad_query_values_are_400_on_their_field(client: httpx.Client, settings: Settings,
                                                 sync_redis: redis.Redis) -> None:
    """Bad query values are 400 `{"<field>": [...]}`, every bad one reported, never a 500."""
    token = make_admin(client, settings, sync_redis)["access"]
    cases: list[tuple[dict[str, Any], str]] = [
        ({"page": "0"}, "page"), ({"page": "abc"}, "page"), ({"page": "-1"}, "page"),
        ({"page": "1.5"}, "page"), ({"page": ""}, "page"), ({"page": "１"}, "page"),
        ({"page_size": "0"}, "page_size"), ({"page_size": "x"}, "page_size"),
        ({"page_size": "9" * 40}, "page_size"), ({"is_active": "maybe"}, "is_active"),
        ({"is_active": "yes"}, "is_active"), ({"search": "a\x00b"}, "search"),
        ({"search": "x" * 255}, "search"), ({"role": "r" * 65}, "role"),
        ({"role": "\x00"}, "role")]
    for params, field in cases:
        assert_field_errors(get(client, token, **params), field)
    assert_field_errors(get(client, token, page="x", page_size="201", is_active="2"),
                        "page", "page_size", "is_active")


# -- who may ------------------------------------------------------------------------------------

def test_everyone_but_an_admin_gets_403(client: httpx.Client, settings: Settings,
                                        sync_redis: redis.Redis) -> None:
    """Issue 3 "Everyone else gets 403" (ASVS V4.1.1, V4.1.3): users and other roles,
    on every admin endpoint, for existing and unknown ids alike, and nothing changes."""
    carol = make_user(client, settings, "carol")
    dave = make_user(client, settings, "dave")
    set_role(settings, sync_redis, dave["id"], "staff")
    for who in (carol, dave):
        for target in (carol["id"], dave["id"], 999):
            for method, path, body in every_endpoint(target):
                response = client.request(method, path, json=body, headers=bearer(who["access"]))
                assert_detail(response, 403)
    assert [tuple(r) for r in sql(settings, "SELECT role, token_version FROM users")] == [
        ("user", 0), ("staff", 0)]


def test_no_token_is_401_not_authenticated(client: httpx.Client, settings: Settings,
                                           sync_redis: redis.Redis) -> None:
    """Issue 3 "no token, 401": `not_authenticated` with a Bearer challenge; a bad token is
    401 `token_not_valid`."""
    admin = make_admin(client, settings, sync_redis)
    for method, path, body in every_endpoint(admin["id"]):
        response = client.request(method, path, json=body)
        assert response.status_code == 401, (method, path)
        assert response.json()["code"] == "not_authenticated"
        assert response.headers["www-authenticate"].lower().startswith("bearer")
        forged = client.request(method, path, json=body,
                                headers=bearer(admin["access"][:-3] + "abc"))
        assert forged.status_code == 401 and forged.json()["code"] == "token_not_valid"
        refresh = client.request(method, path, json=body, headers=bearer(admin["refresh"]))
        assert_refused(refresh, "wrong_token_type")


def test_admin_is_judged_by_the_current_row_not_the_token_claim(
        client: httpx.Client, settings: Settings, sync_redis: redis.Redis) -> None:
    """ASVS V4.1.2: a `role` claim decides nothing. A token minted as `user` works once the
    row says admin, and an admin token stops working the moment the row stops saying so."""
    carol = make_user(client, settings, "carol")
    assert claims(settings, carol["access"])["role"] == "user"
    set_role(settings, sync_redis, carol["id"], "admin")
    assert get(client, carol["access"]).status_code == 200
    admin = make_admin(client, settings, sync_redis, "boss")
    assert claims(settings, admin["access"])["role"] == "admin"
    set_role(settings, sync_redis, admin["id"], "user")
    assert_detail(get(client, admin["access"]), 403)


def test_paths_without_trailing_slash_are_served(client: httpx.Client, settings: Settings,
                                                 sync_redis: redis.Redis) -> None:
    """API.md: a request without the trailing slash is served the same, never a 404."""
    admin = make_admin(client, settings, sync_redis)
    carol = make_user(client, settings, "carol")
    token = admin["access"]
    assert usernames(get(client, token, USERS.rstrip("/"))) == ["boss", "carol"]
    assert get(client, token, f"{USERS}{carol['id']}").json()["username"] == "carol"
    changed = client.patch(f"{USERS}{carol['id']}", json={"role": "editor"},
                           headers=bearer(token))
    assert changed.status_code == 200 and changed.json()["role"] == "editor"
    answer = client.post(f"{USERS}{carol['id']}/revoke-sessions", headers=bearer(token))
    assert answer.status_code == 204


# -- one user ------------------------------------------------------------------------------------

def test_unknown_or_non_numeric_ids_are_404(client: httpx.Client, settings: Settings,
                                            sync_redis: redis.Redis) -> None:
    """Issue 3: `users/{id}/` of nobody is 404 `{"detail": "Not found."}` on every method;
    so is an id that is not a number (never a 400 or a 500)."""
    admin = make_admin(client, settings, sync_redis)
    for bad in ["999", "0", "abc", "-1", "1.5", "1e3", "%20" + str(admin["id"]), "9" * 30]:
        for method, path, body in every_endpoint(bad)[1:]:
            response = client.request(method, path, json=body, headers=bearer(admin["access"]))
            assert_detail(response, 404, "Not found.")
    assert sql(settings, "SELECT role, token_version FROM users")[0]["token_version"] == 0


def test_patch_refuses_a_role_nobody_configured(client: httpx.Client, settings: Settings,
                                                 sync_redis: redis.Redis) -> None:
    """Issue 8: roles are a known set; `superuser` (or `Admin`) is a 400 on `role` in DRF's
    ChoiceField words, and changes nothing (no token refused, no row touched)."""
    admin = make_admin(client, settings, sync_redis)
    carol = make_user(client, settings, "carol")
    for value in ["superuser", "Admin", "editors"]:
        response = patch(client, admin["access"], carol["id"], {"role": value})
        assert response.status_code == 400, response.text
        assert response.json() == {"role": [f'"{value}" is not a valid choice.']}
    row = sql(settings, "SELECT role, token_version FROM users WHERE id = ?", carol["id"])[0]
    assert (row["role"], row["token_version"]) == ("user", 0)
    assert client.get(API + "profile/", headers=bearer(carol["access"])).status_code == 200


def test_patch_unknown_user_is_404_even_with_a_bad_body(
        client: httpx.Client, settings: Settings, sync_redis: redis.Redis) -> None:
    """The object is looked up before the body is validated, as DRF does."""
    admin = make_admin(client, settings, sync_redis)
    assert_detail(patch(client, admin["access"], 999, {"role": 5}), 404, "Not found.")


def test_changing_the_role_refuses_the_users_tokens_at_once(
        client: httpx.Client, settings: Settings, sync_redis: redis.Redis) -> None:
    """Issue 3 PATCH role: every existing access and refresh token of the user is refused
    right away (OWASP Session Management: renew sessions on any privilege change); the
    database row and the Redis cache both hold the new role and token version; a fresh
    login carries the new role."""
    admin = make_admin(client, settings, sync_redis)
    carol = make_user(client, settings, "carol")
    response = patch(client, admin["access"], carol["id"], {"role": "editor"})
    assert response.status_code == 200, response.text
    assert response.json()["role"] == "editor" and response.json()["id"] == carol["id"]
    assert_spent(client, carol["access"], carol["refresh"])
    row = sql(settings, "SELECT role, token_version FROM users WHERE id = ?", carol["id"])[0]
    assert (row["role"], row["token_version"]) == ("editor", 1)
    cache = sync_redis.hgetall(RedisKeys(settings.redis.prefix).user(carol["id"]))
    assert (cache[b"role"], cache[b"ver"]) == (b"editor", b"1")
    fresh = login(client, "carol")
    assert fresh.status_code == 200
    assert claims(settings, fresh.json()["access"])["role"] == "editor"
    assert client.get(PROFILE, headers=bearer(fresh.json()["access"])).json()["role"] == "editor"
    assert get(client, admin["access"]).status_code == 200  # the admin's own tokens live on


def test_deactivating_refuses_tokens_and_login_until_reactivated(
        client: httpx.Client, settings: Settings, sync_redis: redis.Redis) -> None:
    """Issue 3 PATCH is_active: deactivation refuses the user's access and refresh tokens at
    once and login answers like a wrong password (API.md); reactivation lets them log in
    again, while the tokens from before stay dead."""
    admin = make_admin(client, settings, sync_redis)
    carol = make_user(client, settings, "carol")
    off = patch(client, admin["access"], carol["id"], {"is_active": False})
    assert off.status_code == 200 and off.json()["is_active"] is False
    assert_spent(client, carol["access"], carol["refresh"])
    assert login(client, "carol").json()["code"] == "no_active_account"
    on = patch(client, admin["access"], carol["id"], {"is_active": True})
    assert on.status_code == 200 and on.json()["is_active"] is True
    again = login(client, "carol")
    assert again.status_code == 200, again.text
    assert client.get(PROFILE, headers=bearer(again.json()["access"])).status_code == 200
    assert_spent(client, carol["access"], carol["refresh"], {"password_changed"})


def test_revocation_survives_the_loss_of_the_redis_cache(
        client: httpx.Client, settings: Settings, sync_redis: redis.Redis) -> None:
    """API.md: the cut-off lives with the user in the database, so a lost cache row does
    not bring the tokens back."""
    admin = make_admin(client, settings, sync_redis)
    carol, dave = make_user(client, settings, "carol"), make_user(client, settings, "dave")
    assert patch(client, admin["access"], carol["id"], {"is_active": False}).status_code == 200
    assert revoke(client, admin["access"], dave["id"]).status_code == 204
    for user in (carol, dave):
        sync_redis.delete(RedisKeys(settings.redis.prefix).user(user["id"]))
        assert_spent(client, user["access"], user["refresh"])


def test_patch_of_nothing_changes_nothing(client: httpx.Client, settings: Settings,
                                          sync_redis: redis.Redis) -> None:
    """`{}`, unknown fields and values equal to the current ones change nothing, so the
    user's tokens stay valid."""
    admin = make_admin(client, settings, sync_redis)
    carol = make_user(client, settings, "carol")
    for body in [{}, {"username": "mallory", "email": "m@evil.test"},
                 {"role": "user", "is_active": True}]:
        response = patch(client, admin["access"], carol["id"], body)
        assert response.status_code == 200, response.text
        assert (response.json()["username"], response.json()["role"]) == ("carol", "user")
    assert client.get(PROFILE, headers=bearer(carol["access"])).status_code == 200
    assert sql(settings, "SELECT token_version FROM users WHERE id = ?",
               carol["id"])[0]["token_version"] == 0


def test_patch_role_accepts_every_known_role(
        client: httpx.Client, settings: Settings, sync_redis: redis.Redis) -> None:
    """Issue 8: `role` is one of the known roles: admin, self_register_roles, extra_roles."""
    admin = make_admin(client, settings, sync_redis)
    carol = make_user(client, settings, "carol")
    for role in ["r" * 64, "user", "Support Team ü 🐇", "admin"]:
        response = patch(client, admin["access"], carol["id"], {"role": role})
        assert response.status_code == 200, response.text
        assert response.json()["role"] == role
    assert get(client, carol["access"]).status_code == 401  # its own tokens died on the way
    assert get(client, login(client, "carol").json()["access"]).status_code == 200


def test_patch_refuses_bad_values_on_their_field(client: httpx.Client, settings: Settings,
                                                 sync_redis: redis.Redis) -> None:
    """Bad input is a 400 naming the field, never a 500, and changes nothing."""
    admin = make_admin(client, settings, sync_redis)
    carol = make_user(client, settings, "carol")
    for value in ["", "   ", None, 5, True, ["admin"], "r" * 65, "ad\x00min"]:
        assert_field_errors(patch(client, admin["access"], carol["id"], {"role": value}), "role")
    surrogate = client.patch(f"{USERS}{carol['id']}/", content=b'{"role": "ad\\ud800"}',
                             headers={**bearer(admin["access"]),
                                      "Content-Type": "application/json"})
    assert_field_errors(surrogate, "role")
    for flag in ["false", 0, 1, None, "true", {}]:
        assert_field_errors(patch(client, admin["access"], carol["id"], {"is_active": flag}),
                            "is_active")
    assert_field_errors(patch(client, admin["access"], carol["id"],
                              {"role": "", "is_active": "no"}), "role", "is_active")
    empty = client.patch(f"{USERS}{carol['id']}/", content=b"",
                         headers={**bearer(admin["access"]), "Content-Type": "application/json"})
    assert_detail(empty, 400)
    for content in [b"[]", b"{"]:
        response = client.patch(f"{USERS}{carol['id']}/", content=content, headers={
            **bearer(admin["access"]), "Content-Type": "application/json"})
        assert_detail(response, 400)
    row = sql(settings, "SELECT role, is_active, token_version FROM users WHERE id = ?",
              carol["id"])[0]
    assert tuple(row) == ("user", 1, 0)


def test_an_admin_cannot_deactivate_or_demote_themselves(
        client: httpx.Client, settings: Settings, sync_redis: redis.Redis) -> None:
    """Issue 3: the last admin cannot lock everyone out: self-deactivation and self-demotion
    are 400 `non_field_errors`, and the admin keeps their role and tokens."""
    admin = make_admin(client, settings, sync_redis)
    for body in [{"is_active": False}, {"role": "user"}, {"role": "admin", "is_active": False},
                 {"role": "editor"}]:
        response = patch(client, admin["access"], admin["id"], body)
        assert_field_errors(response, "non_field_errors")
    unchanged = patch(client, admin["access"], admin["id"], {"role": "admin", "is_active": True})
    assert unchanged.status_code == 200 and unchanged.json()["role"] == "admin"
    assert get(client, admin["access"]).status_code == 200
    row = sql(settings, "SELECT role, is_active, token_version FROM users WHERE id = ?",
              admin["id"])[0]
    assert tuple(row) == ("admin", 1, 0)


def test_a_demoted_admin_loses_admin_access_at_once(
        client: httpx.Client, settings: Settings, sync_redis: redis.Redis) -> None:
    """One admin may demote another; the demoted one's tokens die, and their next login
    gets 403 on the admin API."""
    boss = make_admin(client, settings, sync_redis, "boss")
    other = make_admin(client, settings, sync_redis, "other")
    assert patch(client, boss["access"], other["id"], {"role": "user"}).status_code == 200
    assert_refused(get(client, other["access"]), "password_changed")
    assert_detail(get(client, login(client, "other").json()["access"]), 403)


# -- revoke-sessions ---------------------------------------------------------------------------

def test_revoke_sessions_refuses_every_earlier_token(client: httpx.Client, settings: Settings,
                                                     sync_redis: redis.Redis) -> None:
    """Issue 3 `POST users/{id}/revoke-sessions/` -> 204 with an empty body; every access and
    refresh token the user held is refused at once, other users' tokens are not, and the user
    can log in again."""
    admin = make_admin(client, settings, sync_redis)
    carol, dave = make_user(client, settings, "carol"), make_user(client, settings, "dave")
    second = login(client, "carol").json()
    answer = revoke(client, admin["access"], carol["id"])
    assert answer.status_code == 204 and answer.content == b""
    assert_spent(client, carol["access"], carol["refresh"], {"password_changed"})
    assert_spent(client, second["access"], second["refresh"], {"password_changed"})
    assert client.get(PROFILE, headers=bearer(dave["access"])).status_code == 200
    assert client.post(REFRESH, json={"refresh": dave["refresh"]}).status_code == 200
    cache = sync_redis.hgetall(RedisKeys(settings.redis.prefix).user(carol["id"]))
    assert cache[b"ver"] == b"1"
    fresh = login(client, "carol")
    assert fresh.status_code == 200
    assert client.get(PROFILE, headers=bearer(fresh.json()["access"])).status_code == 200


def test_an_admin_may_revoke_their_own_sessions(client: httpx.Client, settings: Settings,
                                                sync_redis: redis.Redis) -> None:
    """Revoking one's own sessions locks nobody out: the admin logs in again."""
    admin = make_admin(client, settings, sync_redis)
    assert revoke(client, admin["access"], admin["id"]).status_code == 204
    assert_refused(get(client, admin["access"]), "password_changed")
    assert get(client, login(client, "boss").json()["access"]).status_code == 200


# -- the store's queries, on SQLite and PostgreSQL ------------------------------------------------

@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path,
              sqlite_template: Path) -> str:
    if request.param == "sqlite":
        return migrated_sqlite(sqlite_template, tmp_path / "auth.db")
    url = str(request.getfixturevalue("empty_postgres"))
    migrate.upgrade(url)
    return url


async def seed(store: UserStore) -> list[User]:
    made = []
    for name, display, role in [("ann", "Ann 100%", "user"), ("a_b", "AB", "editor"),
                                ("axb", "Äxb", "editor"), ("zed", "ZED/x", "user")]:
        made.append(await store.create(username=name, email=f"{name}@example.com",
                                       display_name=display, role=role, password_hash="!"))
    await store.set_active(made[3].id, False)
    return made


def test_store_lists_and_counts_with_filters_on_both_backends(store_url: str) -> None:
    """list_users/count_users: role, active and search filters, ordered by id, paged; LIKE
    wildcards in the search are literal on SQLite and PostgreSQL alike."""
    async def body(store: UserStore, _: Database) -> dict[str, Any]:
        await seed(store)

        async def names(offset: int = 0, limit: int = 50, **filters: Any) -> list[str]:
            found = await store.list_users(UserFilter(**filters), offset=offset, limit=limit)
            return [user.username for user in found]

        return {
            "all": await names(), "page": await names(offset=1, limit=2),
            "editors": await names(role="editor"), "inactive": await names(is_active=False),
            "underscore": await names(search="_"), "percent": await names(search="0%"),
            "slash": await names(search="d/x"), "case": await names(search="ANN"),
            "email": await names(search="B@EXAMPLE"), "both": await names(search="a",
                                                                          role="editor"),
            "count": await store.count_users(UserFilter()),
            "count_active": await store.count_users(UserFilter(is_active=True)),
            "count_search": await store.count_users(UserFilter(search="%")),
        }

    found = with_store(store_url, body)
    assert found == {
        "all": ["ann", "a_b", "axb", "zed"], "page": ["a_b", "axb"],
        "editors": ["a_b", "axb"], "inactive": ["zed"], "underscore": ["a_b"],
        "percent": ["ann"], "slash": ["zed"], "case": ["ann"], "email": ["a_b", "axb"],
        "both": ["a_b", "axb"], "count": 4, "count_active": 3, "count_search": 1}


def test_store_role_change_and_revoke_bump_the_version(store_url: str) -> None:
    """set_role_and_bump and bump_token_version each move the per-user cut-off by one."""
    async def body(store: UserStore, _: Database) -> list[User | None]:
        user = (await seed(store))[0]
        await store.set_role_and_bump(user.id, "editor")
        after_role = await store.by_id(user.id)
        await store.bump_token_version(user.id)
        return [after_role, await store.by_id(user.id)]

    after_role, after_bump = with_store(store_url, body)
    assert after_role is not None and after_bump is not None
    assert (after_role.role, after_role.token_version) == ("editor", 1)
    assert dataclasses.replace(after_role, token_version=2) == after_bump


def test_the_openapi_document_lists_the_known_roles(client: httpx.Client) -> None:
    """The served document's PATCH users/{id}/ body names the roles it accepts."""
    document = client.get("/api/v1/openapi.json").json()
    role = document["components"]["schemas"]["AdminUserUpdate"]["properties"]["role"]
    assert role["enum"] == ["admin", "user", *EXTRA_ROLES]
