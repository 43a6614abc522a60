"""The attacks an attacker's review of issue 13 found working, each now refused: old simplejwt
tokens passing step-up or the enrolment scope, guessing at the enrolment's first code, an
admin's stale token resetting factors, half-done states when Redis fails mid-step, and
parallel regenerations and first enrolments on SQLite and PostgreSQL."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

import httpx
import pytest
import redis
from api import API, PASSWORD, REFRESH, USERS, bearer, claims, login, make_admin, register
from django_ref import USERS as OLD
from django_ref import migration_settings, run_import, session_of
from mfa_api import (
    CODES,
    CONFIRM,
    MFA,
    TOTP,
    code_at,
    enrol,
    enrolled,
    password_step,
    reauth,
    second_step,
)
from support import Clock, sql

from service.config import Settings
from service.store import migrate


def fail(*args: Any, **kwargs: Any) -> Any:
    raise redis.exceptions.ConnectionError("Redis went away (injected)")


def codes_left(client: httpx.Client, access: str) -> int:
    return int(client.get(MFA, headers=bearer(access)).json()["recovery_codes_left"])


# -- old simplejwt tokens --------------------------------------------------------------------
def test_a_session_an_old_refresh_token_starts_is_never_recent(settings: Settings,
                                                               make_client: Any) -> None:
    """A refresh token stolen in the Django days must not pass step-up: its session has no
    grant, which reads as a sign-in long ago (it used to read as its creation, i.e. now)."""
    s = settings.replace(migration=migration_settings())
    run_import(s)
    client = make_client(s)
    user = OLD["pbkdf2_one"]
    enrolled(client, login(client, user["username"], user["password"]).json()["access"])
    refreshed = client.post(REFRESH, json={"refresh": session_of(user)["refresh"]})
    assert refreshed.status_code == 200, refreshed.text
    access = refreshed.json()["access"]
    assert claims(s, access)["auth_time"] == 0
    off = client.delete(TOTP, headers=bearer(access))
    assert off.status_code == 403 and off.json()["code"] == "step_up_required"
    assert client.post(TOTP, headers=bearer(access)).status_code == 403


def test_an_old_access_token_is_held_to_the_enrolment_too(settings: Settings,
                                                          make_client: Any) -> None:
    s = settings.replace(migration=migration_settings(), mfa={"require_for_roles": ("admin",)})
    run_import(s)
    client = make_client(s)
    old = session_of(OLD["siteadmin"])["access"]
    refused = client.get(USERS, headers=bearer(old))
    assert refused.status_code == 403 and refused.json()["code"] == "mfa_enrolment_required"
    assert client.get(MFA, headers=bearer(old)).json()["enrolment_required"] is True


# -- the enrolment's first code --------------------------------------------------------------
def test_the_first_code_is_guarded_like_a_sign_in(settings: Settings, make_client: Any) -> None:
    """A stale stolen session cannot guess at an enrolment the owner left waiting (a right
    guess would make it recent), and a recent one gets the lockout's budget, not a million."""
    clock = Clock(1_800_000_000.0)
    client = make_client(settings.replace(lockout={"enabled": True, "max_failures": 3}),
                         clock=clock)
    access = register(client)["access"]
    secret = enrol(client, access)
    for _ in range(3):
        wrong = client.post(CONFIRM, headers=bearer(access), json={"code": "000000"})
        assert wrong.status_code == 400
    locked = client.post(CONFIRM, headers=bearer(access),
                         json={"code": code_at(secret, clock.now)})
    assert locked.status_code == 429 and "Retry-After" in locked.headers
    clock.now += settings.mfa.step_up_max_age + 1
    stale = client.post(CONFIRM, headers=bearer(access), json={"code": "000000"})
    assert stale.status_code == 403 and stale.json()["code"] == "step_up_required"


def test_an_enrolment_waits_ten_minutes_for_its_first_code(settings: Settings,
                                                          make_client: Any) -> None:
    clock = Clock(1_800_000_000.0)
    client = make_client(settings, clock=clock)
    access = register(client)["access"]
    secret = enrol(client, access)
    clock.now += 601
    fresh = reauth(client, access, password=PASSWORD)
    assert fresh.status_code == 200, fresh.text
    late = client.post(CONFIRM, headers=bearer(fresh.json()["access"]),
                       json={"code": code_at(secret, clock.now)})
    assert late.status_code == 400 and "non_field_errors" in late.json()


# -- admins ----------------------------------------------------------------------------------
def test_an_admins_stale_token_cannot_reset_factors(settings: Settings, make_client: Any,
                                                    sync_redis: redis.Redis) -> None:
    """Admin writes carry no password: removing another user's factor wants a recent sign-in
    from every admin, with a factor or without."""
    clock = Clock(1_800_000_000.0)
    client = make_client(settings, clock=clock)
    admin = make_admin(client, settings, sync_redis)
    enrolled(client, register(client)["access"], now=clock.now)
    uid = sql(settings, "SELECT id FROM users WHERE username = 'alice'")[0]["id"]
    clock.now += settings.mfa.step_up_max_age + 1
    stale = client.post(f"{API}users/{uid}/mfa/reset/", headers=bearer(admin["access"]))
    assert stale.status_code == 403 and stale.json()["methods"] == ["password"]
    assert password_step(client)["mfa_required"] is True


# -- Redis failing mid-step ------------------------------------------------------------------
def test_a_recovery_code_is_not_spent_when_reauth_cannot_renew_the_session(
        served: tuple[Any, httpx.Client], monkeypatch: pytest.MonkeyPatch) -> None:
    app, client = served
    done = enrolled(client, register(client)["access"])
    monkeypatch.setattr(app.state.sessions._session_store, "elevate", fail)
    failed = reauth(client, done["access"], method="recovery_code",
                    code=done["recovery_codes"][0])
    assert failed.status_code == 503
    monkeypatch.undo()
    assert codes_left(client, done["access"]) == 10
    again = reauth(client, done["access"], method="recovery_code",
                   code=done["recovery_codes"][0])
    assert again.status_code == 200, again.text


def test_a_failed_second_step_starts_no_session_and_spends_no_code(
        served: tuple[Any, httpx.Client], monkeypatch: pytest.MonkeyPatch) -> None:
    """Redis fails as the sign-in is used up: no session nobody received, the code given
    back; the user signs in again from the password."""
    app, client = served
    done = enrolled(client, register(client)["access"])
    step = password_step(client)
    monkeypatch.setattr(app.state.mfa_login._pending, "finish", fail)
    failed = second_step(client, step["mfa_token"], done["recovery_codes"][0],
                         "recovery_code")
    assert failed.status_code == 503
    monkeypatch.undo()
    assert codes_left(client, done["access"]) == 10
    assert len(client.get(API + "sessions/", headers=bearer(done["access"])).json()) == 1
    again = second_step(client, password_step(client)["mfa_token"],
                        done["recovery_codes"][0], "recovery_code")
    assert again.status_code == 200, again.text


def test_a_confirmation_redis_cannot_answer_leaves_the_enrolment_waiting(
        served: tuple[Any, httpx.Client], monkeypatch: pytest.MonkeyPatch) -> None:
    """The recovery codes are shown once: a factor must not be turned on by an answer that
    never arrives. The retry confirms it and shows them."""
    app, client = served
    access = register(client)["access"]
    secret = enrol(client, access)
    monkeypatch.setattr(app.state.sessions._session_store, "elevate", fail)
    failed = client.post(CONFIRM, headers=bearer(access), json={"code": code_at(secret,
                                                                                time.time())})
    assert failed.status_code == 503
    monkeypatch.undo()
    assert client.get(MFA, headers=bearer(access)).json()["totp"]["enabled"] is False
    retry = client.post(CONFIRM, headers=bearer(access),
                        json={"code": code_at(secret, time.time())})
    assert retry.status_code == 200 and len(retry.json()["recovery_codes"]) == 10


# -- parallel writes -------------------------------------------------------------------------
def in_parallel(n: int, call: Callable[[], httpx.Response]) -> list[httpx.Response]:
    barrier = threading.Barrier(n)
    answers: list[httpx.Response] = []

    def go() -> None:
        barrier.wait()
        answers.append(call())

    threads = [threading.Thread(target=go) for _ in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return answers


def parallel_enrolment_and_regeneration(client: httpx.Client, settings: Settings) -> None:
    access = register(client)["access"]
    url = str(client.base_url)
    starts = in_parallel(10, lambda: httpx.post(url + TOTP, headers=bearer(access), timeout=30))
    assert sorted(r.status_code for r in starts) == [201] * 10
    done = enrolled(client, access)
    sets = in_parallel(10, lambda: httpx.post(url + CODES, headers=bearer(done["access"]),
                                              timeout=30))
    assert sorted(r.status_code for r in sets) == [200] * 10
    live = sql(settings, "SELECT COUNT(*) AS n FROM mfa_recovery_codes WHERE used_at IS NULL"
               ) if settings.database.url.startswith("sqlite") else None
    assert live is None or live[0]["n"] == 10
    assert codes_left(client, done["access"]) == 10
    # Exactly one answered set works: the last one written.
    working = [r.json()["recovery_codes"] for r in sets
               if second_step(client, password_step(client)["mfa_token"],
                              r.json()["recovery_codes"][0], "recovery_code").status_code == 200]
    assert len(working) == 1


@pytest.mark.timeout(120)
def test_parallel_first_enrolments_and_regenerations_on_sqlite(settings: Settings,
                                                                make_client: Any) -> None:
    parallel_enrolment_and_regeneration(make_client(settings), settings)


@pytest.mark.postgres
@pytest.mark.timeout(120)
def test_parallel_first_enrolments_and_regenerations_on_postgresql(
        settings: Settings, make_client: Any, empty_postgres: str) -> None:
    migrate.upgrade(empty_postgres)
    s = settings.replace(database={"url": empty_postgres})
    parallel_enrolment_and_regeneration(make_client(s), s)
