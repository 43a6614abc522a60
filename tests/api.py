"""The API as tests call it: its paths, a user, the calls, their tokens' claims, error shapes."""

from __future__ import annotations

from typing import Any

import httpx
import jwt
import redis
from support import sql

from service.config import Settings
from service.store.keys import RedisKeys

API = "/api/v1/auth/"
REGISTER = API + "register/"
LOGIN = API + "login/"
LOGOUT = API + "logout/"
LOGOUT_ALL = API + "logout-all/"
REFRESH = API + "token/refresh/"
PROFILE = API + "profile/"
SESSIONS = API + "sessions/"
PASSWORD_CHANGE = API + "password/change/"
PASSWORD_RESET = API + "password-reset/"
RESET_CONFIRM = API + "password-reset/confirm/"
VERIFY_EMAIL = API + "verify-email/"
VERIFY_RESEND = API + "verify-email/resend/"
NOT_ME = API + "security/not-me/"
USERS = API + "users/"
OPENAPI = "/api/v1/openapi.json"
DOCS = "/api/v1/docs"

USER = {"username": "alice", "email": "alice@example.com", "password": "correct horse battery",
        "password2": "correct horse battery", "display_name": "Alice"}
PASSWORD = USER["password"]


def bearer(token: str) -> dict[str, str]:
    """The Authorization header for an access token."""
    return {"Authorization": f"Bearer {token}"}


def register(client: httpx.Client, **overrides: Any) -> dict[str, Any]:
    """Register USER with `overrides` (password2 follows password); the 201's body."""
    body = {**USER, **overrides}
    if "password" in overrides and "password2" not in overrides:
        body["password2"] = overrides["password"]
    response = client.post(REGISTER, json=body)
    assert response.status_code == 201, response.text
    return response.json()  # type: ignore[no-any-return]


def login(client: httpx.Client, who: str = USER["username"], password: str = PASSWORD, *,
          device: str | None = None, **request: Any) -> httpx.Response:
    """POST login/ as `who` (a username or an email), with a device token if given; `request`:
    httpx's own options (headers, cookies, timeout)."""
    body = {"username_or_email": who, "password": password}
    if device is not None:
        body["device_token"] = device
    return client.post(LOGIN, json=body, **request)


def logged_in(client: httpx.Client, who: str = USER["username"], password: str = PASSWORD,
              **options: Any) -> dict[str, Any]:
    """A login that must succeed: its body (user, access, refresh, device_token)."""
    response = login(client, who, password, **options)
    assert response.status_code == 200, response.text
    return response.json()  # type: ignore[no-any-return]


def refresh(client: httpx.Client, token: str) -> httpx.Response:
    """POST token/refresh/ with a refresh token."""
    return client.post(REFRESH, json={"refresh": token})


def logout(client: httpx.Client, token: str) -> httpx.Response:
    """POST logout/ with a refresh token."""
    return client.post(LOGOUT, json={"refresh_token": token})


def profile(client: httpx.Client, access: str) -> httpx.Response:
    """GET profile/ with an access token."""
    return client.get(PROFILE, headers=bearer(access))


def delete_profile(client: httpx.Client, access: str, body: Any) -> httpx.Response:
    """DELETE profile/ (the account) with `body`."""
    return client.request("DELETE", PROFILE, json=body, headers=bearer(access))


def claims(settings: Settings, token: str) -> dict[str, Any]:
    """A token's claims, its signature checked with the key of the app `settings` built; time
    claims are the service's to judge (tests read expired tokens and move clocks)."""
    not_judged = {f"verify_{claim}": False for claim in ("exp", "nbf", "iat", "aud", "iss")}
    return jwt.decode(token, settings.jwt.secret, algorithms=[settings.jwt.algorithm],
                      options=not_judged)  # type: ignore[arg-type]


def user_id_of(settings: Settings, token: str) -> int:
    """The id of the user a token was issued to (its `sub`)."""
    return int(claims(settings, token)["sub"])


def expiry(settings: Settings, token: str) -> int:
    """When a token expires (its `exp`), in seconds since the epoch."""
    return int(claims(settings, token)["exp"])


def session_id_of(settings: Settings, token: str) -> str:
    """The id of the session a token belongs to (its `sid`)."""
    return str(claims(settings, token)["sid"])


def set_role(settings: Settings, sync_redis: redis.Redis, uid: int, role: str) -> None:
    """What `authsvc create-user --role` leaves behind: the row, with no cached copy."""
    sql(settings, "UPDATE users SET role = ? WHERE id = ?", role, uid)
    sync_redis.delete(RedisKeys(settings.redis.prefix).user(uid))


def make_admin(client: httpx.Client, settings: Settings, sync_redis: redis.Redis,
               name: str = "boss") -> dict[str, Any]:
    """`name` registered, promoted to admin in the database, then logged in (its tokens carry
    role admin): {id, access, refresh}."""
    created = register(client, username=name, email=f"{name}@example.com")
    uid = user_id_of(settings, created["access"])
    set_role(settings, sync_redis, uid, "admin")
    tokens = logged_in(client, name)
    return {"id": uid, "access": tokens["access"], "refresh": tokens["refresh"]}


def assert_field_errors(response: httpx.Response, *fields: str,
                        only: bool = True) -> dict[str, list[str]]:
    """API.md errors: a 400 `{"<field>": ["message", ...]}` naming `fields` (and no other unless
    `only` is false); its body."""
    assert response.status_code == 400, (response.status_code, response.text)
    body = response.json()
    assert isinstance(body, dict) and body and "detail" not in body, body
    for field, messages in body.items():
        assert isinstance(messages, list) and messages, (field, body)
        assert all(isinstance(m, str) and m for m in messages), (field, body)
    assert set(fields) <= set(body), body
    if only:
        assert set(body) == set(fields), body
    return body


def assert_refused(response: httpx.Response, *reasons: str) -> dict[str, Any]:
    """API.md errors: a 401 `token_not_valid` with a `detail` and a `reason` (one of `reasons`
    when given); a Bearer endpoint (the request carried a token) adds its challenge."""
    assert response.status_code == 401, response.text
    body = response.json()
    assert set(body) == {"detail", "code", "reason"}, body
    assert body["code"] == "token_not_valid", body
    assert isinstance(body["detail"], str) and body["detail"], body
    assert isinstance(body["reason"], str) and body["reason"], body
    if reasons:
        assert body["reason"] in reasons, body
    if "authorization" in response.request.headers:
        assert response.headers["www-authenticate"].startswith("Bearer"), response.headers
    return body  # type: ignore[no-any-return]
