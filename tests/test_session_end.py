"""Issue 9.8: an access token never outlives its session (API.md): its `exp` is at most the
session's end, the refresh token's `exp`. Time is the app's injected clock."""

from __future__ import annotations

from typing import Any

import pytest
from api import API, USER, bearer, expiry, login, register
from support import Clock

from service.config import Settings

T0 = 1_900_000_000
ACCESS_TTL = 3600
REFRESH_TTL = 86400


@pytest.mark.parametrize("rotate", [False, True])
def test_a_refresh_near_the_session_end_mints_no_token_past_it(
        settings: Settings, make_client: Any, rotate: bool) -> None:
    """Ten minutes before the session ends, the refreshed access token ends with it, not an
    hour later; and it is accepted until then, then refused as expired like the session."""
    clock = Clock(T0)
    client = make_client(settings.replace(jwt={"rotate_refresh_tokens": rotate}), clock=clock)
    tokens = register(client)
    session_end = expiry(settings, tokens["refresh"])
    assert session_end == T0 + REFRESH_TTL
    clock.now = session_end - 600
    answer = client.post(API + "token/refresh/", json={"refresh": tokens["refresh"]})
    assert answer.status_code == 200, answer.text
    access = answer.json()["access"]
    assert expiry(settings, access) == session_end
    if rotate:
        assert expiry(settings, answer.json()["refresh"]) == session_end
    clock.now = session_end - 1
    assert client.get(API + "profile/", headers=bearer(access)).status_code == 200
    clock.now = session_end + 60  # past the leeway: access and refresh alike are over
    refused = client.get(API + "profile/", headers=bearer(access))
    assert refused.status_code == 401 and refused.json()["reason"] == "token_expired"


def test_a_refresh_early_in_the_session_keeps_the_full_access_lifetime(
        settings: Settings, make_client: Any) -> None:
    """The cap only bites at the end: mid-session, access tokens live `access_ttl`."""
    clock = Clock(T0)
    client = make_client(settings, clock=clock)
    tokens = register(client)
    clock.now = T0 + 100
    access = client.post(API + "token/refresh/", json={"refresh": tokens["refresh"]}).json()
    assert expiry(settings, access["access"]) == T0 + 100 + ACCESS_TTL


def test_login_and_password_change_never_mint_past_the_session_when_access_outlives_refresh(
        settings: Settings, make_client: Any) -> None:
    """With `access_ttl` configured longer than `refresh_ttl`, every pair's access token still
    ends with its session: registration, login and password change."""
    clock = Clock(T0)
    client = make_client(settings.replace(jwt={"access_ttl": 7200, "refresh_ttl": 1800}),
                         clock=clock)
    registered = register(client)
    logged_in = login(client).json()
    new = "a brand new passphrase"
    changed = client.post(API + "password/change/", headers=bearer(logged_in["access"]), json={
        "old_password": USER["password"], "password": new, "password2": new}).json()
    for pair in (registered, logged_in, changed):
        assert expiry(settings, pair["access"]) == expiry(settings, pair["refresh"]) == T0 + 1800
