"""Tokens through HTTP: forgeries, expiry, type confusion and revocation on token/refresh/,
logout/ and profile/. Time is an injected clock; nothing here sleeps except where Redis's own
TTL is the thing under test."""

from __future__ import annotations

import base64
import json
import threading
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
import redis
from api import API, USER, assert_refused, claims, logged_in, logout, profile, refresh, register
from jwt.warnings import InsecureKeyLengthWarning
from support import SECRET, Clock, reset_token_from, run_worker, wait_for_jobs

from service.config import Settings
from service.store.keys import RedisKeys

T0 = 1_900_000_000
LEEWAY = 10
ACCESS_TTL = 3600
REFRESH_TTL = 86400
OTHER_SECRET = "another-secret-" + "y" * 40


@pytest.fixture
def clock() -> Clock:
    return Clock(T0)


@pytest.fixture
def api(settings: Settings, make_client: Any, clock: Clock) -> httpx.Client:
    return make_client(settings, clock=clock)  # type: ignore[no-any-return]


@pytest.fixture
def alice(api: httpx.Client) -> dict[str, Any]:
    """alice's register/ answer; bob is registered too, so a changed `sub` names a real user."""
    created = register(api)
    register(api, username="bob", email="bob@example.com")
    return created


# -- helpers ----------------------------------------------------------------------------------
def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def sign(payload: dict[str, Any], key: str, algorithm: str) -> str:
    """A token signed as an attacker would, however short the key is for that algorithm."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", InsecureKeyLengthWarning)
        return jwt.encode(payload, key, algorithm=algorithm)


def with_payload(token: str, **changes: Any) -> str:
    """The same header and signature over a changed payload."""
    header, payload, signature = token.split(".")
    body = {**json.loads(unb64(payload)), **changes}
    return ".".join([header, b64(json.dumps(body, separators=(",", ":")).encode()), signature])


def unsigned(token: str, alg: str = "none") -> str:
    header = b64(json.dumps({"alg": alg, "typ": "JWT"}).encode())
    return f"{header}.{token.split('.')[1]}."


def flip(text: str, index: int) -> str:
    return text[:index] + ("A" if text[index] != "A" else "B") + text[index + 1:]


def flip_signature_byte(token: str) -> str:
    header, payload, signature = token.split(".")
    return ".".join([header, payload, flip(signature, len(signature) // 2)])


FORGERIES: dict[str, Callable[[str, Settings], str]] = {
    "alg-none": lambda t, _: unsigned(t),
    "alg-None-capitalised": lambda t, _: unsigned(t, "None"),
    "alg-none-keeping-signature": lambda t, _: unsigned(t) + t.split(".")[2],
    "wrong-key": lambda t, s: sign(claims(s, t), OTHER_SECRET, "HS256"),
    "HS512-same-key": lambda t, s: sign(claims(s, t), SECRET, "HS512"),
    "HS384-same-key": lambda t, s: sign(claims(s, t), SECRET, "HS384"),
    "role-admin": lambda t, _: with_payload(t, role="admin"),
    "sub-of-another-user": lambda t, _: with_payload(t, sub="2"),
    "exp-extended": lambda t, s: with_payload(t, exp=claims(s, t)["exp"] + 10 * 365 * 86400),
    "ver-changed": lambda t, s: with_payload(t, ver=claims(s, t)["ver"] + 1),
    "signature-byte-altered": lambda t, _: flip_signature_byte(t),
    "signature-stripped": lambda t, _: t.rsplit(".", 1)[0] + ".",
}
BAD_SIGNATURE = {"wrong-key", "HS512-same-key", "HS384-same-key", "role-admin",
                 "sub-of-another-user", "exp-extended", "ver-changed", "signature-byte-altered",
                 "alg-none", "alg-None-capitalised", "alg-none-keeping-signature"}


def assert_logout_refused(response: httpx.Response) -> None:
    """API.md: logout/ answers 400 on `refresh_token` for any token it cannot revoke now."""
    assert response.status_code == 400, response.text
    body = response.json()
    assert list(body) == ["refresh_token"], body
    assert isinstance(body["refresh_token"], list) and body["refresh_token"]
    assert all(isinstance(m, str) and m for m in body["refresh_token"])


def blacklist_key(settings: Settings, token: str) -> str:
    return RedisKeys(settings.redis.prefix).blacklist(claims(settings, token)['jti'])


# -- the genuine article ------------------------------------------------------------------------
def test_genuine_tokens_are_accepted(api: httpx.Client, alice: dict[str, Any]) -> None:
    """Control: the unforged tokens pass every endpoint forged ones are refused on."""
    assert profile(api, alice["access"]).status_code == 200
    refreshed = refresh(api, alice["refresh"])
    assert refreshed.status_code == 200 and set(refreshed.json()) == {"access"}
    assert refreshed.headers["cache-control"] == "no-store"
    assert logout(api, alice["refresh"]).status_code == 205


# -- forgeries ----------------------------------------------------------------------------------
@pytest.mark.parametrize("forgery", list(FORGERIES))
def test_forged_refresh_token_is_refused_by_refresh(api: httpx.Client, alice: dict[str, Any],
                                                    forgery: str, settings: Settings) -> None:
    """API.md + RFC 8725 3.1/3.2, ASVS 3.5.3: other keys/algorithms, alg none, edits are 401."""
    forged = FORGERIES[forgery](alice["refresh"], settings)
    assert forged != alice["refresh"]
    reasons = ["bad_signature"] if forgery in BAD_SIGNATURE else []
    assert_refused(refresh(api, forged), *reasons)


@pytest.mark.parametrize("forgery", list(FORGERIES))
def test_forged_access_token_is_refused_by_profile(api: httpx.Client, alice: dict[str, Any],
                                                   forgery: str, settings: Settings) -> None:
    """API.md + JWT cheat sheet (none algorithm, signature checks): 401 with WWW-Authenticate."""
    forged = FORGERIES[forgery](alice["access"], settings)
    reasons = ["bad_signature"] if forgery in BAD_SIGNATURE else []
    assert_refused(profile(api, forged), *reasons)


@pytest.mark.parametrize("forgery", list(FORGERIES))
def test_forged_refresh_token_is_refused_by_logout(api: httpx.Client, alice: dict[str, Any],
                                                   forgery: str, settings: Settings) -> None:
    """API.md: logout/ answers 400 on refresh_token for a forged token, and revokes nothing."""
    assert_logout_refused(logout(api, FORGERIES[forgery](alice["refresh"], settings)))
    assert refresh(api, alice["refresh"]).status_code == 200


@pytest.mark.parametrize("endpoint", ["token/refresh/", "profile/", "logout/"])
def test_token_with_a_byte_appended_is_refused(api: httpx.Client, alice: dict[str, Any],
                                               endpoint: str) -> None:
    """API.md: a token altered in any byte is refused (here: '=' appended to the signature)."""
    if endpoint == "profile/":
        assert_refused(profile(api, alice["access"] + "="))
    elif endpoint == "logout/":
        assert_logout_refused(logout(api, alice["refresh"] + "="))
    else:
        assert_refused(refresh(api, alice["refresh"] + "="))


def test_token_for_a_user_that_does_not_exist_is_refused(api: httpx.Client,
                                                         alice: dict[str, Any],
                                                         settings: Settings) -> None:
    """API.md: a validly signed token whose user does not exist is a token refusal (401/400)."""
    ghost_refresh = jwt.encode({**claims(settings, alice["refresh"]), "sub": "999999"}, SECRET,
                               algorithm="HS256")
    ghost_access = jwt.encode({**claims(settings, alice["access"]), "sub": "999999"}, SECRET,
                              algorithm="HS256")
    assert_refused(refresh(api, ghost_refresh))
    assert_refused(profile(api, ghost_access))
    assert_logout_refused(logout(api, ghost_refresh))


def test_missing_bearer_token_is_not_authenticated(api: httpx.Client) -> None:
    """API.md errors: no token sent is 401 code not_authenticated with WWW-Authenticate."""
    response = api.get(API + "profile/")
    assert response.status_code == 401
    assert response.json()["code"] == "not_authenticated"
    assert response.headers["www-authenticate"].startswith("Bearer")


# -- token type ---------------------------------------------------------------------------------
def test_access_token_is_refused_where_a_refresh_token_is_expected(api: httpx.Client,
                                                                  alice: dict[str, Any]) -> None:
    """API.md + RFC 8725 3.11 (explicit typing): an access token never refreshes or logs out."""
    assert_refused(refresh(api, alice["access"]), "wrong_token_type")
    assert_logout_refused(logout(api, alice["access"]))


def test_refresh_token_is_refused_as_a_bearer_token(api: httpx.Client,
                                                    alice: dict[str, Any]) -> None:
    """API.md + RFC 8725 3.11: a refresh token is never accepted as an access token."""
    assert_refused(profile(api, alice["refresh"]), "wrong_token_type")


# -- expiry (injected clock, default leeway 10 s) -----------------------------------------------
def test_access_token_expiry_has_a_ten_second_leeway(api: httpx.Client, alice: dict[str, Any],
                                                     clock: Clock, settings: Settings) -> None:
    """API.md: time claims get a leeway (default 10 s): accepted at exp+9, refused at exp+10."""
    exp = claims(settings, alice["access"])["exp"]
    assert exp == T0 + ACCESS_TTL
    clock.now = exp + LEEWAY - 1
    assert profile(api, alice["access"]).status_code == 200
    clock.now = exp + LEEWAY
    assert_refused(profile(api, alice["access"]), "token_expired")


def test_refresh_token_expiry_has_a_ten_second_leeway(api: httpx.Client, alice: dict[str, Any],
                                                      clock: Clock, settings: Settings) -> None:
    """API.md: an expired refresh token is 401 token_expired; leeway 10 s."""
    exp = claims(settings, alice["refresh"])["exp"]
    assert exp == T0 + REFRESH_TTL
    clock.now = exp + LEEWAY - 1
    assert refresh(api, alice["refresh"]).status_code == 200
    clock.now = exp + LEEWAY
    assert_refused(refresh(api, alice["refresh"]), "token_expired")


def test_expired_refresh_token_cannot_log_out(api: httpx.Client, alice: dict[str, Any],
                                              clock: Clock, settings: Settings) -> None:
    """API.md: logout/ is 400 for an expired token, and 205 just inside the leeway."""
    second = logged_in(api)["refresh"]
    exp = claims(settings, alice["refresh"])["exp"]
    clock.now = exp + LEEWAY - 1
    assert logout(api, alice["refresh"]).status_code == 205
    clock.now = exp + LEEWAY
    assert_logout_refused(logout(api, second))


def test_token_issued_in_the_future_is_refused_beyond_the_leeway(
        api: httpx.Client, alice: dict[str, Any], clock: Clock) -> None:
    """API.md leeway: a token whose iat (RFC 7519 4.1.6) is over 10 s ahead is refused."""
    clock.now = T0 - LEEWAY
    assert profile(api, alice["access"]).status_code == 200
    clock.now = T0 - LEEWAY - 1
    assert_refused(profile(api, alice["access"]), "token_not_yet_valid")
    assert_refused(refresh(api, alice["refresh"]), "token_not_yet_valid")


def test_refresh_never_extends_the_refresh_token(api: httpx.Client, alice: dict[str, Any],
                                                 clock: Clock, settings: Settings) -> None:
    """API.md: a refresh token's own expiry is fixed at issue; refreshing never extends it."""
    exp = claims(settings, alice["refresh"])["exp"]
    for now in (T0 + 1000, T0 + 50_000, exp - 1):
        clock.now = now
        refreshed = refresh(api, alice["refresh"])
        assert refreshed.status_code == 200 and set(refreshed.json()) == {"access"}
    clock.now = exp + LEEWAY
    assert_refused(refresh(api, alice["refresh"]), "token_expired")


# -- logout and the blacklist -------------------------------------------------------------------
def test_logout_twice_is_400_the_second_time(api: httpx.Client, alice: dict[str, Any]) -> None:
    """API.md: logout/ answers 400 for a token that is already revoked."""
    first = logout(api, alice["refresh"])
    assert first.status_code == 205 and first.content == b""
    assert_logout_refused(logout(api, alice["refresh"]))


def test_logged_out_token_stays_refused(api: httpx.Client, alice: dict[str, Any],
                                        clock: Clock) -> None:
    """API.md + ASVS 3.3.1: after logout/ the token is refused by refresh (401), logout (400)."""
    assert logout(api, alice["refresh"]).status_code == 205
    for now in (T0, T0 + 3600, T0 + REFRESH_TTL - 1):
        clock.now = now
        assert_refused(refresh(api, alice["refresh"]), "token_revoked")
        assert_logout_refused(logout(api, alice["refresh"]))
    other = logged_in(api)["refresh"]
    assert refresh(api, other).status_code == 200  # only that token was revoked


def test_blacklist_key_lives_as_long_as_the_token(api: httpx.Client, alice: dict[str, Any],
                                                  settings: Settings, sync_redis: redis.Redis,
                                                  clock: Clock) -> None:
    """API.md Redis conventions: `{prefix}blacklist:{jti}`, TTL = the token's remaining life."""
    clock.now = T0 + 1000
    assert logout(api, alice["refresh"]).status_code == 205
    key = blacklist_key(settings, alice["refresh"])
    assert sync_redis.exists(key)
    remaining = claims(settings, alice["refresh"])["exp"] - clock.now
    assert remaining - 2 <= sync_redis.ttl(key) <= remaining + LEEWAY + 2


def test_logged_out_token_is_not_revived_within_the_leeway(api: httpx.Client,
                                                           alice: dict[str, Any],
                                                           settings: Settings,
                                                           sync_redis: redis.Redis,
                                                           clock: Clock) -> None:
    """API.md: a logged-out token stays refused until it would have expired anyway: the
    blacklist entry outlives the token's expiry plus the leeway the decoder grants."""
    exp = claims(settings, alice["refresh"])["exp"]
    clock.now = exp + 5  # expired, but still accepted inside the leeway
    assert logout(api, alice["refresh"]).status_code == 205
    ttl = sync_redis.ttl(blacklist_key(settings, alice["refresh"]))
    assert ttl >= exp + LEEWAY - clock.now, ttl
    assert_refused(refresh(api, alice["refresh"]))


# -- rotation -----------------------------------------------------------------------------------
@pytest.fixture
def rotating(settings: Settings, make_client: Any, clock: Clock) -> httpx.Client:
    return make_client(settings.replace(jwt={"rotate_refresh_tokens": True}),  # type: ignore
                       clock=clock)


def test_rotation_returns_a_refresh_that_keeps_the_original_expiry(
        rotating: httpx.Client, clock: Clock, settings: Settings) -> None:
    """API.md: with rotation on, refresh returns {access, refresh}; expiry is fixed at issue."""
    original = register(rotating)["refresh"]
    exp = claims(settings, original)["exp"]
    clock.now = T0 + 1000
    first = refresh(rotating, original)
    assert first.status_code == 200 and set(first.json()) == {"access", "refresh"}
    successor = first.json()["refresh"]
    assert claims(settings, successor)["exp"] == exp
    assert claims(settings, successor)["jti"] != claims(settings, original)["jti"]
    assert claims(settings, first.json()["access"])["token_type"] == "access"
    clock.now = T0 + 2000
    second = refresh(rotating, successor)
    assert second.status_code == 200 and claims(settings, second.json()["refresh"])["exp"] == exp
    clock.now = exp + LEEWAY
    assert_refused(refresh(rotating, second.json()["refresh"]), "token_expired")


def test_rotated_out_token_is_blacklisted_and_its_reuse_ends_the_session(
        rotating: httpx.Client, settings: Settings, sync_redis: redis.Redis,
        clock: Clock) -> None:
    """RFC 9700 4.14.2 / OWASP JWT cheat sheet: a rotated-out refresh token presented after the
    grace window is theft: refused with reason token_reused, and the whole session ends."""
    original = register(rotating)["refresh"]
    clock.now = T0 + 1000
    successor = refresh(rotating, original).json()["refresh"]
    ttl = sync_redis.ttl(blacklist_key(settings, original))
    remaining = claims(settings, original)["exp"] - clock.now
    assert remaining - 2 <= ttl <= remaining + LEEWAY + 2
    clock.now = T0 + 1000 + settings.jwt.rotation_grace + 1
    assert_refused(refresh(rotating, original), "token_reused")
    assert_refused(refresh(rotating, successor), "token_reused")


def test_every_token_of_a_session_ended_by_reuse_is_refused_as_token_reused(
        rotating: httpx.Client, settings: Settings, sync_redis: redis.Redis,
        clock: Clock) -> None:
    """Issue 11: the tabs still holding the session's newest tokens learn why it ended
    (`token_reused`), not only the one that replayed the old token; the reason is kept only as
    long as the session had left. A session ended otherwise still says `session_ended`."""
    first = register(rotating)
    other = logged_in(rotating)
    clock.now = T0 + 1000
    rotated = refresh(rotating, first["refresh"]).json()
    clock.now += settings.jwt.rotation_grace + 1
    assert_refused(refresh(rotating, first["refresh"]), "token_reused")
    assert_refused(profile(rotating, rotated["access"]), "token_reused")
    assert_refused(refresh(rotating, rotated["refresh"]), "token_reused")
    assert_logout_refused(logout(rotating, rotated["refresh"]))
    sid = claims(settings, first["refresh"])["sid"]
    # What the session key had left, in Redis's own (real) time: the test clock is fake.
    ttl = sync_redis.ttl(RedisKeys(settings.redis.prefix).ended(sid))
    assert settings.jwt.refresh_ttl - 30 <= ttl <= settings.jwt.refresh_ttl + LEEWAY + 1, ttl
    assert logout(rotating, other["refresh"]).status_code == 205
    assert_refused(profile(rotating, other["access"]), "session_ended")


def test_rotated_out_token_at_logout_ends_the_session(rotating: httpx.Client, clock: Clock,
                                                      settings: Settings) -> None:
    """Issue 3: an already-rotated refresh token presented to logout/ ends the session (400)."""
    original = register(rotating)["refresh"]
    clock.now = T0 + 1000
    successor = refresh(rotating, original).json()["refresh"]
    clock.now += settings.jwt.rotation_grace + 1  # inside it, see the test below
    assert_logout_refused(logout(rotating, original))
    assert_refused(refresh(rotating, successor), "token_reused")


def test_a_logout_racing_another_tabs_rotation_is_a_sign_out_not_a_theft(
        rotating: httpx.Client, settings: Settings, sync_redis: redis.Redis,
        clock: Clock) -> None:
    """Issue 11 review: one tab signs out with the refresh token another tab rotated a moment
    ago (its new pair not yet broadcast). Inside rotation_grace that token is still this
    browser's, as refresh/ already holds: the session ends (and the token, already revoked,
    is a 400), but it is no theft: no token_reused for the other tabs' tokens."""
    original = register(rotating)["refresh"]
    clock.now = T0 + 1000
    rotated = refresh(rotating, original).json()
    clock.now += settings.jwt.rotation_grace
    assert_logout_refused(logout(rotating, original))
    sid = claims(settings, original)["sid"]
    assert sync_redis.get(RedisKeys(settings.redis.prefix).ended(sid)) is None
    assert_refused(profile(rotating, rotated["access"]), "session_ended")
    assert_refused(refresh(rotating, rotated["refresh"]), "session_ended")


def test_concurrent_rotations_of_one_token_get_one_successor(rotating: httpx.Client) -> None:
    """Issue 3: two tabs refreshing with one token at once are not logged out: the swap is
    atomic and every racer inside the grace window gets the same successor pair."""
    original = register(rotating)["refresh"]
    racers = 4
    barrier = threading.Barrier(racers)
    results: list[httpx.Response] = []

    def race() -> None:
        with httpx.Client(base_url=rotating.base_url, timeout=30) as own:
            barrier.wait()
            results.append(refresh(own, original))

    threads = [threading.Thread(target=race) for _ in range(racers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert [r.status_code for r in results] == [200] * racers
    pairs = {(r.json()["access"], r.json()["refresh"]) for r in results}
    assert len(pairs) == 1, pairs
    (_access, successor), = pairs
    assert refresh(rotating, successor).status_code == 200


# -- the per-user cut-off after a password reset -------------------------------------------------
def test_token_minted_in_the_reset_second_is_judged_by_version(
        api: httpx.Client, alice: dict[str, Any], settings: Settings, smtp_server: Any,
        sync_redis: redis.Redis, tmp_path: Path) -> None:
    """API.md: the per-user version claim judges tokens minted in the reset's own second."""
    mailbox, _ = smtp_server
    before = alice
    assert api.post(API + "password-reset/", json={"email": USER["email"]}).status_code == 200
    wait_for_jobs(settings, sync_redis, 1)
    assert run_worker(settings, tmp_path).returncode == 0
    new_password = "a brand new passphrase"
    confirmed = api.post(API + "password-reset/confirm/", json={
        "token": reset_token_from(mailbox.messages[0]), "password": new_password,
        "password2": new_password})
    assert confirmed.status_code == 200, confirmed.text
    after = logged_in(api, password=new_password)
    issued = claims(settings, after["refresh"])["iat"]
    assert issued == claims(settings, before["refresh"])["iat"] == T0
    for _ in range(2):
        assert_refused(refresh(api, before["refresh"]), "password_changed")
        assert_refused(profile(api, before["access"]), "password_changed")
        assert_logout_refused(logout(api, before["refresh"]))
        assert profile(api, after["access"]).status_code == 200
        assert refresh(api, after["refresh"]).status_code == 200
        # The cut-off lives with the user in the database: it survives losing Redis's cache.
        user_keys = list(sync_redis.scan_iter(match=RedisKeys(settings.redis.prefix).every("user")))
        if user_keys:
            sync_redis.delete(*user_keys)
