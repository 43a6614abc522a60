"""Login lockout with OWASP's device-cookie scheme (issue 3; OWASP Authentication cheat sheet,
ASVS V2.2.1): failures lock an identifier for unknown devices only, so an attacker guessing
passwords cannot lock the owner out of a device they have signed in from before."""

from __future__ import annotations

import random
import threading
from typing import Any

import httpx
import redis
from api import USER, login, register

from service.config import Settings
from service.core.devices import DeviceTokens
from service.store.keys import RedisKeys

MAX = 3


def locking(settings: Settings) -> Settings:
    return settings.replace(lockout={"enabled": True, "max_failures": MAX, "window": 600})


def attempt(client: httpx.Client, who: str, password: str, device: str | None = None,
            cookie: str | None = None) -> httpx.Response:
    headers = {"Cookie": f"authsvc_device={cookie}"} if cookie else {}
    return login(client, who, password, device=device, headers=headers)


def test_failures_lock_unknown_devices_out_with_429(settings: Settings, make_client: Any) -> None:
    """After max_failures, even the right password from an unknown device is refused (429)."""
    client = make_client(locking(settings))
    register(client)
    codes = [attempt(client, "alice", "wrong guess").status_code for _ in range(MAX)]
    locked = attempt(client, "alice", USER["password"])
    assert codes == [401] * MAX
    assert locked.status_code == 429
    assert 1 <= int(locked.headers["Retry-After"]) <= 600
    assert set(locked.json()) == {"detail"}


def test_unknown_accounts_lock_alike(settings: Settings, make_client: Any) -> None:
    """OWASP: the lock reveals nothing: an identifier with no account locks the same way."""
    client = make_client(locking(settings))
    register(client)
    real = [attempt(client, "alice", "wrong guess").status_code for _ in range(MAX + 1)]
    ghost = [attempt(client, "nobody", "wrong guess").status_code for _ in range(MAX + 1)]
    assert real == ghost == [401] * MAX + [429]
    assert attempt(client, "someone-else", "x").status_code == 401


def test_a_lock_on_the_username_says_nothing_about_the_email(settings: Settings,
                                                             make_client: Any) -> None:
    """Issue 9 (11): locking one identifier must not make another identifier of the same
    account answer unlike an identifier with no account (the lock used to be the account's,
    so a 429 on an email showed that it belonged to the locked username)."""
    client = make_client(locking(settings))
    register(client)
    register(client, username="bob", email="bob@example.com")
    assert [attempt(client, "alice", "wrong").status_code for _ in range(MAX + 1)] \
        == [401] * MAX + [429]
    same_account = [attempt(client, "ALICE@example.com", "wrong").status_code
                    for _ in range(MAX + 1)]
    no_account = [attempt(client, "ghost@example.com", "wrong").status_code
                  for _ in range(MAX + 1)]
    other_account = [attempt(client, "bob@example.com", "wrong").status_code
                     for _ in range(MAX + 1)]
    assert same_account == no_account == other_account == [401] * MAX + [429]


def test_guessing_through_username_and_email_never_doubles_the_budget(
        settings: Settings, make_client: Any) -> None:
    """The account's failures are still counted together: once its username has used up
    max_failures, its email keeps answering 401 (as an unknown one would), but the verdict is
    withheld there: even the right password gets 401, so a guesser gets max_failures tries
    per window, not twice that. A known device is untouched."""
    client = make_client(locking(settings))
    register(client)
    device = attempt(client, "alice", USER["password"]).json()["device_token"]
    for _ in range(MAX):
        assert attempt(client, "alice", "wrong").status_code == 401
    assert attempt(client, "alice@example.com", USER["password"]).status_code == 401
    assert attempt(client, "alice@example.com", "wrong").status_code == 401
    assert attempt(client, "alice", USER["password"], device=device).status_code == 200


def test_parallel_guesses_cannot_slip_under_the_limit(settings: Settings,
                                                      make_client: Any) -> None:
    """ASVS V2.2.1: attempts are counted before the hash is checked, so N parallel guesses
    get at most max_failures answers of 401; the rest are 429."""
    client = make_client(locking(settings))
    register(client)
    results: list[int] = []

    def guess() -> None:
        with httpx.Client(base_url=client.base_url, timeout=30) as own:
            results.append(attempt(own, "alice", "parallel guess").status_code)

    threads = [threading.Thread(target=guess) for _ in range(12)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert sorted(results) == [401] * MAX + [429] * (12 - MAX)


def test_a_known_device_keeps_signing_in_while_the_account_is_locked(
        settings: Settings, make_client: Any) -> None:
    """OWASP device cookies: the owner's device has its own allowance."""
    client = make_client(locking(settings))
    register(client)
    first = attempt(client, "alice", USER["password"])
    device = first.json()["device_token"]
    for _ in range(MAX):
        attempt(client, "alice", "attacker guess")
    assert attempt(client, "alice", USER["password"]).status_code == 429
    assert attempt(client, "alice", USER["password"], device=device).status_code == 200
    assert attempt(client, "alice", USER["password"], cookie=device).status_code == 200


def test_a_device_that_fails_too_often_is_locked_on_its_own(settings: Settings,
                                                            make_client: Any) -> None:
    """OWASP: failures with a device cookie count against that device, not the others."""
    client = make_client(locking(settings))
    register(client)
    device = attempt(client, "alice", USER["password"]).json()["device_token"]
    codes = [attempt(client, "alice", "wrong", device=device).status_code for _ in range(MAX + 1)]
    assert codes == [401] * MAX + [429]
    assert attempt(client, "alice", USER["password"]).status_code == 200  # untrusted: untouched


def test_device_tokens_are_bound_to_their_user(settings: Settings, make_client: Any) -> None:
    """A device token of bob's account gives no allowance on alice's."""
    client = make_client(locking(settings))
    register(client)
    register(client, username="bob", email="bob@example.com")
    bobs = attempt(client, "bob", USER["password"]).json()["device_token"]
    for _ in range(MAX):
        attempt(client, "alice", "attacker guess")
    assert attempt(client, "alice", USER["password"], device=bobs).status_code == 429
    forged = bobs[:-4] + ("AAAA" if not bobs.endswith("AAAA") else "BBBB")
    assert attempt(client, "bob", "wrong", device=forged).status_code == 401


def test_the_device_cookie_is_locked_down(settings: Settings, make_client: Any) -> None:
    """OWASP session cookies: HttpOnly, Secure, SameSite=Strict, scoped to login/."""
    client = make_client(locking(settings))
    register(client)
    cookie = attempt(client, "alice", USER["password"]).headers["set-cookie"]
    for flag in ("HttpOnly", "Secure", "SameSite=Strict", "Path=/api/v1/auth/login"):
        assert flag in cookie, cookie


def test_lock_counters_expire_with_the_window(settings: Settings, make_client: Any,
                                              sync_redis: redis.Redis) -> None:
    """Redis conventions: the failure counter's TTL is the lockout window."""
    client = make_client(locking(settings))
    attempt(client, "alice", "wrong")
    keys = list(sync_redis.scan_iter(match=RedisKeys(settings.redis.prefix).every("lock")))
    assert len(keys) == 1 and 0 < sync_redis.ttl(keys[0]) <= 600


def test_disabled_lockout_never_locks(client: httpx.Client) -> None:
    """[lockout] enabled = false switches it off."""
    register(client)
    assert all(attempt(client, "alice", "wrong").status_code == 401 for _ in range(MAX + 3))
    assert attempt(client, "alice", USER["password"]).status_code == 200


# Device tokens as an attacker may send them: non-ASCII (hmac.compare_digest raised on it),
# empty parts, Unicode digits, huge, many dots, a real token's shape with a bad tail.
MALFORMED_DEVICE_TOKENS = [
    "1.a.1.é", "é", "1.a.1.", "...", ".", "1..1.x", "1.a..x", ".a.1.x", "1.a.1.x.y",
    "1.a.²." + "A" * 43, "1.a.١٢." + "A" * 43, "1.é.9999999999." + "A" * 43,
    "1.a.9999999999." + "A" * 42 + "é", "1.a.9999999999." + "A" * 43 + "\n",
    "-1.a.9999999999." + "A" * 43, "1.a.99999999999999999999999999." + "A" * 43,
    "1.a.1.é" * 28, "." * 200, "1." * 100, " 1.a.1.x", "1.a.1.\u0430",
]


def test_malformed_device_tokens_are_ignored_alike_for_real_and_unknown_users(
        settings: Settings, make_client: Any) -> None:
    """Issue 9 (3): a device token that does not verify is ignored, in the body or the
    cookie: `1.a.1.é` gave a 500 for a real username and a 401 for an unknown one (an
    account-existence oracle and a traceback per call)."""
    client = make_client(settings.replace(lockout={"enabled": True, "max_failures": 10_000}))
    register(client)
    for token in MALFORMED_DEVICE_TOKENS:
        for who in ("alice", "alice@example.com", "nobody"):
            assert attempt(client, who, "wrong", device=token).status_code == 401, token
            if "\n" in token:  # no header can carry it
                continue
            response = login(client, who, "wrong",
                             headers={"Cookie": b"authsvc_device=" + token.encode()})
            assert response.status_code == 401, token
        signed_in = attempt(client, "alice", USER["password"], device=token)
        assert signed_in.status_code == 200, token
        assert signed_in.json()["device_token"] != token  # a fresh one: this one was ignored
    # A cookie as large as a request head may be ([server] max_header_bytes); a larger one
    # is refused with 431 before the app reads it, alike for every account.
    room = settings.server.max_header_bytes // 2 - 300
    for huge, status in (("1.a.1." + "é" * (room // 2), 401), ("1.a.1." + "é" * 100_000, 431)):
        for who in ("alice", "nobody"):
            cookie = {"Cookie": b"authsvc_device=" + huge.encode()}
            assert login(client, who, "x", headers=cookie).status_code == status


def test_device_token_verification_never_raises() -> None:
    """Fuzz DeviceTokens.verify directly: whatever the text, an id or None, never an error."""
    devices = DeviceTokens("s" * 40, ttl=3600)
    token = devices.issue(7, now=1000.0)
    assert devices.verify(token, 7, now=1001.0)
    assert devices.verify(token, 8, now=1001.0) is None
    rng = random.Random(9)
    alphabet = "0123456789.aZ_-é²١\u0430\x00 \ud800" + "A" * 10
    pieces = token.split(".")
    for _ in range(3000):
        fuzzed = "".join(rng.choice(alphabet) for _ in range(rng.randrange(0, 90)))
        spliced = ".".join(p if rng.random() < 0.6 else fuzzed[:rng.randrange(0, 50)]
                           for p in pieces)
        for candidate in (fuzzed, spliced, spliced + "." * rng.randrange(0, 4)):
            assert devices.verify(candidate, 7, now=1001.0) in (None, pieces[1])
    for bad in MALFORMED_DEVICE_TOKENS:
        assert devices.verify(bad, 1, now=1001.0) is None
