"""A second factor (issue 13): TOTP enrolment, the MFA sign-in step, recovery codes, and what
a stolen session cannot do with them. Codes are computed by pyotp, on the real clock and on
an injected one."""

from __future__ import annotations

import base64
import sqlite3
import threading
import time
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import httpx
import pyotp
import pytest
import redis
from api import (
    API,
    PASSWORD,
    USER,
    assert_field_errors,
    bearer,
    claims,
    logged_in,
    login,
    profile,
    refresh,
    register,
)
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

from service.config import Rate, Settings
from service.store.keys import RedisKeys

T0 = 1_800_000_000.0  # an injected clock's start: a step boundary (divisible by 30)


def job_id(raw: bytes | str) -> str:
    return raw.decode() if isinstance(raw, bytes) else raw


def signed_up(client: httpx.Client) -> str:
    return str(register(client)["access"])


# -- enrolment -------------------------------------------------------------------------------
def test_enrol_shows_the_secret_its_uri_and_a_qr_code(client: httpx.Client) -> None:
    access = signed_up(client)
    started = client.post(TOTP, headers=bearer(access))
    assert started.status_code == 201, started.text
    body = started.json()
    assert set(body) == {"secret", "otpauth_uri", "qr_svg"}
    assert len(base64.b32decode(body["secret"])) == 20  # 160 bits, RFC 4226's length
    parsed = pyotp.parse_uri(body["otpauth_uri"])
    assert parsed.secret == body["secret"] and parsed.name == "alice"
    assert parsed.issuer == "authsvc"
    svg = ET.fromstring(body["qr_svg"])
    assert svg.tag == "{http://www.w3.org/2000/svg}svg"
    # Not on until a first code confirms it: the password alone still signs in.
    assert client.get(MFA, headers=bearer(access)).json()["totp"] == {
        "enabled": False, "pending": True, "confirmed_at": None}
    assert set(logged_in(client)) >= {"access", "refresh"}


def test_confirming_turns_it_on_with_ten_single_use_recovery_codes(
        client: httpx.Client, settings: Settings) -> None:
    access = signed_up(client)
    done = enrolled(client, access)
    codes = done["recovery_codes"]
    assert len(codes) == 10 and len(set(codes)) == 10
    assert all(len(c) == 14 and c.count("-") == 2 for c in codes)
    new = claims(settings, done["access"])
    assert new["amr"] == ["pwd", "otp"] and abs(new["auth_time"] - time.time()) < 5
    status = client.get(MFA, headers=bearer(access)).json()
    assert status["methods"] == ["totp", "recovery_code"]
    assert status["totp"]["enabled"] is True and status["recovery_codes_left"] == 10
    # Shown once: nothing answers them again.
    assert not any(c in client.get(MFA, headers=bearer(access)).text for c in codes)


def test_a_wrong_first_code_confirms_nothing(client: httpx.Client) -> None:
    access = signed_up(client)
    secret = enrol(client, access)
    wrong = code_at(secret, time.time() + 300)
    assert_field_errors(client.post(CONFIRM, headers=bearer(access), json={"code": wrong}),
                        "code")
    assert client.get(MFA, headers=bearer(access)).json()["methods"] == []
    nothing = client.post(CONFIRM, headers=bearer(signed_up_other(client)),
                          json={"code": "123456"})
    assert_field_errors(nothing, "non_field_errors")


def signed_up_other(client: httpx.Client) -> str:
    return str(register(client, username="bob", email="bob@example.com")["access"])


def test_secrets_are_sealed_at_rest_and_bound_to_their_user(
        client: httpx.Client, settings: Settings, sync_redis: redis.Redis) -> None:
    alice = signed_up(client)
    secret = enrolled(client, alice)["secret"]
    rows = sql(settings, "SELECT user_id, secret FROM mfa_totp")
    assert len(rows) == 1 and secret not in rows[0]["secret"]
    assert secret.lower() not in rows[0]["secret"].lower()
    for key in sync_redis.scan_iter(settings.redis.prefix + "*"):
        kind = sync_redis.type(key)
        dump = str(sync_redis.hgetall(key) if kind == b"hash" else
                   sync_redis.get(key) if kind == b"string" else "")
        assert secret not in dump, key
    # alice's sealed secret copied onto bob's row opens for nobody: bob cannot sign in with
    # alice's authenticator.
    signed_up_other(client)
    bob_id = sql(settings, "SELECT id FROM users WHERE username = 'bob'")[0]["id"]
    sql(settings, "INSERT INTO mfa_totp (user_id, secret, last_step) VALUES (?, ?, 0)",
        bob_id, rows[0]["secret"])
    sql(settings, "INSERT INTO mfa_recovery_codes (user_id, code_hash) VALUES (?, 'x')", bob_id)
    step = password_step(client, "bob")
    refused = second_step(client, step["mfa_token"], code_at(secret, time.time() + 30))
    assert refused.status_code == 401 and refused.json()["code"] == "mfa_code_invalid"


def test_an_unset_key_is_generated_private_into_the_data_dir(
        settings: Settings, make_client: Any) -> None:
    client = make_client(settings.replace(mfa={"encryption_key": ""}))
    enrolled(client, signed_up(client))
    key = settings.data_dir / "mfa-key"
    assert key.stat().st_mode & 0o077 == 0 and len(key.read_text().strip()) >= 32


# -- the sign-in step ------------------------------------------------------------------------
def test_sign_in_with_a_totp_code_on_the_real_clock(client: httpx.Client,
                                                    settings: Settings) -> None:
    done = enrolled(client, signed_up(client))
    step = password_step(client)
    assert step["methods"] == ["totp", "recovery_code"]
    # The confirming code's step is spent: the next one (within the skew window) is not.
    signed = second_step(client, step["mfa_token"], code_at(done["secret"], time.time() + 30))
    assert signed.status_code == 200, signed.text
    body = signed.json()
    assert set(body) == {"user", "access", "refresh", "device_token"}
    assert body["user"] == {"username": "alice", "email": "alice@example.com"}
    assert "authsvc_device" in signed.headers["set-cookie"]
    assert claims(settings, body["access"])["amr"] == ["pwd", "otp"]
    assert profile(client, body["access"]).status_code == 200
    # An mfa_token is single use.
    again = second_step(client, step["mfa_token"], code_at(done["secret"], time.time() + 30))
    assert again.status_code == 401 and again.json()["code"] == "mfa_token_invalid"


def test_a_code_is_accepted_once_and_within_one_step_of_skew(settings: Settings,
                                                             make_client: Any) -> None:
    clock = Clock(T0)
    client = make_client(settings, clock=clock)
    secret = enrolled(client, signed_up(client), now=T0)["secret"]
    clock.now = T0 + 600

    def attempt(moment: float) -> int:
        step = password_step(client)
        return second_step(client, step["mfa_token"], code_at(secret, moment)).status_code

    assert attempt(T0 + 600 - 60) == 401  # two steps behind
    assert attempt(T0 + 600 + 60) == 401  # two steps ahead
    assert attempt(T0 + 600 - 30) == 200  # one behind: accepted
    assert attempt(T0 + 600 - 30) == 401  # ... once
    assert attempt(T0 + 600) == 200       # the current step: later, so accepted
    assert attempt(T0 + 600 - 30) == 401  # never an older step after a newer one
    assert attempt(T0 + 600 + 30) == 200  # one ahead


def test_a_wrong_password_says_nothing_of_the_second_factor(client: httpx.Client) -> None:
    enrolled(client, signed_up(client))
    signed_up_other(client)
    with_mfa = login(client, "alice", "wrong password")
    without = login(client, "bob", "wrong password")
    assert with_mfa.status_code == without.status_code == 401
    assert with_mfa.json() == without.json()
    assert with_mfa.headers.keys() - {"date"} == without.headers.keys() - {"date"}


def test_accounts_without_a_factor_sign_in_as_before(client: httpx.Client) -> None:
    register(client)
    assert set(logged_in(client)) == {"user", "access", "refresh", "device_token"}


def test_a_pending_sign_in_allows_few_attempts(settings: Settings, make_client: Any) -> None:
    clock = Clock(T0)
    client = make_client(settings.replace(mfa={"max_attempts": 3}), clock=clock)
    secret = enrolled(client, signed_up(client), now=T0)["secret"]
    clock.now = T0 + 90
    step = password_step(client)
    for _ in range(3):
        wrong = second_step(client, step["mfa_token"], "000000")
        assert wrong.status_code == 401 and wrong.json()["code"] == "mfa_code_invalid"
    right = second_step(client, step["mfa_token"], code_at(secret, clock.now))
    assert right.status_code == 401 and right.json()["code"] == "mfa_token_invalid"
    # A new password step starts again.
    step = password_step(client)
    assert second_step(client, step["mfa_token"], code_at(secret, clock.now)).status_code == 200


def test_a_pending_sign_in_expires(settings: Settings, make_client: Any,
                                   sync_redis: redis.Redis) -> None:
    """It lives in Redis for login_ttl (an injected clock does not age Redis keys: the key's
    end is brought forward instead)."""
    client = make_client(settings)
    done = enrolled(client, signed_up(client))
    step = password_step(client)
    sync_redis.delete(RedisKeys(settings.redis.prefix).mfa_login(step["mfa_token"]))
    late = second_step(client, step["mfa_token"], code_at(done["secret"], time.time() + 30))
    assert late.status_code == 401 and late.json()["code"] == "mfa_token_invalid"


def test_the_pending_sign_in_key_is_a_hash_with_the_login_ttl(
        client: httpx.Client, settings: Settings, sync_redis: redis.Redis) -> None:
    enrolled(client, signed_up(client))
    step = password_step(client)
    key = RedisKeys(settings.redis.prefix).mfa_login(step["mfa_token"])
    assert step["mfa_token"] not in key
    assert 0 < sync_redis.ttl(key) <= settings.mfa.login_ttl
    assert step["mfa_token"] not in str(sync_redis.hgetall(key))


def test_a_password_change_since_the_password_step_ends_the_pending_sign_in(
        client: httpx.Client, settings: Settings) -> None:
    done = enrolled(client, signed_up(client))
    step = password_step(client)
    sql(settings, "UPDATE users SET token_version = token_version + 1")
    late = second_step(client, step["mfa_token"], code_at(done["secret"], time.time() + 30))
    assert late.status_code == 401 and late.json()["code"] == "mfa_token_invalid"


def test_wrong_codes_count_towards_the_lockout(settings: Settings, make_client: Any) -> None:
    """A code guessed wrong is a failure like a wrong password; the password step stays
    counted until its second step succeeds, so knowing the password buys no extra guesses."""
    client = make_client(settings.replace(lockout={"enabled": True, "max_failures": 4}))
    done = enrolled(client, signed_up(client))
    step = password_step(client)                       # 1 (until the second step succeeds)
    for _ in range(2):                                 # 2, 3
        assert second_step(client, step["mfa_token"], "000000").status_code == 401
    step = password_step(client)                       # 4
    locked = second_step(client, step["mfa_token"], code_at(done["secret"], time.time() + 30))
    assert locked.status_code == 429 and "Retry-After" in locked.headers
    assert login(client).status_code == 429


def test_a_completed_sign_in_gives_its_attempts_back(settings: Settings,
                                                     make_client: Any) -> None:
    client = make_client(settings.replace(lockout={"enabled": True, "max_failures": 3}))
    done = enrolled(client, signed_up(client))
    step = password_step(client)
    assert second_step(client, step["mfa_token"],
                       code_at(done["secret"], time.time() + 30)).status_code == 200
    for _ in range(2):
        assert login(client, password="wrong").status_code == 401
    assert set(password_step(client)) == {"mfa_required", "mfa_token", "methods"}


def test_the_second_step_spends_the_login_rate(settings: Settings, make_client: Any) -> None:
    client = make_client(settings.replace(rate_limit={"enabled": True, "login": Rate(5, 60)}))
    enrolled(client, signed_up(client))                                  # 1: the first code
    step = password_step(client)                                         # 2
    assert [second_step(client, step["mfa_token"], "000000").status_code  # 3, 4, 5
            for _ in range(3)] == [401, 401, 401]
    assert second_step(client, step["mfa_token"], "000000").status_code == 429


def test_parallel_attempts_with_one_pending_sign_in_are_one_at_a_time(
        client: httpx.Client, settings: Settings) -> None:
    done = enrolled(client, signed_up(client))
    step = password_step(client)
    code = code_at(done["secret"], time.time() + 30)
    answers: list[int] = []
    threads = [threading.Thread(target=lambda: answers.append(
        second_step(client, step["mfa_token"], code).status_code)) for _ in range(10)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert answers.count(200) == 1, answers
    assert set(answers) <= {200, 401, 429}, answers


@pytest.mark.parametrize("body, field", [
    ({}, "mfa_token"),
    ({"mfa_token": "x", "code": "1"}, "method"),
    ({"mfa_token": "x", "method": "sms", "code": "1"}, "method"),
    ({"mfa_token": "x", "method": "totp"}, "code"),
    ({"mfa_token": "x", "method": "totp", "code": 123456}, "code"),
    ({"mfa_token": "x", "method": "totp", "code": "1" * 65}, "code"),
    ({"mfa_token": "x" * 101, "method": "totp", "code": "1"}, "mfa_token"),
    ({"mfa_token": "x\x00", "method": "totp", "code": "1"}, "mfa_token"),
])
def test_a_bad_second_step_is_a_400_naming_the_field(client: httpx.Client, body: Any,
                                                     field: str) -> None:
    assert_field_errors(client.post(API + "login/mfa/", json=body), field, only=False)


def test_an_unknown_mfa_token_is_refused(client: httpx.Client) -> None:
    refused = second_step(client, "no-such-token", "123456")
    assert refused.status_code == 401
    assert set(refused.json()) == {"detail", "code"}
    assert refused.json()["code"] == "mfa_token_invalid"


# -- recovery codes --------------------------------------------------------------------------
def test_a_recovery_code_signs_in_once_and_is_mailed(settings: Settings, make_client: Any,
                                                     sync_redis: redis.Redis) -> None:
    client = make_client(settings.replace(alerts={"enabled": True}))
    done = enrolled(client, signed_up(client))
    code = done["recovery_codes"][3].upper().replace("-", " ")  # as typed off paper
    step = password_step(client)
    signed = second_step(client, step["mfa_token"], code, "recovery_code")
    assert signed.status_code == 200, signed.text
    assert claims(settings, signed.json()["access"])["amr"] == ["pwd", "recovery_code"]
    step = password_step(client)
    again = second_step(client, step["mfa_token"], done["recovery_codes"][3], "recovery_code")
    assert again.status_code == 401 and again.json()["code"] == "mfa_code_invalid"
    access = signed.json()["access"]
    assert client.get(MFA, headers=bearer(access)).json()["recovery_codes_left"] == 9
    queued = list(sync_redis.lrange(f"rq:queue:{settings.worker.queue}", 0, -1))
    assert queued  # the alerts (new device, enabled, code used) wait for the worker
    kinds = [sync_redis.hget(f"rq:job:{job_id(j)}", "description") for j in queued]
    assert any(b"recovery_code_used" in (k or b"") for k in kinds), kinds


@pytest.mark.timeout(120)
def test_one_recovery_code_under_twenty_parallel_attempts_signs_in_once(
        client: httpx.Client) -> None:
    done = enrolled(client, signed_up(client))
    steps = [password_step(client)["mfa_token"] for _ in range(20)]
    code = done["recovery_codes"][0]
    answers: list[int] = []
    barrier = threading.Barrier(20)

    def go(token: str) -> None:
        barrier.wait()
        answers.append(second_step(client, token, code, "recovery_code").status_code)

    threads = [threading.Thread(target=go, args=(t,)) for t in steps]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(answers) == [200] + [401] * 19, answers


def test_regenerated_codes_replace_the_old_set(client: httpx.Client) -> None:
    done = enrolled(client, signed_up(client))
    new = client.post(CODES, headers=bearer(done["access"]))
    assert new.status_code == 200, new.text
    fresh = new.json()["recovery_codes"]
    assert len(fresh) == 10 and not set(fresh) & set(done["recovery_codes"])
    old = second_step(client, password_step(client)["mfa_token"], done["recovery_codes"][0],
                      "recovery_code")
    assert old.status_code == 401
    ok = second_step(client, password_step(client)["mfa_token"], fresh[0], "recovery_code")
    assert ok.status_code == 200


def test_no_recovery_codes_without_a_factor(client: httpx.Client) -> None:
    refused = client.post(CODES, headers=bearer(signed_up(client)))
    assert_field_errors(refused, "non_field_errors")


# -- step-up ---------------------------------------------------------------------------------
def stale_mfa_session(settings: Settings, make_client: Any,
                      **sections: Any) -> tuple[httpx.Client, Clock, dict[str, Any]]:
    """An account with an authenticator, and a session signed in more than step_up_max_age
    ago: {secret, recovery_codes, access, refresh}."""
    clock = Clock(T0)
    client = make_client(settings.replace(**sections), clock=clock)
    done = enrolled(client, signed_up(client), now=T0)
    clock.now = T0 + 60
    signed = second_step(client, password_step(client)["mfa_token"],
                         code_at(done["secret"], clock.now)).json()
    clock.now += settings.mfa.step_up_max_age + 1
    return client, clock, {**done, **signed}


def assert_step_up(response: httpx.Response) -> None:
    assert response.status_code == 403, response.text
    body = response.json()
    assert set(body) == {"detail", "code", "methods"}
    assert body["code"] == "step_up_required"
    assert body["methods"] == ["password", "totp", "recovery_code"]


def change_password(client: httpx.Client, access: str, new: str = "another fine passphrase",
                    ) -> httpx.Response:
    return client.post(API + "password/change/", headers=bearer(access),
                       json={"old_password": PASSWORD, "password": new, "password2": new})


def test_sensitive_operations_want_a_recent_sign_in(settings: Settings,
                                                    make_client: Any) -> None:
    client, _, s = stale_mfa_session(settings, make_client)
    access = s["access"]
    assert_step_up(change_password(client, access))
    assert_step_up(client.request("DELETE", API + "profile/", headers=bearer(access),
                                  json={"password": PASSWORD}))
    assert_step_up(client.delete(TOTP, headers=bearer(access)))
    assert_step_up(client.post(CODES, headers=bearer(access)))
    assert_step_up(client.post(TOTP, headers=bearer(access)))
    # Nothing changed.
    assert client.get(MFA, headers=bearer(access)).json()["totp"]["enabled"] is True
    assert profile(client, access).status_code == 200


def test_reauth_with_a_password_renews_auth_time_for_the_session(
        settings: Settings, make_client: Any) -> None:
    client, clock, s = stale_mfa_session(settings, make_client)
    wrong = reauth(client, s["access"], password="not it")
    assert_field_errors(wrong, "password")
    renewed = reauth(client, s["access"], password=PASSWORD)
    assert renewed.status_code == 200, renewed.text
    body = renewed.json()
    assert set(body) == {"access", "auth_time"} and body["auth_time"] == int(clock.now)
    assert claims(settings, body["access"])["auth_time"] == int(clock.now)
    # Refresh keeps it: the session itself holds the new auth_time.
    refreshed = refresh(client, s["refresh"]).json()["access"]
    assert claims(settings, refreshed)["auth_time"] == int(clock.now)
    assert claims(settings, refreshed)["amr"] == ["pwd", "otp"]
    assert change_password(client, refreshed).status_code == 200


def test_reauth_with_a_code_and_with_a_recovery_code(settings: Settings,
                                                     make_client: Any) -> None:
    client, clock, s = stale_mfa_session(settings, make_client)
    # The sign-in spent its step: that code, and any older one, never counts again.
    spent = code_at(s["secret"], T0 + 60)
    assert_field_errors(reauth(client, s["access"], method="totp", code=spent), "code")
    ok = reauth(client, s["access"], method="totp", code=code_at(s["secret"], clock.now))
    assert ok.status_code == 200, ok.text
    assert claims(settings, ok.json()["access"])["auth_time"] == int(clock.now)
    assert client.post(CODES, headers=bearer(ok.json()["access"])).status_code == 200
    clock.now += settings.mfa.step_up_max_age + 1
    # The old set died with the regeneration.
    old = reauth(client, s["access"], method="recovery_code", code=s["recovery_codes"][0])
    assert_field_errors(old, "code")
    assert_field_errors(reauth(client, s["access"], method="recovery_code",
                               code="nope-nope-nope"), "code")


def test_wrong_reauth_codes_are_counted_like_failed_logins(settings: Settings,
                                                           make_client: Any) -> None:
    client, clock, s = stale_mfa_session(settings, make_client,
                                         lockout={"enabled": True, "max_failures": 3})
    for _ in range(3):
        assert reauth(client, s["access"], method="totp", code="000000").status_code == 400
    locked = reauth(client, s["access"], method="totp", code=code_at(s["secret"], clock.now))
    assert locked.status_code == 429 and "Retry-After" in locked.headers


def test_accounts_without_a_factor_need_only_their_password(settings: Settings,
                                                            make_client: Any) -> None:
    clock = Clock(T0)
    client = make_client(settings, clock=clock)
    access = signed_up(client)
    clock.now += settings.mfa.step_up_max_age + 60
    changed = change_password(client, access)
    assert changed.status_code == 200
    access = changed.json()["access"]  # the session goes on, signed in as long ago
    # Adding a factor wants a recent sign-in from everyone: a stolen session must not lock
    # its owner out with an authenticator of its own.
    refused = client.post(TOTP, headers=bearer(access))
    assert refused.status_code == 403 and refused.json()["methods"] == ["password"]


def test_turning_the_factor_off_after_a_step_up(settings: Settings, make_client: Any) -> None:
    client, _, s = stale_mfa_session(settings, make_client)
    fresh = reauth(client, s["access"], password=PASSWORD).json()["access"]
    assert client.delete(TOTP, headers=bearer(fresh)).status_code == 204
    assert client.get(MFA, headers=bearer(fresh)).json()["methods"] == []
    assert sql(settings, "SELECT COUNT(*) AS n FROM mfa_recovery_codes")[0]["n"] == 0
    assert set(logged_in(client)) >= {"access", "refresh"}


def test_a_password_reset_keeps_the_second_factor(client: httpx.Client, settings: Settings,
                                                  smtp_server: Any, sync_redis: redis.Redis,
                                                  tmp_path: Path) -> None:
    from test_password_reset import NEW_PASSWORD, confirm, mail_reset
    enrolled(client, signed_up(client))
    token = mail_reset(client, settings, tmp_path, sync_redis, smtp_server[0])
    assert confirm(client, token).status_code == 200
    step = password_step(client, password=NEW_PASSWORD)
    assert step["methods"] == ["totp", "recovery_code"]


# -- admins ----------------------------------------------------------------------------------
def admin_session(client: httpx.Client, settings: Settings, sync_redis: redis.Redis) -> str:
    from api import make_admin
    return str(make_admin(client, settings, sync_redis)["access"])


def test_an_admin_sees_the_methods_and_resets_them(settings: Settings, make_client: Any,
                                                   sync_redis: redis.Redis) -> None:
    client = make_client(settings.replace(alerts={"enabled": True}))
    enrolled(client, signed_up(client))
    admin = admin_session(client, settings, sync_redis)
    uid = sql(settings, "SELECT id FROM users WHERE username = 'alice'")[0]["id"]
    user = client.get(f"{API}users/{uid}/", headers=bearer(admin)).json()
    assert user["mfa_methods"] == ["totp", "recovery_code"]
    listed = client.get(f"{API}users/", headers=bearer(admin)).json()["results"]
    assert [u["mfa_methods"] for u in listed] == [["totp", "recovery_code"], []]
    reset = client.post(f"{API}users/{uid}/mfa/reset/", headers=bearer(admin))
    assert reset.status_code == 204, reset.text
    assert set(logged_in(client)) >= {"access", "refresh"}  # the password alone again
    kinds = [sync_redis.hget(f"rq:job:{job_id(j)}", "description")
             for j in sync_redis.lrange(f"rq:queue:{settings.worker.queue}", 0, -1)]
    assert any(b"mfa_reset" in (k or b"") for k in kinds), kinds
    assert client.get(f"{API}users/{uid}/", headers=bearer(admin)).json()["mfa_methods"] == []
    assert client.post(f"{API}users/999/mfa/reset/", headers=bearer(admin)).status_code == 404


def test_only_admins_reset_factors(client: httpx.Client, settings: Settings) -> None:
    enrolled(client, signed_up(client))
    other = signed_up_other(client)
    uid = sql(settings, "SELECT id FROM users WHERE username = 'alice'")[0]["id"]
    assert client.post(f"{API}users/{uid}/mfa/reset/", headers=bearer(other)).status_code == 403
    assert password_step(client)["mfa_required"] is True


def test_admin_writes_want_a_step_up_from_an_admin_with_a_factor(
        settings: Settings, make_client: Any, sync_redis: redis.Redis) -> None:
    clock = Clock(T0)
    client = make_client(settings, clock=clock)
    admin = admin_session(client, settings, sync_redis)
    enrolled(client, admin, now=T0)
    signed_up(client)
    uid = sql(settings, "SELECT id FROM users WHERE username = 'alice'")[0]["id"]
    clock.now += settings.mfa.step_up_max_age + 1
    assert_step_up(client.post(f"{API}users/{uid}/revoke-sessions/", headers=bearer(admin)))
    assert client.get(f"{API}users/", headers=bearer(admin)).status_code == 200  # reads: no
    fresh = reauth(client, admin, password=PASSWORD).json()["access"]
    assert client.post(f"{API}users/{uid}/revoke-sessions/",
                       headers=bearer(fresh)).status_code == 204


def test_a_role_that_requires_a_factor_reaches_only_the_enrolment(
        settings: Settings, make_client: Any, sync_redis: redis.Redis) -> None:
    client = make_client(settings.replace(mfa={"require_for_roles": ("admin",)}))
    admin = admin_session(client, settings, sync_redis)
    assert claims(settings, admin)["scope"] == "mfa_enrolment"
    refused = client.get(f"{API}users/", headers=bearer(admin))
    assert refused.status_code == 403 and refused.json()["code"] == "mfa_enrolment_required"
    assert client.get(API + "sessions/", headers=bearer(admin)).status_code == 403
    assert profile(client, admin).status_code == 200
    assert client.get(MFA, headers=bearer(admin)).json()["enrolment_required"] is True
    done = enrolled(client, admin)
    assert "scope" not in claims(settings, done["access"])
    assert client.get(f"{API}users/", headers=bearer(done["access"])).status_code == 200
    # Turning it off is refused for such a role: replacing the authenticator is the way.
    fresh = reauth(client, done["access"], password=PASSWORD).json()["access"]
    assert_field_errors(client.delete(TOTP, headers=bearer(fresh)), "non_field_errors")


def test_refresh_lifts_the_enrolment_scope_once_a_factor_exists(
        settings: Settings, make_client: Any, sync_redis: redis.Redis) -> None:
    client = make_client(settings.replace(mfa={"require_for_roles": ("admin",)}))
    from api import make_admin
    boss = make_admin(client, settings, sync_redis)
    enrolled(client, boss["access"])
    refreshed = refresh(client, boss["refresh"]).json()["access"]
    assert "scope" not in claims(settings, refreshed)


def test_deleting_the_account_removes_its_factors(settings: Settings, make_client: Any) -> None:
    clock = Clock(T0)
    client = make_client(settings, clock=clock)
    access = signed_up(client)
    done = enrolled(client, access, now=T0)
    gone = client.request("DELETE", API + "profile/", headers=bearer(done["access"]),
                          json={"password": PASSWORD})
    assert gone.status_code == 204, gone.text
    with sqlite3.connect(settings.database.url.removeprefix("sqlite:///")) as db:
        assert db.execute("SELECT COUNT(*) FROM mfa_totp").fetchone() == (0,)
        assert db.execute("SELECT COUNT(*) FROM mfa_recovery_codes").fetchone() == (0,)
    assert USER["username"]  # the name is free again
    register(client)
    assert set(logged_in(client)) >= {"access"}


def test_every_change_to_a_factor_is_mailed(settings: Settings, make_client: Any,
                                            smtp_server: Any, sync_redis: redis.Redis,
                                            tmp_path: Path) -> None:
    """Through the real worker and SMTP server: each alert has its own subject and link."""
    from support import run_worker
    mailbox, _ = smtp_server
    client = make_client(settings.replace(alerts={"enabled": True}))
    access = signed_up(client)
    done = enrolled(client, access)                                     # on
    fresh = done["access"]
    codes = client.post(CODES, headers=bearer(fresh)).json()["recovery_codes"]  # regenerated
    step = password_step(client)
    assert second_step(client, step["mfa_token"], codes[0], "recovery_code").status_code == 200
    enrolled(client, fresh)                                             # replaced
    assert client.delete(TOTP, headers=bearer(fresh)).status_code == 204  # off
    enrolled(client, fresh)                                             # on again
    admin = admin_session(client, settings, sync_redis)
    uid = sql(settings, "SELECT id FROM users WHERE username = 'alice'")[0]["id"]
    assert client.post(f"{API}users/{uid}/mfa/reset/", headers=bearer(admin)).status_code == 204
    worker = run_worker(settings, tmp_path)
    assert worker.returncode == 0, worker.stderr
    subjects = [m["Subject"] for m in mailbox.messages if m["To"] == "alice@example.com"]
    for subject in ("Two-factor sign-in is on", "New recovery codes", "A recovery code was used",
                    "Your authenticator app was replaced", "Two-factor sign-in is off",
                    "An administrator removed your second factor"):
        assert subject in subjects, (subject, subjects)
    used = next(m for m in mailbox.messages if m["Subject"] == "A recovery code was used")
    assert "Recovery codes left: 9" in used.get_body(preferencelist=("plain",)).get_content()
    assert not any(c in str(m) for m in mailbox.messages for c in codes)


@pytest.mark.postgres
@pytest.mark.timeout(120)
def test_single_use_holds_on_postgresql_too(settings: Settings, make_client: Any,
                                            empty_postgres: str) -> None:
    """The same races on PostgreSQL, where the conditional UPDATEs run side by side (SQLite
    serialises every write): one recovery code, twenty sign-ins; one TOTP code, ten
    re-authentications."""
    from service.store import migrate
    migrate.upgrade(empty_postgres)
    client = make_client(settings.replace(database={"url": empty_postgres}))
    done = enrolled(client, signed_up(client))
    steps = [password_step(client)["mfa_token"] for _ in range(20)]
    barrier = threading.Barrier(20)
    answers: list[int] = []

    def sign_in(token: str) -> None:
        barrier.wait()
        answers.append(second_step(client, token, done["recovery_codes"][0],
                                   "recovery_code").status_code)

    threads = [threading.Thread(target=sign_in, args=(t,)) for t in steps]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(answers) == [200] + [401] * 19, answers
    code = code_at(done["secret"], time.time() + 30)
    reauths: list[int] = []
    ten = threading.Barrier(10)

    def again() -> None:
        ten.wait()
        reauths.append(reauth(client, done["access"], method="totp", code=code).status_code)

    threads = [threading.Thread(target=again) for _ in range(10)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(reauths) == [200] + [400] * 9, reauths
