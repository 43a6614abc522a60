"""Re-authentication on password/change/ (issue 9, item 2): a stolen access token is no
unlimited password oracle. Wrong old passwords are counted like failed logins (per account,
and each attempt against the client IP's login rate), and one user has at most one password
check in flight, so parallel guesses cannot fill the shared hash pool."""

from __future__ import annotations

import sqlite3
import threading
from typing import Any

import httpx
import redis
from api import API, USER, bearer, login, register

from service.config import Rate, Settings
from service.store.keys import RedisKeys

NEW = "a brand new passphrase"
MAX = 3


def change(client: httpx.Client, access: str, old: str, ip: str | None = None) -> httpx.Response:
    headers = bearer(access) | ({"X-Forwarded-For": ip} if ip else {})
    return client.post(API + "password/change/", headers=headers,
                       json={"old_password": old, "password": NEW, "password2": NEW})


def user_id(settings: Settings, username: str) -> int:
    with sqlite3.connect(settings.database.url.removeprefix("sqlite:///")) as db:
        (found,) = db.execute("SELECT id FROM users WHERE username = ?", (username,)).fetchone()
    return int(found)


def test_wrong_old_passwords_are_counted_like_failed_logins(settings: Settings,
                                                            make_client: Any) -> None:
    """Past [lockout] max_failures wrong old passwords: 429 with Retry-After, before any
    hashing (even the right one waits). Used to be 400 for ever (40 guesses in 1.2 s). The
    count is the account's re-authentication count: the owner can still sign in."""
    client = make_client(settings.replace(lockout={"enabled": True, "max_failures": MAX,
                                                   "window": 600}))
    access = register(client)["access"]
    wrong = [change(client, access, f"guess {i}") for i in range(MAX)]
    assert all(r.status_code == 400 and set(r.json()) == {"old_password"} for r in wrong)
    locked = change(client, access, "guess again")
    assert locked.status_code == 429 and set(locked.json()) == {"detail"}
    assert 1 <= int(locked.headers["Retry-After"]) <= 600
    assert change(client, access, USER["password"]).status_code == 429
    assert login(client).status_code == 200


def test_a_right_old_password_is_no_failure(settings: Settings, make_client: Any) -> None:
    client = make_client(settings.replace(lockout={"enabled": True, "max_failures": MAX}))
    access = register(client)["access"]
    assert [change(client, access, "wrong").status_code for _ in range(MAX - 1)] == [400, 400]
    access = change(client, access, USER["password"]).json()["access"]
    assert change(client, access, "wrong").status_code == 400
    assert change(client, access, "wrong").status_code == 429


def test_password_checks_count_against_the_client_ips_login_rate(settings: Settings,
                                                                  make_client: Any) -> None:
    """Per IP: each old-password check spends the client IP's [rate_limit] login budget,
    shared with login/ (one guesser, one budget, whichever endpoint it guesses through)."""
    client = make_client(settings.replace(rate_limit={"enabled": True, "login": Rate(3, 60)},
                                          server={"trusted_proxies": ("127.0.0.1",)}))
    access = register(client)["access"]
    codes = [change(client, access, "wrong", ip="10.40.0.1").status_code for _ in range(4)]
    assert codes == [400, 400, 400, 429]
    assert client.post(API + "login/", json={"username_or_email": "bob", "password": "x"},
                       headers={"X-Forwarded-For": "10.40.0.1"}).status_code == 429
    assert change(client, access, "wrong", ip="10.40.0.2").status_code == 400


def test_one_password_check_in_flight_per_user(settings: Settings, make_client: Any,
                                               sync_redis: redis.Redis) -> None:
    """While a check of this user runs (in any API process: the mark is in Redis), another
    one gets 429 with Retry-After: 1 without hashing; other users are not held up; the mark
    is gone when a check ends."""
    client = make_client(settings)
    alice = register(client)["access"]
    bob = register(client, username="bob", email="bob@example.com")["access"]
    mark = RedisKeys(settings.redis.prefix).hashing(user_id(settings, "alice"))
    sync_redis.set(mark, "another request", ex=30)
    busy = change(client, alice, USER["password"])
    assert busy.status_code == 429 and busy.headers["Retry-After"] == "1"
    assert set(busy.json()) == {"detail"}
    assert change(client, bob, "wrong").status_code == 400
    sync_redis.delete(mark)
    assert change(client, alice, "wrong").status_code == 400
    assert change(client, alice, USER["password"]).status_code == 200
    assert not list(sync_redis.scan_iter(match=RedisKeys(settings.redis.prefix).every("hashing")))


def test_parallel_guesses_get_at_most_max_failures_verdicts(settings: Settings,
                                                            make_client: Any,
                                                            sync_redis: redis.Redis) -> None:
    """120 parallel guesses used to be 120 hashes and 120 verdicts. Now each is either
    refused while another runs or counted before its hash: at most max_failures get a 400."""
    client = make_client(settings.replace(lockout={"enabled": True, "max_failures": MAX}))
    access = register(client)["access"]
    results: list[httpx.Response] = []

    def guess() -> None:
        with httpx.Client(base_url=client.base_url, timeout=30) as own:
            results.append(change(own, access, "parallel guess"))

    threads = [threading.Thread(target=guess) for _ in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    codes = sorted(r.status_code for r in results)
    assert len(codes) == 16 and set(codes) <= {400, 429}
    assert codes.count(400) <= MAX
    assert all(r.headers["Retry-After"] for r in results if r.status_code == 429)
    assert not list(sync_redis.scan_iter(match=RedisKeys(settings.redis.prefix).every("hashing")))


def delete_account(client: httpx.Client, access: str, password: str) -> httpx.Response:
    return client.request("DELETE", API + "profile/", headers=bearer(access),
                          json={"password": password})


def test_account_deletion_checks_its_password_under_the_same_guard(
        settings: Settings, make_client: Any, sync_redis: redis.Redis) -> None:
    """DELETE profile/ is no password oracle either: wrong passwords are counted (the same
    per-account count as password/change/), one check in flight per user; the account stays
    until the right password is given outside a lock."""
    client = make_client(settings.replace(lockout={"enabled": True, "max_failures": MAX,
                                                   "window": 600}))
    access = register(client)["access"]
    mark = RedisKeys(settings.redis.prefix).hashing(user_id(settings, "alice"))
    sync_redis.set(mark, "another request", ex=30)
    busy = delete_account(client, access, USER["password"])
    assert busy.status_code == 429 and busy.headers["Retry-After"] == "1"
    sync_redis.delete(mark)
    wrong = [delete_account(client, access, f"guess {i}") for i in range(MAX)]
    assert all(r.status_code == 400 and set(r.json()) == {"password"} for r in wrong)
    locked = delete_account(client, access, USER["password"])
    assert locked.status_code == 429 and 1 <= int(locked.headers["Retry-After"]) <= 600
    assert change(client, access, USER["password"]).status_code == 429  # one count for both
    assert client.get(API + "profile/", headers=bearer(access)).status_code == 200
